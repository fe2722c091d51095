"""`dmsl import --preset 300w`: small folders in the 300-W layout (image + .pts beside it), written here."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.cli import main as cli_main
from dmsl_core.data.folder import load_samples, read_manifest
from dmsl_core.data.importers.ibug_300w import face_crop, import_300w, read_300w_points
from dmsl_core.data.imageio import read_image
from dmsl_core.data.pts import write_pts
from dmsl_core.landmarks import boundary_from_points


def _face_points(cx: float, cy: float, size: float, seed: int = 0) -> np.ndarray:
    """68 points spread over a face-sized box centred at (cx, cy)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.5, 0.5, (68, 2)) * size + [cx, cy]
    pts[0] = [cx - size / 2, cy]       # make the box exactly size x size
    pts[16] = [cx + size / 2, cy]
    pts[8] = [cx, cy + size / 2]
    pts[19] = [cx, cy - size / 2]
    return pts


def _photo(path: Path, w: int, h: int, seed: int, dtype=np.uint8) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a = rng.integers(30, 220, (h, w, 3)).astype(np.uint8)
    if dtype == np.uint16:
        a = a.astype(np.uint16) * 257
    assert cv2.imwrite(str(path), a)
    return a


def _headerless(path: Path, pts: np.ndarray) -> None:
    """The header-less variant of public 300-W copies: 68 lines of 1-based 'x y'."""
    path.write_text("".join(f"{x + 1:.6f} {y + 1:.6f}\n" for x, y in pts))


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def src300w(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    # helen: two faces of one photo (one subject), iBUG .pts with header
    _photo(src / "helen" / "100_1.jpg", 320, 240, 0)
    write_pts(src / "helen" / "100_1.pts", _face_points(100, 100, 60, 1))
    _photo(src / "helen" / "100_2.jpg", 320, 240, 1)
    write_pts(src / "helen" / "100_2.pts", _face_points(230, 120, 50, 2))
    # afw: header-less points, a face touching the image border
    _photo(src / "afw" / "77_1.jpg", 200, 160, 2)
    _headerless(src / "afw" / "77_1.pts", _face_points(30, 40, 50, 3))
    # lfpw: a 4-digit image number is not a face index; a 16-bit PNG is converted
    _photo(src / "lfpw" / "image_0001.png", 160, 160, 3, dtype=np.uint16)
    write_pts(src / "lfpw" / "image_0001.pts", _face_points(80, 80, 70, 4))
    # problems: a .pts without an image, a corrupt image, a 5-point file, points outside the image
    write_pts(src / "lfpw" / "image_0002.pts", _face_points(80, 80, 70, 5))
    (src / "lfpw" / "image_0003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    write_pts(src / "lfpw" / "image_0003.pts", _face_points(80, 80, 70, 6))
    _photo(src / "lfpw" / "image_0004.png", 160, 160, 7)
    write_pts(src / "lfpw" / "image_0004.pts", _face_points(80, 80, 70, 8)[:5])
    _photo(src / "lfpw" / "image_0005.png", 100, 100, 9)
    write_pts(src / "lfpw" / "image_0005.pts", _face_points(300, 80, 70, 10))
    return src


def test_import_300w_one_record_per_face_with_exact_points(src300w: Path, tmp_path: Path) -> None:
    before = _tree_hash(src300w)
    dst = tmp_path / "dst"
    report = import_300w(src300w, dst, crop=2.0, face_size=40)
    assert _tree_hash(src300w) == before                      # the source is never modified
    recs = read_manifest(dst)
    assert report.n_records == len(recs) == 4
    subjects = sorted(r.subject for r in recs)
    assert subjects == ["afw-77", "helen-100", "helen-100", "lfpw-image_0001"]
    assert {r.variation for r in recs} == {"afw", "helen", "lfpw"}
    assert all(r.vis and not r.th and r.registered for r in recs)

    # every bad file is named with its reason; the others were imported
    reasons = {Path(p.path).name: p.reason for p in report.problems}
    assert set(reasons) == {"image_0002.pts", "image_0003.png", "image_0004.pts", "image_0005.pts"}
    assert "no image" in reasons["image_0002.pts"]
    assert "not a readable image" in reasons["image_0003.png"]
    assert "5 points" in reasons["image_0004.pts"]
    assert "outside" in reasons["image_0005.pts"]
    assert "image_0005.pts" in report.summary()

    for rec in recs:
        img = read_image(rec.abspath(rec.vis))
        pts = rec.landmarks_for("vis")
        assert img.dtype == np.uint8 and img.ndim == 3
        box = boundary_from_points(pts)
        # crop = 2 x the box's larger side, shrunk so that side is 40 px: an 80 px square, face centred
        assert img.shape[:2] == (80, 80)
        assert max(box[2], box[3]) == pytest.approx(40, abs=0.01)
        assert box[0] + box[2] / 2 == pytest.approx(39.5, abs=0.01)
        assert box[1] + box[3] / 2 == pytest.approx(39.5, abs=0.01)
    # the training loader reads them
    assert len(load_samples(dst, ("vis",))) == 4


def test_face_crop_maps_pixels_exactly() -> None:
    """A bright dot at a landmark stays under the moved landmark (full resolution and shrunk)."""
    img = np.zeros((200, 300, 3), np.uint8)
    pts = _face_points(150, 100, 60, 0)
    x, y = np.round(pts[30]).astype(int)
    pts[30] = [x, y]
    img[y - 1:y + 2, x - 1:x + 2] = 255
    for face_size in (None, 30.0):
        crop, new = face_crop(img, pts, crop=3.0, face_size=face_size)
        g = crop[..., 0].astype(float)
        yy, xx = np.mgrid[:g.shape[0], :g.shape[1]]
        w = g * ((np.abs(xx - new[30, 0]) < 4) & (np.abs(yy - new[30, 1]) < 4))
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert cx == pytest.approx(new[30, 0], abs=0.15) and cy == pytest.approx(new[30, 1], abs=0.15)


def test_headerless_points_are_one_based(tmp_path: Path) -> None:
    pts = _face_points(50, 50, 20)
    _headerless(tmp_path / "a.pts", pts)
    np.testing.assert_allclose(read_300w_points(tmp_path / "a.pts"), pts, atol=1e-6)
    (tmp_path / "b.pts").write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match=r"b\.pts: 2 lines"):
        read_300w_points(tmp_path / "b.pts")


def test_cli_import_300w(src300w: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "cli"
    assert cli_main(["import", "--preset", "300w", str(src300w), str(dst), "--face-size", "50"]) == 0
    out = capsys.readouterr().out
    assert "records: 4" in out and "image_0004.pts" in out
    rec = read_manifest(dst)[0]
    assert max(boundary_from_points(rec.landmarks_for("vis"))[2:]) == pytest.approx(50, abs=0.01)
    # options of other presets are refused by name
    assert cli_main(["import", "--preset", "300w", str(src300w), str(tmp_path / "x"), "--pair-by", "name"]) != 0
    assert "--pair-by" in capsys.readouterr().err
