"""The per-frame pipeline: batching, box reuse, mapping, temperatures, smoothing, drops, errors, stop."""
from __future__ import annotations


import numpy as np
import pytest

from dmsl_core.frames import FramePair
from dmsl_core.landmarks import boundary_from_points
from dmsl_core.pipeline import Prediction, Predictor
from dmsl_core.registration import map_points
from dmsl_core.smoothing import OneEuroFilter
from dmsl_core.sources import open_source
from dmsl_core.sources.demo import _TEMPLATE
from dmsl_core.stream import StreamProcessor
from dmsl_core.temperatures import temperatures_at


@pytest.fixture(scope="module")
def tiny() -> Predictor:
    return Predictor.untrained("dmsl-tiny", seed=0)


class Spy:
    """Wraps a predictor and records every predict call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[dict] = []

    def predict(self, images, boxes=None, refine=True):
        self.calls.append({"n": len(images), "boxes": None if boxes is None else [b is not None for b in boxes],
                           "refine": refine})
        return self.inner.predict(images, boxes, refine=refine)


class TemplatePredictor:
    """A stand-in that 'finds' a fixed face in the middle of every image (tracking is always good)."""

    def predict(self, images, boxes=None, refine=True):
        out = []
        for im in images:
            h, w = im.shape[:2]
            pts = np.stack([w * 0.3 + _TEMPLATE[:, 0] * w * 0.4, h * 0.3 + _TEMPLATE[:, 1] * h * 0.4], axis=1)
            out.append(Prediction(landmarks=pts, boundary=boundary_from_points(pts)))
        return out


def demo_pairs(n: int, **opts) -> list[FramePair]:
    q = "&".join(f"{k}={v}" for k, v in {"size": "96x80", "realtime": 0, "frames": n, **opts}.items())
    with open_source(f"demo:?{q}") as src:
        return list(src)


def test_single_spectrum_result(tiny):
    proc = StreamProcessor(tiny)
    r = proc.process(demo_pairs(1)[0])
    assert r.chosen == "vis" and set(r.landmarks) == {"vis"}
    assert r.landmarks["vis"].shape == (68, 2) and r.boundary["vis"].shape == (4,)
    assert set(r.measures) == {"vis", "th"} and r.measures["th"]["units"] == "C"
    assert set(r.temperatures) == {"inner_eye_r", "inner_eye_l", "forehead", "nose_tip"}
    assert "vis" in r.nme and r.timings_ms["total"] > 0
    assert "th" in r.mapped or "vis" in r.mapped  # registered demo: identity mapping
    assert np.allclose(r.mapped["vis"], r.landmarks["vis"])
    d = r.to_dict()
    assert d["spectrum"] == "vis" and len(d["landmarks"]["vis"]) == 68 and d["decision"]["reason"]


def test_both_spectra_in_one_batch(tiny):
    spy = Spy(tiny)
    proc = StreamProcessor(spy, mode="both")
    r = proc.process(demo_pairs(1)[0])
    assert spy.calls == [{"n": 2, "boxes": None, "refine": True}]
    assert set(r.landmarks) == {"vis", "th"}
    assert r.decision.run == ("vis", "th")


def test_mapping_with_rig_homography():
    pair = demo_pairs(1, rig=1)[0]
    proc = StreamProcessor(TemplatePredictor(), mode="visible")
    r = proc.process(pair)
    Hinv = np.linalg.inv(pair.homography_th_to_vis)
    assert np.allclose(r.mapped["vis"], map_points(r.landmarks["vis"], Hinv))
    assert np.allclose(r.points_in("th"), r.mapped["vis"])
    assert r.temperatures  # measured at the mapped points in the thermal image


def test_box_reuse_skips_mb_while_tracking():
    spy = Spy(TemplatePredictor())
    proc = StreamProcessor(spy, reuse_box=True, redetect_every=4)
    results = [proc.process(p) for p in demo_pairs(10)]
    reused = [r.box_reused["vis"] for r in results]
    assert reused == [False, True, True, True, True, False, True, True, True, True]
    assert all(c["refine"] is False for c, u in zip(spy.calls, reused) if u)
    assert proc.n_reused == 8
    # when a spectrum switch happens there is nothing to reuse for the new one
    proc2 = StreamProcessor(Spy(TemplatePredictor()), reuse_box=True, mode="visible")
    proc2.process(demo_pairs(1)[0])
    proc2.set_mode("thermal")
    assert proc2.process(demo_pairs(2)[1]).box_reused == {"th": False}


def test_box_reuse_with_real_predictor_runs(tiny):
    proc = StreamProcessor(tiny, reuse_box=True, reuse_min_iou=0.0)
    rs = [proc.process(p) for p in demo_pairs(3)]
    assert rs[1].box_reused["vis"] and rs[2].landmarks["vis"].shape == (68, 2)


def test_temperatures_at_regions():
    c = np.full((100, 120), 30.0, np.float32)
    pts = np.stack([30 + _TEMPLATE[:, 0] * 60, 20 + _TEMPLATE[:, 1] * 60], axis=1)
    for i, t in ((39, 36.5), (42, 36.0)):
        x, y = np.round(pts[i]).astype(int)
        c[y, x] = t
    x, y = np.round(pts[30]).astype(int)
    c[y - 6:y + 7, x - 6:x + 7] = 32.0
    tp = temperatures_at(c, pts)
    assert tp["inner_eye_r"] == pytest.approx(36.5) and tp["inner_eye_l"] == pytest.approx(36.0)
    assert tp["nose_tip"] == pytest.approx(32.0) and tp["forehead"] == pytest.approx(30.0)
    assert all(np.isnan(v) for v in temperatures_at(c, pts + 1000).values())


def test_one_euro_smooths_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    base = np.stack([np.linspace(40, 80, 68), np.linspace(30, 90, 68)], axis=1)
    f = OneEuroFilter()
    still = [f(base + rng.normal(0, 1.0, base.shape), i / 30) for i in range(60)]
    assert np.std(np.array(still[20:]) - base) < 0.6
    f.reset()
    moving = [f(base + [3.0 * i, 0], i / 30) for i in range(60)]  # 90 px/s
    assert abs(moving[-1][0, 0] - (base[0, 0] + 177)) < 10


def test_smoothing_in_processor():
    class Jitter(TemplatePredictor):
        rng = np.random.default_rng(0)

        def predict(self, images, boxes=None, refine=True):
            out = super().predict(images, boxes, refine)
            for p in out:
                p.landmarks = p.landmarks + self.rng.normal(0, 1.5, p.landmarks.shape)
            return out

    pairs = demo_pairs(20)
    truth = TemplatePredictor().predict([pairs[0].vis])[0].landmarks
    raw = [StreamProcessor(Jitter()).process(p).landmarks["vis"] for p in pairs]
    proc = StreamProcessor(Jitter(), smoothing=True)
    sm = [proc.process(p).landmarks["vis"] for p in pairs]
    assert np.std(np.array(sm[5:]) - truth) < 0.7 * np.std(np.array(raw[5:]) - truth)


def test_benchmark_pipeline_reports_each_configuration():
    from dmsl_core.bench import benchmark_pipeline
    res = benchmark_pipeline(TemplatePredictor(), demo_pairs(4), repeat=2)
    assert set(res) == {"single", "both", "single+reuse", "both+reuse"}
    assert all(r["fps"] > 0 and r["frames"] == 4 for r in res.values())
    assert res["single+reuse"]["reused_frac"] == 0.75 and res["single"]["nme_chosen"] is not None
