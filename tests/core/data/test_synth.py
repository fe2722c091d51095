"""The synthetic paired visible/thermal face generator (dmsl_core.data.synth)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dmsl_core.cli import main as cli_main
from dmsl_core.data.folder import is_dark, load_samples, read_manifest, thermal_to_celsius
from dmsl_core.data.imageio import read_image
from dmsl_core.data.pts import read_pts
from dmsl_core.data.synth import (
    VARIATIONS, FaceRenderer, FaceState, SynthFrame, generate_dataset, interpolate, make_identity, variation_state,
)
from dmsl_core.data.synth.dataset import pair_state
from dmsl_core.landmarks import boundary_from_points, mirror_points

SIZE = (320, 256)


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer(size=SIZE, camera_seed=0)


def _render(renderer: FaceRenderer, seed: int, subject: int, variation: str) -> SynthFrame:
    ident, state, rng = pair_state(seed, subject, variation, renderer)
    return renderer.render(ident, state, rng)


def test_variations_are_the_21_eurecom_style_captures():
    assert len(VARIATIONS) == 21 and len(set(VARIATIONS)) == 21
    for name in ("neutral", "smile", "surprise", "yaw_left", "yaw_right", "pitch_up", "pitch_down", "glasses",
                 "sunglasses", "hand_mouth", "hat", "scarf", "light_left", "light_right", "dim", "dark"):
        assert name in VARIATIONS
    with pytest.raises(ValueError):
        variation_state("nope", np.random.default_rng(0))


def test_identity_is_deterministic_and_varied():
    a, b = make_identity(0, 3), make_identity(0, 3)
    assert a == b
    ids = [make_identity(0, i) for i in range(12)]
    assert len({i.skin for i in ids}) == 12
    assert len({i.hair_style for i in ids}) >= 2
    assert make_identity(1, 3) != a
    assert a.subject_id == "s004"


def test_render_is_deterministic(renderer):
    f1 = _render(renderer, 5, 1, "smile")
    f2 = _render(FaceRenderer(size=SIZE, camera_seed=0), 5, 1, "smile")
    for name in ("vis", "th_celsius", "th_u16", "th_u8", "landmarks"):
        np.testing.assert_array_equal(getattr(f1, name), getattr(f2, name))
    f3 = _render(renderer, 6, 1, "smile")
    assert not np.array_equal(f1.vis, f3.vis)
    assert not np.allclose(f1.landmarks, f3.landmarks)


def test_frames_are_registered_pairs_with_landmarks_inside(renderer):
    W, H = SIZE
    for v in VARIATIONS:
        f = _render(renderer, 0, 2, v)
        assert f.vis.shape == (H, W, 3) and f.vis.dtype == np.uint8
        assert f.th_celsius.shape == (H, W) and f.th_celsius.dtype == np.float32
        assert f.th_u16.shape == (H, W) and f.th_u16.dtype == np.uint16
        assert f.th_u8.shape == (H, W) and f.th_u8.dtype == np.uint8
        assert f.homography_th_to_vis is None
        lm = f.landmarks
        assert lm.shape == (68, 2) and lm.dtype == np.float64 and np.isfinite(lm).all()
        assert (lm[:, 0] >= 0).all() and (lm[:, 0] <= W - 1).all(), v
        assert (lm[:, 1] >= 0).all() and (lm[:, 1] <= H - 1).all(), v
        np.testing.assert_allclose(f.boundary, boundary_from_points(lm))
        # a face of decent size
        assert 0.2 * H < f.boundary[3] < 0.9 * H
        # centi-kelvin encoding of the temperature
        np.testing.assert_allclose(f.th_u16 / 100.0 - 273.15, f.th_celsius, atol=0.006)


def test_thermal_temperatures_are_physiological(renderer):
    f = _render(renderer, 0, 0, "neutral")
    lm = f.landmarks
    T = f.th_celsius
    canthus = max(T[int(round(lm[i, 1])), int(round(lm[i, 0]))] for i in (39, 42))
    nose = T[int(round(lm[30, 1])), int(round(lm[30, 0]))]
    assert 34.5 < canthus < 37.5
    assert nose < canthus - 1.0
    corner = np.concatenate([T[:12, :12].ravel(), T[:12, -12:].ravel()])
    assert 17.0 < np.median(corner) < 27.0


def _eye_box_mean(frame: SynthFrame) -> float:
    lm = frame.landmarks[36:48]
    x0, y0 = np.floor(lm.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(lm.max(axis=0)).astype(int) + 3
    return float(frame.th_celsius[y0:y1, x0:x1].mean())


def test_glasses_are_cold_in_thermal_and_clear_in_visible(renderer):
    ident = make_identity(0, 1)
    base = FaceState(scale=0.55, light_azimuth=0.0)
    plain = renderer.render(ident, base, np.random.default_rng(0))
    glasses = renderer.render(ident, replace(base, occlusions=frozenset({"glasses"})), np.random.default_rng(0))
    sun = renderer.render(ident, replace(base, occlusions=frozenset({"sunglasses"})), np.random.default_rng(0))
    assert _eye_box_mean(glasses) < _eye_box_mean(plain) - 2.0
    assert _eye_box_mean(sun) < _eye_box_mean(plain) - 2.0
    np.testing.assert_array_equal(glasses.landmarks, plain.landmarks)  # true positions under occlusion
    # clear lenses: the visible eye region changes much less than with sunglasses
    lm = plain.landmarks[36:48]
    x0, y0 = np.floor(lm.min(axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0)).astype(int) + 1
    d_clear = np.abs(glasses.vis[y0:y1, x0:x1].astype(float) - plain.vis[y0:y1, x0:x1]).mean()
    d_sun = np.abs(sun.vis[y0:y1, x0:x1].astype(float) - plain.vis[y0:y1, x0:x1]).mean()
    assert d_clear < 0.5 * d_sun


def test_dark_variation_is_black_in_visible_but_not_in_thermal(renderer):
    f = _render(renderer, 0, 4, "dark")
    assert is_dark(f.vis)
    assert f.vis.mean() < 8
    lit = _render(renderer, 0, 4, "neutral")
    assert not is_dark(lit.vis)
    b = f.boundary.astype(int)
    face = f.th_celsius[b[1]:b[1] + b[3], b[0]:b[0] + b[2]]
    assert face.mean() > 31.0
    assert f.th_u8.std() > 30


def test_mirror_symmetry(renderer):
    """A symmetric identity at yaw +20 mirrored equals the same identity at yaw -20."""
    ident = replace(make_identity(0, 7), hair_part=0.0)
    W = SIZE[0]
    base = FaceState(scale=0.5, cx=0.5, cy=0.5, light_azimuth=0.0, light_elevation=20.0, breath=0.0)
    r = FaceRenderer(size=SIZE, jpeg=False)
    fa = r.render(ident, replace(base, yaw=20.0, pitch=5.0), np.random.default_rng(0))
    fb = r.render(ident, replace(base, yaw=-20.0, pitch=5.0), np.random.default_rng(0))
    mirrored = mirror_points(fa.landmarks, W)
    np.testing.assert_allclose(mirrored, fb.landmarks, atol=1e-6)
    # and the mirrored pixels sit on the same features: compare patches at the inner landmarks
    va = fa.vis[:, ::-1].astype(np.float32).mean(axis=2)
    vb = fb.vis.astype(np.float32).mean(axis=2)
    ta, tb = fa.th_celsius[:, ::-1], fb.th_celsius
    dv, dt = [], []
    for x, y in np.round(fb.landmarks[17:68]).astype(int):
        dv.append(np.abs(va[y - 2:y + 3, x - 2:x + 3] - vb[y - 2:y + 3, x - 2:x + 3]).mean())
        dt.append(np.abs(ta[y - 2:y + 3, x - 2:x + 3] - tb[y - 2:y + 3, x - 2:x + 3]).mean())
    assert np.mean(dv) < 8.0, np.mean(dv)
    assert np.mean(dt) < 0.4, np.mean(dt)


def test_turned_head_jaw_follows_the_silhouette(renderer):
    ident = make_identity(0, 0)
    front = renderer.landmarks(ident, FaceState())
    st = FaceState(yaw=35.0)  # nose to the image right: the image-right cheek turns away
    turned = renderer.landmarks(ident, st)
    posed = renderer._pose(ident, st)
    nominal = posed.proj(posed.geo.lm[0:17])
    # near side (image left): the jaw points are visible, they stay where they are
    np.testing.assert_allclose(turned[0:8], nominal[0:8], atol=1e-9)
    assert turned[0, 0] > front[0, 0]
    # far side: hidden points slid out to the silhouette of the cheek
    assert (turned[9:17, 0] >= nominal[9:17, 0] - 1e-9).all()
    assert (turned[12:17, 0] > nominal[12:17, 0] + 2.0).all()
    assert turned[16, 0] > turned[45, 0]
    far = np.abs(np.diff(turned[9:17, 0])).sum()
    near = np.abs(np.diff(turned[0:8, 0])).sum()
    assert far < near


def test_misregistration_homography(renderer):
    ident = make_identity(0, 2)
    st = FaceState(th_dx=6.0, th_dy=-3.0)
    f = renderer.render(ident, st, np.random.default_rng(0))
    assert f.homography_th_to_vis is not None
    np.testing.assert_allclose(f.th_landmarks, f.landmarks - [6.0, -3.0], atol=1e-9)
    reg = renderer.render(ident, FaceState(), np.random.default_rng(0))
    # the thermal image content moved by the same shift
    a = reg.th_celsius[40:200, 60:260]
    b = f.th_celsius[40 + 3:200 + 3, 60 - 6:260 - 6]
    assert np.abs(a - b).mean() < 0.35
    assert np.abs(a - f.th_celsius[40:200, 60:260]).mean() > np.abs(a - b).mean()


def test_state_helpers():
    a = FaceState(yaw=-30, smile=0.0)
    b = FaceState(yaw=30, smile=1.0, occlusions=frozenset({"hand_mouth"}))
    m = interpolate(a, b, 0.5)
    assert m.yaw == pytest.approx(0.0) and m.smile == pytest.approx(0.5) and m.occlusions == b.occlusions
    assert interpolate(a, b, 0.25).occlusions == frozenset()
    assert FaceState().with_expression("surprise", 0.7).expression == {"surprise": 0.7}
    assert FaceState(smile=1).with_expression("neutral").expression == {}
    with pytest.raises(ValueError):
        FaceState(occlusions=frozenset({"helmet"}))


def test_generate_dataset_reads_back(tmp_path):
    names = ["neutral", "yaw_left", "dark"]
    summary = generate_dataset(tmp_path / "ds", subjects=2, seed=1, size=(160, 128), variations=names)
    assert summary["pairs"] == 6 and summary["pairs_per_s"] > 0
    recs = read_manifest(tmp_path / "ds")
    assert [(r.subject, r.variation) for r in recs] == [(s, v) for s in ("s001", "s002") for v in names]
    assert all(r.registered and r.th_format == "u16_ck" for r in recs)
    samples = load_samples(tmp_path / "ds")
    assert len(samples) == 2 * 3 * 2 - 2  # the two black "lights off" visible images are dropped
    th = [s for s in samples if s.spectrum == "th"]
    img = th[0].load()
    assert img.dtype == np.uint16 and img.shape == (128, 160)
    temp = thermal_to_celsius(img, "u16_ck")
    assert 15.0 < float(temp.min()) and float(temp.max()) < 40.0
    assert (tmp_path / "ds" / "th8" / "s001_neutral.png").exists()
    assert read_image(tmp_path / "ds" / "th8" / "s001_neutral.png").dtype == np.uint8
    # the files hold exactly what the renderer gives
    r = FaceRenderer(size=(160, 128), camera_seed=1)
    ident, state, rng = pair_state(1, 1, "yaw_left", r)
    f = r.render(ident, state, rng)
    np.testing.assert_allclose(read_pts(tmp_path / "ds" / "pts" / "s002_yaw_left.pts"), f.landmarks, atol=1e-3)
    np.testing.assert_array_equal(read_image(tmp_path / "ds" / "vis" / "s002_yaw_left.png"), f.vis)
    np.testing.assert_array_equal(read_image(tmp_path / "ds" / "th" / "s002_yaw_left.png"), f.th_u16)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["synth", "--out", str(out), "--subjects", "1", "--seed", "2", "--size", "160x128",
                   "--variations", "neutral,smile", "--float"])
    assert rc == 0
    assert "pairs/s" in capsys.readouterr().out
    assert len(read_manifest(out)) == 2
    assert read_image(out / "th_f32" / "s001_smile.npy").dtype == np.float32
    assert cli_main(["synth", "--out", str(out), "--variations", "nope"]) == 2
    assert cli_main(["synth", "--out", str(out), "--size", "big"]) == 2
