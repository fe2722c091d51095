"""The landmark stage's own confidence (dmsl_core.models.quality, dmsl_core.quality): its inputs,
a real (small) training that learns to tell faces from no faces, the file format, and what the
Predictor, the tracker and `dmsl predict` do with it - and that the shipped network says "no face"
on images without one while keeping real faces."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dmsl_core.models.quality import N_VEC, Q, QualityModel, QualityNet, load_quality, quality_inputs
from dmsl_core.models.weights import WeightsError
from dmsl_core.quality import (KINDS, NO_FACE_NME, QualitySetConfig, auroc, build_quality_set, choose_threshold,
                               quality_report, texture_image, train_quality)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "models" / "dmsl-default"


def test_inputs_draw_the_points_where_they_are():
    crop = np.random.default_rng(0).uniform(0, 1, (96, 96)).astype(np.float32)
    pts = np.full((68, 2), 48.0)
    pts[0] = (12.0, 84.0)                                  # one point in the lower left
    img, vec = quality_inputs(crop, pts, 96, flip_dev=2.0)
    assert img.shape == (2, Q, Q) and vec.shape == (N_VEC,) and img.dtype == np.float32
    corner = np.zeros((Q, Q))
    corner[Q // 2 + 8:, :Q // 2 - 8] = 1                   # the lower left, away from the centre's dots
    y, x = np.unravel_index(np.argmax(img[1] * corner), (Q, Q))
    assert abs(x - 12 * Q / 96) <= 1 and abs(y - 84 * Q / 96) <= 1
    assert img[1, 23:25, 23:25].max() > 0.75               # the 67 points at the centre
    assert vec[140] == 1.0 and vec[139] > 0               # the flip disagreement is marked as measured
    _, vec2 = quality_inputs(crop, pts, 96, flip_dev=None)
    assert vec2[139] == 0 and vec2[140] == 0
    bad = pts.copy()
    bad[5] = np.nan
    img3, vec3 = quality_inputs(crop, bad, 96)
    assert np.isfinite(img3).all() and np.isfinite(vec3).all()


def test_auroc_and_threshold():
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0], bool)) == 0.0
    conf = np.linspace(0, 1, 101)
    nme = np.where(conf > 0.5, 0.03, 0.5)
    thr = choose_threshold(conf, nme, keep=0.9)
    assert 0.5 < thr < 0.6                                 # keeps 90 % of the 50 successes
    rep = quality_report(conf, nme, np.zeros(101, int), thr)
    assert rep["all"]["successes_kept"] >= 0.9 and rep["all"]["failures_rejected"] == 1.0


def test_textures_are_varied_images():
    rng = np.random.default_rng(1)
    imgs = [texture_image(rng, (64, 80)) for _ in range(24)]
    assert {im.dtype for im in imgs} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert any(im.ndim == 3 for im in imgs) and all(im.shape[:2] == (64, 80) for im in imgs)
    assert all(float(im.std()) > 0 for im in imgs)


@pytest.fixture(scope="module")
def tiny_set(synth_data):
    """The quality set of an untrained dmsl-tiny on a few generated faces."""
    from dmsl_core.data.folder import load_samples
    from dmsl_core.pipeline import Predictor
    torch.set_num_threads(1)
    pred = Predictor.untrained("dmsl-tiny")
    samples = load_samples(synth_data, ("vis", "th"))[:8]
    return build_quality_set(pred, samples, QualitySetConfig(per_image=3, texture_every=2, seed=0))


def test_the_set_runs_the_pipeline_from_every_kind_of_box(tiny_set):
    d = tiny_set
    n = len(d["nme"])
    assert d["img"].shape == (n, 2, Q, Q) and d["vec"].shape == (n, N_VEC)
    kinds = {KINDS[k] for k in d["kind"]}
    assert {"track", "detect", "wild", "texture"} <= kinds
    no_face = np.isin(d["kind"], [KINDS.index("background"), KINDS.index("texture")])
    assert (d["nme"][no_face] == NO_FACE_NME).all()
    assert (d["nme"][~no_face] < NO_FACE_NME).all() and (d["nme"][~no_face] > 0).all()
    assert set(d["spectrum"]) <= {"vis", "th"}


def test_training_learns_to_tell_faces_from_no_faces():
    """A real (short) training on a made-up task with the network's own inputs: face-like crops with
    points on them succeed, textures with points on them fail. Held-out AUROC must be high."""
    rng = np.random.default_rng(0)
    imgs, vecs, nmes = [], [], []
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(480):
        face = i % 2 == 0
        pts = np.stack([rng.uniform(30, 66, 68), rng.uniform(30, 66, 68)], 1)
        if face:   # a bright disc with dark dots under the points
            crop = ((xx - 48) ** 2 + (yy - 48) ** 2 < 35 ** 2).astype(np.float32) * 0.8
            for x, y in pts[::4]:
                crop[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 0.1
        else:
            crop = rng.uniform(0, 1, (96, 96)).astype(np.float32)
        im, v = quality_inputs(crop, pts, 96)
        imgs.append(im)
        vecs.append(v)
        nmes.append(0.03 if face else NO_FACE_NME)
    data = {"img": np.stack(imgs), "vec": np.stack(vecs), "nme": np.asarray(nmes)}
    torch.set_num_threads(1)
    train = {k: v[:400] for k, v in data.items()}
    net = train_quality(train, epochs=4, lr=2e-3, batch=64, seed=0)
    conf, pnme = QualityModel(net)(data["img"][400:], data["vec"][400:])
    ok = data["nme"][400:] < 0.08
    assert auroc(conf, ok) > 0.95
    assert np.median(pnme[ok]) < np.median(pnme[~ok])


def test_file_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    q = QualityModel(QualityNet(), threshold=0.37, card={"trained_on": "test"})
    path = q.save(tmp_path / "quality.safetensors")
    back = load_quality(path)
    assert back.threshold == pytest.approx(0.37) and back.card == {"trained_on": "test"}
    x = np.random.default_rng(0).uniform(0, 1, (3, 2, Q, Q)).astype(np.float32)
    v = np.random.default_rng(1).normal(0, 1, (3, N_VEC)).astype(np.float32)
    np.testing.assert_allclose(q(x, v)[0], back(x, v)[0], rtol=1e-6)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_quality(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "dmsl-v1"})
    with pytest.raises(WeightsError, match="not a DMSL quality model"):
        load_quality(tmp_path / "other.safetensors")


def _face_image():
    from skimage import data
    return data.astronaut()


def test_predictor_threshold_decides_what_is_a_face():
    """A quality network with threshold 0 accepts every finite result; with threshold 1 none: the
    Predictor, `faces()` and the tracker follow it."""
    pytest.importorskip("dlib")
    from dmsl_core.pipeline import Predictor
    from dmsl_core.tracking import FaceTracker
    from dmsl_core.detection import get_detector
    torch.set_num_threads(1)
    pred = Predictor.untrained("dmsl-tiny")
    img = _face_image()
    assert pred.predict_one(img).confidence is None and pred.is_face(pred.predict_one(img))
    pred.quality = QualityModel(QualityNet(), threshold=0.0)
    p = pred.predict_one(img)
    assert 0.0 <= p.confidence <= 1.0 and pred.is_face(p)
    faces = pred.faces(img, detector="auto", spectrum="vis")
    assert len(faces) == 1 and faces[0].confidence is not None
    assert faces[0].to_dict()["confidence"] == round(faces[0].confidence, 4)
    pred.quality = QualityModel(QualityNet(), threshold=1.0)
    assert not pred.is_face(pred.predict_one(img))
    assert pred.faces(img, detector="auto", spectrum="vis") == []
    tr = FaceTracker(pred, get_detector("auto"), "vis")
    assert tr.step(img, 0) == [] and tr.tracks == []


@pytest.fixture(scope="module")
def shipped():
    from dmsl_core.pipeline import Predictor
    if not (SHIPPED / "quality.safetensors").exists():
        pytest.skip("the shipped model's quality network is needed")
    torch.set_num_threads(1)
    return Predictor.from_weights(str(SHIPPED), device="cpu")


def test_shipped_confidence_keeps_faces_and_rejects_no_faces(shipped, synth_data):
    """The shipped network on images it was not trained on: a real photo's face and generated faces
    in both spectra are faces; flat, noise and texture images (M_b's one box, no detector) are not."""
    from dmsl_core.data.folder import load_samples
    assert shipped.quality is not None and 0 < shipped.quality.threshold < 1
    faces = shipped.faces(_face_image(), detector="auto", spectrum="vis")
    assert len(faces) == 1 and faces[0].confidence >= shipped.quality.threshold
    samples = load_samples(synth_data, ("vis", "th"))
    kept = [shipped.is_face(shipped.predict([s.load()], [None])[0]) for s in samples]
    assert np.mean(kept) >= 0.8, kept
    rng = np.random.default_rng(5)
    blanks = [np.full((256, 320), 128, np.uint8), rng.integers(0, 256, (256, 320, 3), dtype=np.uint8),
              rng.integers(20000, 30000, (256, 320), dtype=np.uint16)]
    from skimage import data
    blanks += [data.coffee(), data.brick(), data.coins()]
    called = [shipped.is_face(shipped.predict_one(b)) for b in blanks]
    assert sum(called) <= 1, called


def test_cli_trains_and_measures_on_a_small_dataset(tmp_path, synth_data):
    out = tmp_path / "q.safetensors"
    cmd = [sys.executable, "-m", "dmsl_core.cli", "quality", "--data", str(synth_data), "--weights",
           str(SHIPPED) if (SHIPPED / "model.safetensors").exists() else "", "--out", str(out),
           "--epochs", "1", "--per-image", "3", "--json", str(tmp_path / "r.json")]
    if not (SHIPPED / "model.safetensors").exists():
        pytest.skip("the shipped model is needed")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["trained_on"]["images"] > 0 and rep["validated_on"]["images"] > 0
    assert 0 <= rep["val"]["threshold"] <= 1
    q = load_quality(out)
    assert q.threshold == pytest.approx(rep["val"]["threshold"], abs=1e-4)
    r = subprocess.run(cmd[:-2] + ["--measure"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["report"]["all"]["n"] > 0


def test_shipped_card_describes_the_shipped_quality_file(shipped):
    """The card's `quality` section is about this very file (sha256, threshold) and names what it was
    trained and measured on (the figures come from `dmsl quality` reports; tools/ship_quality.py)."""
    import hashlib
    sec = shipped.card["quality"]
    assert sec["sha256"] == hashlib.sha256((SHIPPED / "quality.safetensors").read_bytes()).hexdigest()
    assert sec["threshold"] == pytest.approx(shipped.quality.threshold)
    assert sec["trained_on"]["images"] > 0 and sec["validated_on"]["images"] > 0
    assert "helen" in sec["test"]["data"].lower() and sec["test"]["report"]["all"]["n"] > 0
