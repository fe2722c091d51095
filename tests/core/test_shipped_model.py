"""The shipped default model: its card describes its weights, and its held-out figures are
re-measured here by re-creating the held-out test subjects with the generator."""
import hashlib
import json

import numpy as np
import pytest
from safetensors import safe_open

from dmsl_core.models import get_config
from dmsl_core.models.weights import DEFAULT_MODEL, assets_dir, card_path_for, load_weights, resolve_weights

pytestmark = pytest.mark.skipif(not (assets_dir() / "models" / DEFAULT_MODEL / "model.safetensors").exists(),
                                reason="no shipped default model in assets/")


def card():
    return json.loads(card_path_for(resolve_weights(None)).read_text())


def test_card_matches_the_weights():
    path = resolve_weights(None)
    c = card()
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}
    assert json.loads(meta["config"]) == c["config"]
    assert c["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert c["size_bytes"] == path.stat().st_size
    assert dtypes == {"torch.float16"} and c["dtype"] == "float16"
    cfg, mb, ml, _, _ = load_weights(None)
    assert cfg.name == c["config"]["name"] and cfg.head == get_config(cfg.name).head
    # the card says how it was trained and tested
    t = c["training"]
    assert t["model"] == cfg.name and t["seed"] is not None and t["epochs"] > 0
    assert set(t["train_subjects"]).isdisjoint(c["heldout_eval"]["test_subjects"])
    assert set(t["val_subjects"]).isdisjoint(c["heldout_eval"]["test_subjects"])
    assert c["data_recipe"]["generator"] == "dmsl synth"


def test_card_reports_accuracy_baselines_and_speed():
    c = card()
    h = c["heldout_eval"]
    for s in ("th", "vis"):
        assert 0 < h["nme"][s] < 1
        assert 0 < h["baselines"]["dlib"]["nme"][s] < 1 and h["baselines"]["dlib"]["misses"][s] >= 0
    assert len(h["per_variation"]) >= 20
    b = c["bench"]
    assert b["schema"] in ("dmsl-bench/2", "dmsl-bench/3") and b["pipeline"] and b["pipeline"][0]["model"] == c["name"]
    assert b["pipeline"][0]["fps"]["1"] > 0 and b["dlib"]["available"] in (True, False)
    assert "realtime_fps" in b["targets"]


def test_card_lists_its_training_sources_and_real_face_test():
    """Every training source named with repository@commit, folder, count and licence; the test set
    marked test-only; LFPW's reserved test split in no role; the real-face figures with their data."""
    import re
    c = card()
    src = c["training_sources"]
    assert len(src) >= 4
    for e in src:
        assert e["repository"] and e["folder"] and e["faces"] > 0 and e["licence"] and e["role"], e
        assert e["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", e["commit"]), e
        folder = e["folder"].lower()
        assert not ("lfpw" in folder and "test" in folder), e      # the reserved LFPW test split is never a source
    train = [e for e in src if e["role"].startswith("train")]
    test = [e for e in src if e["role"].startswith("TEST ONLY")]
    assert train and test and all(e["commit"] for e in train if "300-W" in e["set"])
    assert {e["folder"] for e in train}.isdisjoint(e["folder"] for e in test)
    real = c["real_eval"]["helen-test"]
    assert real["n_images"] == 2 * test[0]["faces"]          # each test face in both spectra
    for s in ("th", "vis"):
        assert 0 < real["nme"][s] < 1 and 0 < real["baselines"]["dlib"]["nme"][s] < 1
    assert real["tta"] == c["inference"]["tta"] and real["refine"] == c["inference"]["refine"]


def test_assets_stay_under_40_mb():
    total = sum(f.stat().st_size for f in assets_dir().rglob("*") if f.is_file())
    assert total < 40e6, f"assets/ holds {total / 1e6:.1f} MB"


def test_heldout_nme_is_what_the_card_says(tmp_path):
    """Re-create the held-out test subjects with the generator's recipe and measure again."""
    from dmsl_core.data.folder import load_samples
    from dmsl_core.data.synth import generate_dataset
    from dmsl_core.evaluation import evaluate_predictor
    from dmsl_core.pipeline import Predictor
    c = card()
    recipe, h = c["data_recipe"], c["heldout_eval"]
    idx = [int(s[1:]) - 1 for s in h["test_subjects"]]      # s001 is subject index 0
    generate_dataset(tmp_path / "test", subjects=recipe["subjects"], seed=recipe["seed"], subject_indices=idx)
    samples = load_samples(tmp_path / "test")
    assert sorted({s.subject for s in samples}) == sorted(h["test_subjects"])
    pred = Predictor.from_weights(None, device="cpu")
    assert pred.tta == h["tta"] == c["inference"]["tta"]      # measured with the card's default test-time settings
    assert pred.refine == h["refine"] == c["inference"]["refine"]
    rep = evaluate_predictor(pred, samples)
    assert rep["n_images"] == h["n_images"]
    for s in ("th", "vis"):
        assert rep["nme"][s] == pytest.approx(h["nme"][s], abs=2e-3), s
    # ... and with each other setting the card reports
    others = [("tta", o) for o in h["other_tta"]] + [("refine", o) for o in h["other_refine"]]
    assert {o["tta"] for o in h["other_tta"]} | {h["tta"]} == set(Predictor.TTA_MODES)
    assert {o["refine"] for o in h["other_refine"]} | {h["refine"]} == set(Predictor.REFINE_MODES)
    for flag, other in others:
        assert other[flag] != h[flag]
        rep = evaluate_predictor(Predictor.from_weights(None, device="cpu", **{flag: other[flag]}), samples)
        for s in ("th", "vis"):
            assert rep["nme"][s] == pytest.approx(other["nme"][s], abs=2e-3), (flag, s)


def test_subject_indices_render_the_same_pairs_as_a_full_run(tmp_path):
    from dmsl_core.data.synth import generate_dataset
    generate_dataset(tmp_path / "full", subjects=2, seed=3, variations=["neutral"])
    generate_dataset(tmp_path / "one", subjects=2, seed=3, variations=["neutral"], subject_indices=[1])
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.p*") if p.name != "manifest.csv")
    assert one and all("s002" in str(p) for p in one)
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "full" / rel).read_bytes(), rel


def test_weights_are_two_bytes_per_parameter():
    cfg, mb, ml, _, path = load_weights(None)
    n = sum(p.numel() for p in ml.parameters()) + sum(p.numel() for p in mb.parameters())
    assert abs(path.stat().st_size - 2 * n) < 200_000  # float16: two bytes per parameter (+ header)


def test_shipped_model_finds_faces_it_never_saw(tmp_path):
    from dmsl_core.data.folder import load_samples
    from dmsl_core.data.synth import generate_dataset
    from dmsl_core.evaluation import evaluate_predictor
    from dmsl_core.pipeline import Predictor
    generate_dataset(tmp_path / "d", subjects=2, seed=4242, variations=["neutral", "smile", "glasses", "hat"])
    samples = load_samples(tmp_path / "d")
    rep = evaluate_predictor(Predictor.from_weights(None, device="cpu"), samples)
    # untrained weights score about 0.5-3; the card's held-out figures are re-measured above
    assert rep["nme"]["th"] < 0.15 and rep["nme"]["vis"] < 0.15


def test_dmsl_run_on_the_demo_works_out_of_the_box(tmp_path):
    from dmsl_core.cli import main
    out = tmp_path / "out.csv"
    assert main(["run", "--source", "demo", "--max-frames", "300", "--csv", str(out), "--quiet"]) == 0
    import csv
    header = out.read_text().splitlines()[0].split(",")
    assert header[:6] == ["index", "t", "source", "vis_file", "th_file", "spectrum"] and "y67" in header
    rows = list(csv.DictReader(open(out, newline="")))
    # every face (the default): a row per face, every frame present, each frame's rows as many as its n_faces
    by_frame: dict[str, list] = {}
    for r in rows:
        by_frame.setdefault(r["index"], []).append(r)
    assert list(by_frame) == [str(i) for i in range(300)]
    for rs in by_frame.values():
        assert len(rs) == max(1, int(rs[0]["n_faces"])) and rs[0]["spectrum"] in ("vis", "th")
    with_face = sum(int(rs[0]["n_faces"]) >= 1 for rs in by_frame.values())
    assert with_face >= 285, f"the demo's face was found on {with_face} of 300 frames"


def test_dmsl_predict_without_weights_uses_the_shipped_model(synth_data, tmp_path):
    from dmsl_core.cli import main
    from dmsl_core.data.folder import load_samples
    from dmsl_core.data.imageio import read_image
    from dmsl_core.pipeline import Predictor
    s = next(x for x in load_samples(synth_data) if x.spectrum == "vis")
    out = tmp_path / "out.json"
    assert main(["predict", str(s.path), "--detector", "none", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert len(got) == 1 and np.asarray(got[0]["landmarks"]).shape == (68, 2)
    want = Predictor.from_weights(None, device="cpu").predict_one(read_image(s.path)).landmarks
    np.testing.assert_allclose(np.asarray(got[0]["landmarks"]), want, atol=2e-3)


def test_card_lists_its_training_sources_and_real_face_figures():
    c = card()
    src = c["training_sources"]
    for s in src:
        assert s["repository"] and s["folder"] and s["faces"] > 0 and s["licence"] and s["role"]
    real = [s for s in src if s["commit"]]
    assert {s["commit"][:8] for s in real} == {"e08a16aa", "0478bd01"}
    test = [s for s in src if s["role"].startswith("TEST ONLY")]
    assert [s["folder"] for s in test] == ["helen/testset/"]
    trained = sum(s["faces"] for s in src if not s["role"].startswith("TEST"))
    assert trained == 337 + 870 + 805 + 378
    r = c["real_eval"]["helen-test"]
    assert r["n_images"] == 660 and 0 < r["nme"]["vis"] < 1 and 0 < r["nme"]["th"] < 1
    assert "dlib" in r["baselines"] and r["tta"] == c["inference"]["tta"] and r["refine"] == c["inference"]["refine"]
