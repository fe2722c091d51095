"""Illumination measures and the spectrum switch: once each way on the demo, no flapping on noise."""
from __future__ import annotations

import numpy as np
import pytest

from dmsl_core.landmarks import boundary_from_points
from dmsl_core.sources import open_source
from dmsl_core.spectrum import SelectorConfig, SpectrumSelector, measure_image, measure_thermal


def grey(v: float, shape=(40, 50)) -> np.ndarray:
    return np.full(shape + (3,), int(round(v * 255)), np.uint8)


def test_measures_frame_and_face_region():
    img = np.zeros((100, 100, 3), np.uint8)
    img[20:60, 30:70] = 255
    m = measure_image(img)
    assert m.region == "frame" and m.mean == pytest.approx(0.16, abs=0.01)
    assert m.dark_frac == pytest.approx(0.84, abs=0.01) and m.sat_frac == pytest.approx(0.16, abs=0.01)
    assert m.p05 == 0.0 and m.p95 == 1.0
    f = measure_image(img, np.array([30, 20, 40, 40]))
    assert f.region == "face" and f.mean == pytest.approx(1.0) and f.sat_frac == 1.0
    assert measure_image(img, np.array([500, 500, 10, 10])).region == "frame"  # box outside -> whole frame
    t = measure_thermal(np.zeros((10, 10), np.uint16), np.full((10, 10), 34.0, np.float32))
    assert t["units"] == "C" and t["p50"] == pytest.approx(34.0)


def run_levels(levels, fps=25.0, **cfg):
    sel = SpectrumSelector(SelectorConfig(**cfg))
    out = []
    for i, v in enumerate(levels):
        d = sel.update(grey(float(np.clip(v, 0, 1))), True, i / fps)
        out.append(d)
    return sel, out


def switches(decisions):
    return [(i, d.chosen) for i, d in enumerate(decisions) if d.switched]


def test_switches_once_each_way_on_a_clean_fade():
    levels = [0.6] * 75 + [0.02] * 75 + [0.6] * 75
    sel, ds = run_levels(levels)
    sw = switches(ds)
    assert [c for _, c in sw] == ["th", "vis"]
    assert 75 <= sw[0][0] < 100 and 150 <= sw[1][0] < 175  # reacts within a second
    assert "low" in ds[sw[0][0]].reason and ds[sw[0][0]].thresholds["low"] == 0.12
    assert ds[0].measures is not None and ds[0].smoothed["mean"] == pytest.approx(0.6, abs=0.01)


@pytest.mark.parametrize("center", [0.12, 0.16, 0.20])
def test_no_flapping_on_noisy_light_around_thresholds(center):
    rng = np.random.default_rng(3)
    levels = center + rng.uniform(-0.07, 0.07, 25 * 30)  # 30 s of flickering light
    sel, ds = run_levels(levels)
    assert sel.switches <= 1


def test_dwell_time_blocks_fast_switch_back():
    levels = [0.6] * 25 + [0.0] * 5 + [0.6] * 50
    sel, ds = run_levels(levels, min_dwell_s=2.0, tau_s=0.05)
    sw = switches(ds)
    assert sw[0][1] == "th"
    assert sw[1][0] - sw[0][0] >= 50  # waited the 2 s dwell
    assert any("dwell" in d.reason for d in ds[sw[0][0]:sw[1][0]])


def test_saturation_switches_to_thermal():
    sel, ds = run_levels([0.5] * 30 + [1.0] * 60)
    assert [c for _, c in switches(ds)] == ["th"]
    assert "saturated" in ds[switches(ds)[0][0]].reason


def test_modes_and_missing_spectra():
    sel = SpectrumSelector(mode="visible")
    d = sel.update(grey(0.0), True, 0.0)
    assert d.chosen == "vis" and d.run == ("vis",) and "forced" in d.reason
    sel = SpectrumSelector(mode="thermal")
    assert sel.update(grey(0.5), True, 0.0).run == ("th",)
    assert sel.update(grey(0.5), False, 0.1).chosen == "vis"  # forced thermal, but none there
    sel = SpectrumSelector(mode="both")
    d = sel.update(grey(0.5), True, 0.0)
    assert d.run == ("vis", "th") and d.chosen == "vis"
    sel = SpectrumSelector()
    d = sel.update(None, True, 0.0)
    assert d.chosen == "th" and d.reason == "no visible image"
    assert sel.update(grey(0.0), False, 0.1).chosen == "vis"
    with pytest.raises(ValueError, match="mode"):
        SelectorConfig(mode="infrared")
    with pytest.raises(ValueError, match="low"):
        SelectorConfig(low=0.3, high=0.2)


def test_demo_light_cycle_switches_once_each_way():
    """One demo cycle: the light fades to dark and back; thermal once, visible once."""
    cycle, fps = 8.0, 10.0
    sel = SpectrumSelector()
    decisions = []
    with open_source(f"demo:?size=128x96&fps={fps:g}&cycle={cycle:g}&realtime=0&frames={int(cycle * fps)}") as src:
        for p in src:
            box = boundary_from_points(p.meta["landmarks_gt"])
            decisions.append((p.meta["state"]["light"], sel.update(p.vis, True, p.t, box)))
    sw = [(i, d.chosen) for i, (_, d) in enumerate(decisions) if d.switched]
    assert [c for _, c in sw] == ["th", "vis"], [(i, c, decisions[i][1].reason) for i, c in sw]
    t_th, t_vis = sw[0][0] / fps / cycle, sw[1][0] / fps / cycle
    assert 0.30 < t_th < 0.60 and 0.60 < t_vis < 0.85   # fade-out or early dark / fade-in
    assert all(d.measures.region == "face" for _, d in decisions)
