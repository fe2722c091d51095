"""The per-frame pipeline: batching, box reuse, mapping, temperatures, smoothing, drops, errors, stop."""
from __future__ import annotations

import threading
import time
from typing import Iterator

import numpy as np
import pytest

from dmsl_core.frames import FramePair
from dmsl_core.landmarks import boundary_from_points
from dmsl_core.pipeline import Prediction, Predictor
from dmsl_core.registration import map_points
from dmsl_core.smoothing import OneEuroFilter
from dmsl_core.sources import FrameSource, open_source
from dmsl_core.sources.demo import _TEMPLATE
from dmsl_core.stream import (LatestFrameGrabber, StreamProcessor, StreamRunner, temperatures_at)


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


class CountingSource(FrameSource):
    """A fast live source of tiny frames."""

    kind = "test"

    def __init__(self, n: int, period: float = 0.0, fail_after: int | None = None, stall_after: int | None = None):
        super().__init__("test")
        self.n, self.period, self.fail_after, self.stall_after = n, period, fail_after, stall_after
        self._info.update(live=True)

    def _frames(self) -> Iterator[FramePair]:
        img = np.full((32, 32, 3), 128, np.uint8)
        for i in range(self.n):
            if self.fail_after is not None and i == self.fail_after:
                raise OSError("device unplugged")
            while self.stall_after is not None and i >= self.stall_after and not self._closed:
                time.sleep(0.01)
            if self.period:
                time.sleep(self.period)
            yield FramePair(vis=img, th=None, t=i * 0.01, index=i)


def test_grabber_keeps_newest_and_counts_drops():
    g = LatestFrameGrabber(CountingSource(60, period=0.002)).start()
    taken = []
    while True:
        p = g.get(timeout=1.0)
        if p is None and g.finished:
            break
        if p is not None:
            taken.append(p.index)
            time.sleep(0.02)  # slow consumer
    assert g.received == 60 and g.dropped > 0
    assert g.taken + g.dropped == g.received
    assert taken == sorted(taken) and taken[-1] == 59  # always the newest


def test_runner_drops_on_live_slow_consumer():
    class Slow(TemplatePredictor):
        def predict(self, images, boxes=None, refine=True):
            time.sleep(0.02)
            return super().predict(images, boxes, refine)

    runner = StreamRunner(CountingSource(80, period=0.002), StreamProcessor(Slow()))
    stats = runner.run()
    assert stats.received == 80 and stats.dropped > 0 and stats.processed + stats.dropped == 80


def test_runner_processes_every_recorded_frame():
    with open_source("demo:?size=64x48&frames=12&realtime=0") as src:
        stats = StreamRunner(src, StreamProcessor(TemplatePredictor())).run()
    assert stats.processed == 12 and stats.dropped == 0


def test_camera_disappearing_is_an_error_event():
    with open_source("fake:cam?frames=5&fps=200&size=64x48") as src:
        kinds, errors = [], []
        for ev in StreamRunner(src, StreamProcessor(TemplatePredictor())).events():
            kinds.append(ev.kind)
            if ev.kind == "error":
                errors.append(ev.error)
    assert kinds[0] == "started" and kinds[-2:] == ["error", "finished"] and 1 <= kinds.count("result") <= 5
    assert "stopped delivering" in errors[0]
    errs = []
    StreamRunner(CountingSource(10, fail_after=3), StreamProcessor(TemplatePredictor())).run(on_error=errs.append)
    assert errs and "unplugged" in errs[0]


def test_stalled_source_ends_with_error_not_hang():
    src = CountingSource(100, stall_after=2)
    errs = []
    t = time.monotonic()
    StreamRunner(src, StreamProcessor(TemplatePredictor()), stall_timeout_s=0.3).run(on_error=errs.append)
    src.close()
    assert errs and "no frame" in errs[0] and time.monotonic() - t < 5


def test_cooperative_stop_and_max_frames():
    stop = threading.Event()
    seen = []

    def on_result(r):
        seen.append(r.index)
        if len(seen) == 3:
            stop.set()

    with open_source("demo:?size=64x48&fps=100") as src:  # live, unbounded
        stats = StreamRunner(src, StreamProcessor(TemplatePredictor()), stop=stop).run(on_result=on_result)
    assert stats.processed == 3
    with open_source("demo:?size=64x48&realtime=0") as src:
        assert StreamRunner(src, StreamProcessor(TemplatePredictor()), max_frames=7).run().processed == 7


def test_benchmark_pipeline_reports_each_configuration():
    from dmsl_core.stream import benchmark_pipeline
    res = benchmark_pipeline(TemplatePredictor(), demo_pairs(4), repeat=2)
    assert set(res) == {"single", "both", "single+reuse", "both+reuse"}
    assert all(r["fps"] > 0 and r["frames"] == 4 for r in res.values())
    assert res["single+reuse"]["reused_frac"] == 0.75 and res["single"]["nme_chosen"] is not None


def test_on_demand_demo_renders_only_what_is_consumed():
    """The realtime demo is read at most one frame ahead: frames a slow consumer cannot take are
    skipped by the wall clock (and counted as dropped), not rendered and thrown away."""
    src = open_source("demo:?fps=50&size=96x80&realtime=1")
    assert src.info["on_demand"]
    rendered = []
    orig = src.scene.pair

    def counting(i, uri):
        rendered.append(i)
        return orig(i, uri)
    src.scene.pair = counting
    grabber = LatestFrameGrabber(src).start()
    try:
        taken = []
        for _ in range(5):
            p = grabber.get(timeout=5)
            assert p is not None
            taken.append(p.index)
            time.sleep(0.2)          # a slow consumer: 10 frames of the source pass meanwhile
    finally:
        grabber.stop()
        src.close()
    assert len(rendered) <= len(taken) + 2
    assert taken == sorted(taken) and taken[-1] - taken[0] >= 20  # the scene ran at wall-clock speed
    assert grabber.dropped >= 20 and grabber.dropped == src.skipped_frames
