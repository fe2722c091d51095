"""The 300-W layout: real visible face photos with a 68-point iBUG ``.pts`` beside each image.

``dmsl import --preset 300w SRC DST`` (or :func:`import_300w`) turns a folder in that layout into a
DMSL dataset folder with **one record per annotated face**:

- every image below SRC that has a ``.pts`` of the same stem beside it (``100032540_1.jpg`` +
  ``100032540_1.pts``) is one face; a ``.pts`` without an image, an unreadable image, a ``.pts`` that
  is not 68 points or whose points leave the image are each reported with the file and the reason,
  and the import goes on;
- the face is cropped to a square around its points' bounding box (the face box B), of side
  ``crop`` x max(w, h) (default 3: the face fills a third of the crop, so the boundary model sees
  context and scale variation can be taken from the crop), and shrunk so the face box's larger side
  is at most ``face_size`` pixels (default 200; never enlarged). Crop pixels outside the photo are
  black. The landmarks are moved into the crop's pixels exactly;
- subject = ``<set>-<photo id>``, ``<set>`` the first folder under SRC holding the file (``afw``,
  ``helen``, ``lfpw``...) or SRC's own name, the photo id the stem without a trailing face index
  (``_1``, ``_2``: several faces of one AFW / HELEN photo are one subject, so they never land on
  both sides of a split); variation = the set name. Visible only (``th`` empty); thermal versions
  come from ``dmsl thermalize``.

The source is never modified. See ``docs/real-data.md`` for which repositories, commits and
folders make the project's training and test sets.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from ...landmarks import boundary_from_points
from ..folder import PairRecord, write_manifest
from ..imageio import read_image, write_image
from ..names import PHOTO_EXTENSIONS, natural_key
from ..pts import read_pts, write_pts
from .common import ImportReport, PathLike, _prepare_dst, _reason, _safe
from .registry import register_preset

__all__ = ["face_crop", "read_300w_points", "import_300w"]

IMAGE_SUFFIXES = PHOTO_EXTENSIONS  # the 300-W photos: 8-bit colour files
_FACE_INDEX = re.compile(r"_\d{1,2}$")  # AFW / HELEN: <photo>_<face>; LFPW's image_0001 keeps its number


def face_crop(image: np.ndarray, points: np.ndarray, crop: float = 3.0,
              face_size: Optional[float] = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """(square crop of side ``crop`` x the face box's larger side, points in the crop's pixels).

    The crop is shrunk so the face box's larger side is at most ``face_size`` pixels (``None``: full
    resolution); pixels outside the image are black. Pixel centres map exactly (affine warp).
    """
    if crop <= 1.0:
        raise ValueError(f"crop must be > 1 (the face box's larger side times it), got {crop}")
    pts = np.asarray(points, dtype=np.float64)
    x, y, w, h = boundary_from_points(pts)
    side = crop * max(w, h, 1.0)
    f = 1.0 if face_size is None else min(1.0, float(face_size) / max(w, h, 1.0))
    out = max(8, int(round(side * f)))
    f = out / side
    cx, cy = x + w / 2.0, y + h / 2.0
    # pixel centres: continuous position = index + 0.5; the crop spans the box centre +- side / 2, so
    # u + 0.5 = (x + 0.5 - (cx + 0.5 - side / 2)) * f  ->  u = f x + (side / 2 - cx) f - 0.5
    tx = (side / 2.0 - cx) * f - 0.5
    ty = (side / 2.0 - cy) * f - 0.5
    m = np.array([[f, 0.0, tx], [0.0, f, ty]], dtype=np.float64)
    interp = cv2.INTER_AREA if f < 1.0 else cv2.INTER_LINEAR
    if f < 0.5:  # an area-like shrink: blur before sampling so the warp does not alias
        sigma = 0.5 / f * 0.6
        image = cv2.GaussianBlur(image, (0, 0), sigma)
        interp = cv2.INTER_LINEAR
    img = cv2.warpAffine(image, m, (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    new = np.stack([pts[:, 0] * f + tx, pts[:, 1] * f + ty], axis=1)
    return img, new


def read_300w_points(path: PathLike) -> np.ndarray:
    """68 points of a 300-W annotation, 0-based: an iBUG ``.pts`` (with its ``n_points`` header), or the
    header-less variant some public copies carry (68 lines of ``x y``, the same 1-based coordinates)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if "n_points" in text:
        return read_pts(p)
    rows = [ln.split() for ln in text.splitlines() if ln.strip()]
    try:
        pts = np.array([[float(r[0]), float(r[1])] for r in rows if len(r) == 2], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{p}: neither an iBUG .pts file nor lines of two numbers") from None
    if len(pts) != len(rows) or len(pts) != 68:
        raise ValueError(f"{p}: {len(rows)} lines without an n_points header (expected 68 lines of 'x y')")
    return pts - 1.0


def _set_name(rel: Path, src: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else src.name


def _photo_id(stem: str) -> str:
    return _FACE_INDEX.sub("", stem)


@register_preset("300w")
def import_300w(src: PathLike, dst: PathLike, *, crop: float = 3.0, face_size: Optional[float] = 200.0,
                overwrite: bool = False, progress: Optional[Callable[[int, int], None]] = None,
                **unused) -> ImportReport:
    """Import a 300-W-layout folder (image + ``.pts`` pairs) into a dataset folder; see the module doc."""
    if unused:
        raise ValueError(f"--preset 300w does not take {', '.join(sorted(unused))}")
    src, dst = Path(src), Path(dst)
    _prepare_dst(src, dst, overwrite)
    report = ImportReport(preset="300w", src=str(src), dst=str(dst))
    pts_files = sorted((p for p in src.rglob("*.pts") if p.is_file()),
                       key=lambda p: natural_key(str(p.relative_to(src))))
    dst.mkdir(parents=True, exist_ok=True)
    records: list[PairRecord] = []
    used: set[str] = set()

    def leave_out(path: Path, reason: str) -> None:
        report.add(path, f"{reason}; face left out")
        report.n_skipped += 1

    for i, pts_path in enumerate(pts_files):
        if progress is not None:
            progress(i, len(pts_files))
        image_path = next((pts_path.with_suffix(s) for s in IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES)
                           if pts_path.with_suffix(s).is_file()), None)
        if image_path is None:
            leave_out(pts_path, "no image of the same name beside it")
            continue
        try:
            points = read_300w_points(pts_path)
        except (ValueError, OSError) as exc:
            leave_out(pts_path, _reason(exc, pts_path))
            continue
        if points.shape != (68, 2) or not np.isfinite(points).all():
            leave_out(pts_path, f"{len(points)} points (expected 68, all present)")
            continue
        try:
            image = read_image(image_path)
        except (ValueError, OSError) as exc:
            leave_out(image_path, _reason(exc, image_path))
            continue
        h, w = image.shape[:2]
        if ((points[:, 0] < -0.5 - 0.02 * w) | (points[:, 0] > w - 0.5 + 0.02 * w)
                | (points[:, 1] < -0.5 - 0.02 * h) | (points[:, 1] > h - 0.5 + 0.02 * h)).any():
            leave_out(pts_path, f"points outside the {w}x{h} image {image_path.name}")
            continue
        if image.dtype == np.uint16:  # one LFPW photo is a 16-bit PNG
            image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        elif image.dtype != np.uint8:
            leave_out(image_path, f"{image.dtype} image; 300-W photos are 8-bit")
            continue
        rel = pts_path.relative_to(src)
        set_name = _safe(_set_name(rel, src))
        subject = f"{set_name}-{_safe(_photo_id(pts_path.stem))}"
        key = _safe(pts_path.stem)
        name, n = f"{set_name}/{key}", 1
        while name in used:
            n += 1
            name = f"{set_name}/{key}_{n}"
        used.add(name)
        face, new_pts = face_crop(image, points, crop=crop, face_size=face_size)
        rec = PairRecord(subject=subject, variation=set_name, registered=True)
        rec.vis = f"images/{name}.png"
        rec.landmarks = f"landmarks/{name}.pts"
        try:
            write_image(dst / rec.vis, face)
            write_pts(dst / rec.landmarks, new_pts)
        except OSError as exc:
            leave_out(image_path, f"cannot write into {dst} ({exc.strerror or exc})")
            continue
        records.append(rec)
        report.n_vis += 1
        report.n_annotated += 1
    if progress is not None:
        progress(len(pts_files), len(pts_files))
    for img in src.rglob("*"):
        if img.suffix.lower() in IMAGE_SUFFIXES and img.is_file() and not img.with_suffix(".pts").exists():
            report.n_ignored += 1
    report.n_records = len(records)
    report.manifest = str(write_manifest(dst, records))
    if not pts_files:
        report.notes.append("no .pts file found below the source (300-W layout: image + .pts of the same name)")
    report.notes.append(f"{len({r.subject for r in records})} subjects (photos); faces cropped to {crop:g}x their "
                        f"box, box side <= {face_size:g} px" if face_size else "full resolution")
    return report
