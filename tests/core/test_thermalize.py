"""Visible face + 68 points -> synthetic thermal (dmsl_core.thermalize) and ``dmsl thermalize``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmsl_core.cli import main as cli_main
from dmsl_core.data.folder import PairRecord, read_manifest, thermal_to_celsius, write_manifest
from dmsl_core.data.imageio import read_image, write_image
from dmsl_core.data.pts import read_pts, write_pts
from dmsl_core.data.synth import FaceRenderer
from dmsl_core.data.synth.dataset import pair_state
from dmsl_core.thermalize import ThermalOptions, row_seed, thermalize_dataset, thermalize_face, to_u8, to_u16_ck

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faces():
    """Three generated visible faces (RGB uint8 320x256) with their exact 68 points."""
    r = FaceRenderer(size=(320, 256), camera_seed=0, jpeg=False)
    out = []
    for subj, var in ((0, "neutral"), (1, "smile"), (2, "neutral")):
        ident, state, rng = pair_state(3, subj, var, r)
        f = r.render(ident, state, rng)
        out.append((f.vis, f.landmarks))
    return out


@pytest.fixture()
def vis_dataset(tmp_path, faces):
    """A visible-only dataset folder (manifest, vis/*.png, pts/*.pts)."""
    src = tmp_path / "src"
    recs = []
    for i, (img, pts) in enumerate(faces):
        write_image(src / f"vis/f{i}.png", img)
        write_pts(src / f"pts/f{i}.pts", pts)
        recs.append(PairRecord(subject=f"s{i}", variation="neutral", vis=f"vis/f{i}.png", th="",
                               landmarks=f"pts/f{i}.pts", th_format="u8", registered=True))
    write_manifest(src, recs)
    return src


def _regions(tf, pts):
    c = tf.celsius
    up = (pts[27] - pts[8]) / np.linalg.norm(pts[27] - pts[8])
    cb = np.linalg.norm(pts[19:25].mean(0) - pts[8])

    def at(p, r=1):
        x, y = int(round(p[0])), int(round(p[1]))
        return c[y - r:y + r + 1, x - r:x + r + 1]

    canthus = max(float(at(pts[39] + 0.12 * (pts[39] - pts[36]), 2).max()),
                  float(at(pts[42] + 0.12 * (pts[42] - pts[45]), 2).max()))
    forehead = float(np.median(at(pts[17:27].mean(0) + up * 0.2 * cb, 2)))
    cheeks = float(np.median(np.concatenate([at(0.5 * (pts[3] + pts[31]) + 0.0, 2).ravel(),
                                             at(0.5 * (pts[13] + pts[35]), 2).ravel()])))
    nose = float(np.median(at(pts[30], 1)))
    border = np.concatenate([c[:6, :].ravel(), c[:, :6].ravel(), c[:, -6:].ravel()])
    return canthus, forehead, cheeks, nose, float(np.median(border))


def test_same_seed_same_bytes_other_seed_differs(faces):
    img, pts = faces[0]
    a = thermalize_face(img, pts, seed=7)
    b = thermalize_face(img.copy(), pts.copy(), seed=7)
    assert a.celsius.shape == img.shape[:2] and a.celsius.dtype == np.float32
    assert a.celsius.tobytes() == b.celsius.tobytes()
    assert to_u16_ck(a.celsius).tobytes() == to_u16_ck(b.celsius).tobytes()
    c = thermalize_face(img, pts, seed=8)
    assert np.abs(c.celsius - a.celsius).mean() > 0.2
    np.testing.assert_array_equal(a.points, pts)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_region_temperatures(faces, seed):
    img, pts = faces[seed % len(faces)]
    tf = thermalize_face(img, pts, seed=seed)
    canthus, forehead, cheeks, nose, border = _regions(tf, pts)
    assert 35.2 <= canthus <= 37.3, canthus
    assert canthus > forehead + 0.4 and canthus > cheeks + 0.8 and canthus > nose + 0.8
    assert 33.3 <= forehead <= 35.6, forehead
    assert 32.0 <= cheeks <= 34.6, cheeks
    assert nose < cheeks, (nose, cheeks)
    assert 18.0 <= tf.ambient_c <= 28.0
    assert abs(border - tf.ambient_c) < 3.0, (border, tf.ambient_c)
    assert forehead - border > 4.0


def test_background_has_structure_and_visible_texture_does_not_leak(faces):
    img, pts = faces[0]
    # print a fine stripe pattern over the (visible) background and the cheek
    striped = img.copy()
    striped[::2, :, :] = 255 - striped[::2, :, :]
    a = thermalize_face(img, pts, seed=4).celsius
    b = thermalize_face(striped, pts, seed=4).celsius
    d = b - a
    # no 2-pixel stripes come through: the row-to-row alternation of the difference is tiny
    alt = np.abs(d[1:-1] - 0.5 * (d[:-2] + d[2:])).mean()
    assert alt < 0.02, alt
    bg = a[:40, :60]
    assert np.std(bg) > 0.05  # not flat


def test_u16_ck_round_trip_and_u8_palettes(faces):
    img, pts = faces[1]
    c = thermalize_face(img, pts, seed=2).celsius
    raw = to_u16_ck(c)
    assert raw.dtype == np.uint16
    back = thermal_to_celsius(raw, "u16_ck")
    assert np.abs(back - c).max() <= 0.01
    w, k = to_u8(c, "white-hot"), to_u8(c, "black-hot")
    assert w.dtype == np.uint8 and w.shape == c.shape
    np.testing.assert_array_equal(k.astype(int), 255 - w.astype(int))
    assert w.min() == 0 and w.max() == 255  # AGC uses the range
    # hotter is brighter in white-hot
    hot, cold = np.unravel_index(np.argmax(c), c.shape), np.unravel_index(np.argmin(c), c.shape)
    assert w[hot] > w[cold] and k[hot] < k[cold]
    with pytest.raises(ValueError, match="palette"):
        to_u8(c, "rainbow")


def test_glasses_option_cools_the_eyes(faces):
    img, pts = faces[0]
    a = thermalize_face(img, pts, seed=5).celsius
    g = thermalize_face(img, pts, seed=5, options=ThermalOptions(glasses=True)).celsius
    e = pts[36:42].mean(0).round().astype(int)
    assert g[e[1], e[0]] < a[e[1], e[0]] - 3.0


def test_missing_points_are_an_error():
    img = np.zeros((64, 64, 3), np.uint8)
    pts = np.full((68, 2), np.nan)
    with pytest.raises(ValueError, match="missing"):
        thermalize_face(img, pts, seed=0)
    with pytest.raises(ValueError, match="68"):
        thermalize_face(img, np.zeros((5, 2)), seed=0)


def test_dataset_conversion_with_a_bad_row(vis_dataset, tmp_path, faces):
    src = vis_dataset
    # a bad row: the image is not an image; another: the .pts is missing
    (src / "vis/bad.png").write_bytes(b"not a png")
    write_pts(src / "pts/bad.pts", faces[0][1])
    recs = read_manifest(src)
    recs.append(PairRecord(subject="sx", variation="neutral", vis="vis/bad.png", th="", landmarks="pts/bad.pts"))
    recs.append(PairRecord(subject="sy", variation="neutral", vis="vis/f0.png", th="", landmarks="pts/gone.pts"))
    write_manifest(src, recs)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    dst = tmp_path / "dst"
    seen = []
    rep = thermalize_dataset(src, dst, seed=3, progress=lambda d, n: seen.append((d, n)))
    assert rep.converted == 3
    assert len(rep.skipped) == 2
    assert any("bad.png" in s for s in rep.skipped) and any("gone.pts" in s for s in rep.skipped)
    assert seen[-1] == (5, 5)
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # source untouched

    out = read_manifest(dst)
    assert [r.vis for r in out] == ["vis/f0.png", "vis/f1.png", "vis/f2.png"]
    for r, (img, pts) in zip(out, faces):
        assert r.th_format == "u16_ck" and r.registered and r.th == "th/vis/" + Path(r.vis).stem + ".png"
        np.testing.assert_allclose(read_pts(dst / r.landmarks), pts, atol=1e-3)  # points unchanged
        raw = read_image(dst / r.th)
        assert raw.dtype == np.uint16 and raw.shape == img.shape[:2]
        c = thermal_to_celsius(raw, "u16_ck")
        assert 15.0 < np.median(c) < 37.5
        th8 = read_image(dst / f"th8/{Path(r.th).relative_to('th')}")
        assert th8.dtype == np.uint8 and th8.shape == img.shape[:2]
        np.testing.assert_array_equal(read_image(dst / r.vis), img)

    # refuses to overwrite without the flag; with it, the same seed gives the same bytes in any order
    with pytest.raises(ValueError, match="overwrite"):
        thermalize_dataset(src, dst, seed=3)
    first = (dst / "th/vis/f1.png").read_bytes()
    recs2 = list(reversed(read_manifest(src)))
    write_manifest(src, recs2)
    rep2 = thermalize_dataset(src, dst, seed=3, overwrite=True)
    assert rep2.converted == 3
    assert (dst / "th/vis/f1.png").read_bytes() == first
    rep3 = thermalize_dataset(src, tmp_path / "dst2", seed=4)
    assert (tmp_path / "dst2/th/vis/f1.png").read_bytes() != first
    assert rep3.converted == 3
    assert row_seed(3, "vis/f1.png") != row_seed(4, "vis/f1.png")


def test_destination_inside_source_is_refused(vis_dataset):
    with pytest.raises(ValueError, match="separate folder"):
        thermalize_dataset(vis_dataset, vis_dataset / "out")
    with pytest.raises(ValueError, match="not a folder"):
        thermalize_dataset(vis_dataset / "nope", vis_dataset.parent / "out")


def test_cli_dataset_and_single_image(vis_dataset, tmp_path, capsys):
    dst = tmp_path / "cli_out"
    assert cli_main(["thermalize", str(vis_dataset), str(dst), "--seed", "2"]) == 0
    assert "converted 3 row(s)" in capsys.readouterr().out
    assert len(read_manifest(dst)) == 3

    img, pts = vis_dataset / "vis/f0.png", vis_dataset / "pts/f0.pts"
    out8, out16 = tmp_path / "one8.png", tmp_path / "one16.png"
    assert cli_main(["thermalize", "--image", str(img), "--pts", str(pts), "--out", str(out8)]) == 0
    assert cli_main(["thermalize", "--image", str(img), "--pts", str(pts), "--out", str(tmp_path / "k.png"),
                     "--palette", "black-hot"]) == 0
    assert cli_main(["thermalize", "--image", str(img), "--pts", str(pts), "--out", str(out16), "--bits", "16"]) == 0
    a8, k8, a16 = read_image(out8), read_image(tmp_path / "k.png"), read_image(out16)
    assert a8.dtype == np.uint8 and a16.dtype == np.uint16 and a8.shape == a16.shape == (256, 320)
    np.testing.assert_array_equal(k8.astype(int), 255 - a8.astype(int))
    # the same as the dataset conversion of that row uses its own seed; here seed 0 by default
    tf = thermalize_face(read_image(img), read_pts(pts), seed=0)
    np.testing.assert_array_equal(a16, to_u16_ck(tf.celsius))
    capsys.readouterr()

    assert cli_main(["thermalize", "--image", str(tmp_path / "missing.png"), "--pts", str(pts),
                     "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.png" in err[0] and "no such file" in err[0]
    assert cli_main(["thermalize", str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]


def test_cli_subprocess_bad_path_one_line_no_traceback(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "dmsl_core.cli", "thermalize", str(tmp_path / "nope"),
                        str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "Traceback" not in r.stderr


def test_command_module_does_not_import_torch_or_the_converter():
    code = ("import sys, argparse; import dmsl_core.commands.data as d; "
            "d.register(argparse.ArgumentParser().add_subparsers()); "
            "print('torch' in sys.modules, 'dmsl_core.thermalize' in sys.modules)")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    torch_loaded, conv_loaded = r.stdout.split()
    assert conv_loaded == "False"
    assert torch_loaded == "False"


def test_row_with_unusable_points_is_reported_with_its_file(vis_dataset, tmp_path, faces):
    pts = faces[0][1].copy()
    pts[36:48] = np.nan                      # no eyes
    write_pts(vis_dataset / "pts/f1.pts", pts)
    rep = thermalize_dataset(vis_dataset, tmp_path / "out", seed=0)
    assert rep.converted == 2 and len(rep.skipped) == 1
    assert "f1.png" in rep.skipped[0] and "missing" in rep.skipped[0]
    assert [r.vis for r in read_manifest(tmp_path / "out")] == ["vis/f0.png", "vis/f2.png"]
