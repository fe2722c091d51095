"""Stage 3 (joint fine-tuning of U-Net and head on the point / box distance), the blackout-box
jitter of M_l's training views, and flip test-time augmentation in the Predictor."""
import json

import numpy as np
import pytest
import torch

from dmsl_core.data.folder import load_samples
from dmsl_core.landmarks import MIRROR_PERM, boundary_from_points
from dmsl_core.models.weights import save_weights
from dmsl_core.pipeline import Predictor
from dmsl_core.training import TrainConfig, Trainer, joint_loss, train
from dmsl_core.crops import Augment, ViewBank, make_item


def split(data):
    samples = load_samples(data)
    return [s for s in samples if s.subject != "s003"], [s for s in samples if s.subject == "s003"]


def test_stage_3_is_opt_in_and_follows_each_models_head_stage(synth_data, tmp_path):
    assert TrainConfig().phases() == [("boundary", 1), ("boundary", 2), ("landmark", 1), ("landmark", 2)]
    assert TrainConfig(stages=(1, 2, 3)).phases() == [("boundary", 1), ("boundary", 2), ("boundary", 3),
                                                       ("landmark", 1), ("landmark", 2), ("landmark", 3)]
    assert TrainConfig(stages=(3,), train_models="landmark").phases() == [("landmark", 3)]
    # the heatmap head already trains end to end in its stage 1: no stage 2 or 3 for it
    hm = Trainer(TrainConfig(model="dmsl-tiny-hm", stages=(1, 2, 3)), tmp_path / "hm", *split(synth_data))
    assert hm.phases() == [("boundary", 1), ("boundary", 2), ("boundary", 3), ("landmark", 1)]


def test_joint_loss_is_the_distance_nme_measures():
    t = torch.zeros(1, 136)
    p = torch.zeros(1, 136)
    p[0, 0::2] = 0.03   # every point off by (0.03, 0.04): distance 0.05
    p[0, 1::2] = 0.04
    v = torch.ones(1, 68, dtype=torch.bool)
    assert float(joint_loss("landmark", p, t, v)) == pytest.approx(0.05, abs=1e-6)
    b = torch.tensor([[0.1, 0.2, 0.5, 0.6]])
    assert float(joint_loss("boundary", b + torch.tensor([[0.02, -0.02, 0.0, 0.04]]), b, None)) == \
        pytest.approx(0.02, abs=1e-6)


def test_stage_3_trains_unet_and_head_together_and_lowers_the_validation_nme(synth_data, tmp_path):
    train_s, val_s = split(synth_data)
    base = TrainConfig(model="dmsl-tiny", epochs=3, head_epochs=3, batch_size=4, lr=3e-3, head_lr=3e-3,
                       device="cpu", augment=False, seed=0)
    first = train(base, tmp_path / "r12", train_s, val_s)
    before = Predictor.from_weights(first.parent, device="cpu")
    cfg = TrainConfig(model="dmsl-tiny", stages=(3,), joint_epochs=4, joint_lr=2e-3, batch_size=4, device="cpu",
                      augment=False, seed=0, init_weights=str(first.parent), train_models="landmark")
    events = []
    train(cfg, tmp_path / "r3", train_s, val_s, on_event=events.append)
    after = Predictor.from_weights(tmp_path / "r3", device="cpu")
    # both parts of M_l moved (stage 2 leaves the U-Net as it was); M_b was not trained
    for part in ("unet", "fc1", "fc2"):
        a = getattr(before.landmark, part).state_dict()
        b = getattr(after.landmark, part).state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a), part
    for k, v in before.boundary.state_dict().items():
        assert torch.equal(v, after.boundary.state_dict()[k])
    ends = [e for e in events if e.kind == "phase_end"]
    assert [(e.model, e.stage) for e in ends] == [("landmark", 3)]
    lines = [json.loads(x) for x in (tmp_path / "r3" / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == [3] * 4 and all(x["val_nme"] is not None for x in lines)
    first_nme = json.loads((tmp_path / "r12" / "metrics.jsonl").read_text().splitlines()[-1])["val_nme"]
    # the best stage-3 epoch (the weights kept) beats the stage-2 result it started from
    assert min(x["val_nme"] for x in lines) < first_nme
    assert json.loads((tmp_path / "r3" / "config.json").read_text())["joint_epochs"] == 4


def test_box_jitter_moves_only_the_blackout_and_is_off_by_default(synth_data):
    samples = load_samples(synth_data, ("vis",))[:3]
    bank = ViewBank(samples, 64, 1.5)
    plain = make_item(bank, 0, "landmark", np.random.default_rng(5), Augment(), False, 0.05, False)
    again = make_item(bank, 0, "landmark", np.random.default_rng(5), Augment(box_jitter=0.0), False, 0.05, False)
    np.testing.assert_array_equal(plain["x"], again["x"])   # 0 draws nothing: old runs are unchanged
    jit = make_item(bank, 0, "landmark", np.random.default_rng(5), Augment(box_jitter=0.1), False, 0.05, False)
    np.testing.assert_array_equal(plain["target"], jit["target"])   # same view, same points
    assert not np.array_equal(plain["x"], jit["x"])
    # what differs is the blacked-out border, not the face inside the box
    differ = plain["x"] != jit["x"]
    img, vpts, vbox = bank.view(0, "landmark", np.random.default_rng(5), Augment())
    x0, y0, w, h = vbox
    inner = np.zeros_like(differ)
    inner[int(np.ceil(y0 + 0.3 * h)):int(y0 + 0.7 * h), int(np.ceil(x0 + 0.3 * w)):int(x0 + 0.7 * w)] = True
    assert differ.any() and not (differ & inner).any()


def test_flip_tta_is_the_mean_of_the_crop_and_the_mirrored_images_crop(synth_data):
    """With a given box, flip TTA = mean of the plain prediction and the un-mirrored prediction of
    the mirrored image (with the mirrored box): the mirrored crop is exactly that image's crop."""
    pred = Predictor.untrained("dmsl-tiny", seed=3)
    s = load_samples(synth_data, ("th",))[0]
    img = s.load()
    box = boundary_from_points(np.asarray(s.landmarks, float))
    W = img.shape[1]
    mbox = box.copy()
    mbox[0] = W - 1 - box[0] - box[2]   # pixel centres: x -> W - 1 - x, so [x, x + w] -> [W - 1 - x - w, W - 1 - x]
    plain = pred.predict([img], boxes=[box], refine=False)[0].landmarks
    mirrored = pred.predict([np.ascontiguousarray(img[:, ::-1])], boxes=[mbox], refine=False)[0].landmarks
    un = mirrored.copy()
    un[:, 0] = W - 1 - un[:, 0]
    un = un[MIRROR_PERM]
    pred.set_tta("flip")
    tta = pred.predict([img], boxes=[box], refine=False)[0].landmarks
    np.testing.assert_allclose(tta, (plain + un) / 2, atol=2e-3)
    assert np.abs(tta - plain).max() > 1e-3   # and it is not just the plain prediction
    # the whole pipeline (both M_b passes) runs with TTA on, for batches too
    out = pred.predict([img, img[:100, :120]])
    assert len(out) == 2 and all(np.isfinite(p.landmarks).all() for p in out)


def test_tta_comes_from_the_model_card_and_can_be_overridden(tmp_path):
    from dmsl_core.models import create_models, get_config
    mb, ml = create_models("dmsl-tiny", seed=0)
    save_weights(tmp_path / "m", mb, ml, get_config("dmsl-tiny"), card={"inference": {"tta": "flip"}})
    assert Predictor.from_weights(tmp_path / "m", device="cpu").tta == "flip"
    assert Predictor.from_weights(tmp_path / "m", device="cpu", tta="none").tta == "none"
    assert Predictor.untrained("dmsl-tiny").tta == "none"
    with pytest.raises(ValueError, match="mirror"):
        Predictor.untrained("dmsl-tiny").set_tta("mirror")


def test_eval_true_box_and_tta_from_the_command_line(synth_data, tmp_path):
    """``dmsl eval --true-box``: M_l gets the ground truth's box (what a perfect M_b would give);
    ``--tta flip``: the report says so and its NME is that of the flip-averaged predictions."""
    from dmsl_core.cli import main
    from dmsl_core.evaluation import nme_per_image
    from dmsl_core.models import create_models, get_config
    mb, ml = create_models("dmsl-tiny", seed=1)
    save_weights(tmp_path / "m", mb, ml, get_config("dmsl-tiny"), card={"name": "t"})
    samples = load_samples(synth_data, ("vis", "th"))
    pred = Predictor.from_weights(tmp_path / "m", device="cpu")
    reports = {}
    for name, extra in (("plain", []), ("truth", ["--true-box"]), ("flip", ["--tta", "flip"])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", "--data", str(synth_data), "--weights", str(tmp_path / "m"), "--device", "cpu",
                     "--json", str(out), *extra]) == 0
        reports[name] = json.loads(out.read_text())
    assert reports["truth"]["box"] == "truth" and reports["plain"]["box"] == "model"
    assert reports["flip"]["tta"] == "flip" and reports["plain"]["tta"] == "none"
    truth = pred.predict([s.load() for s in samples],
                         boxes=[boundary_from_points(np.asarray(s.landmarks, float)) for s in samples], refine=False)
    th = [nme_per_image(p.landmarks, s.landmarks) for p, s in zip(truth, samples) if s.spectrum == "th"]
    assert reports["truth"]["nme"]["th"] == pytest.approx(float(np.mean(th)), rel=1e-6)
    pred.set_tta("flip")
    flip = [p.landmarks for p in pred.predict([s.load() for s in samples])]
    vis = [nme_per_image(p, s.landmarks) for p, s in zip(flip, samples) if s.spectrum == "vis"]
    assert reports["flip"]["nme"]["vis"] == pytest.approx(float(np.mean(vis)), rel=1e-6)
    assert reports["flip"]["nme"]["vis"] != reports["plain"]["nme"]["vis"]


def test_combine_models_keeps_each_runs_model_and_re_measures_the_card(synth_data, tmp_path):
    """tools/combine_models.py (how the shipped model's M_b and M_l runs were joined)."""
    import subprocess
    import sys
    from pathlib import Path

    from dmsl_core.models import create_models, get_config
    from dmsl_core.models.weights import load_weights
    root = Path(__file__).resolve().parents[2]
    cfg = get_config("dmsl-tiny")
    mb1, ml1 = create_models(cfg, seed=1)
    mb2, ml2 = create_models(cfg, seed=2)
    save_weights(tmp_path / "b", mb1, ml1, cfg, card={"name": "b"})
    save_weights(tmp_path / "l", mb2, ml2, cfg, card={"name": "l", "nme_test": {"th": 0.5},
                                                       "training": {"data": str(synth_data), "fold": None,
                                                                    "spectra": ["vis", "th"]}})
    r = subprocess.run([sys.executable, str(root / "tools" / "combine_models.py"), str(tmp_path / "b"),
                        str(tmp_path / "l"), str(tmp_path / "c")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    _, mb, ml, card, _ = load_weights(tmp_path / "c")
    for got, want in ((mb, mb1), (ml, ml2)):
        for k, v in want.state_dict().items():
            assert torch.equal(got.state_dict()[k], v), k
    assert card["name"] == "l" and card["combined_from"]["boundary"] == str((tmp_path / "b").resolve())
    # the landmark run's figures were for another M_b: dropped, and re-measured on the combination
    from dmsl_core.data.splits import split_subjects as _split_subjects
    from dmsl_core.evaluation import evaluate_predictor
    _, val, test = _split_subjects(str(synth_data), None, 10)
    assert not test and "nme_test" not in card                # no test subjects without a fold
    rep = evaluate_predictor(Predictor(mb1, ml2, cfg, device="cpu"), load_samples(synth_data, subjects=val))
    assert card["nme_val"]["th"] == pytest.approx(rep["nme"]["th"], rel=1e-6)
    assert card["nme_val"]["n_images"] == rep["n_images"] > 0
    bad = create_models("dmsl-tiny-hm", seed=0)
    save_weights(tmp_path / "hm", *bad, get_config("dmsl-tiny-hm"), card={})
    r = subprocess.run([sys.executable, str(root / "tools" / "combine_models.py"), str(tmp_path / "b"),
                        str(tmp_path / "hm"), str(tmp_path / "x")], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "same configuration" in r.stderr
