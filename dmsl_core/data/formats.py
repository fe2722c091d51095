"""Landmark annotation formats: readers and writers, all in the project's convention.

In memory every format becomes an ``(N, 2)`` float64 array of ``(x, y)`` in **0-based pixel
coordinates** (the centre of the top-left pixel is ``(0, 0)``), with ``NaN`` rows for missing
points. Each reader converts from its file's convention and each writer converts back:

============== ========= ============================================================================
format         extension file convention (what the reader undoes)
============== ========= ============================================================================
iBUG pts       ``.pts``  ``x y`` per line, **1-based** (300-W); missing written as ``-1 -1``
                         (see :mod:`.pts`).
dlib XML       ``.xml``  imglab / ``load_image_dataset`` metadata. dlib's ``point`` is integer and
                         **0-based** (pixel ``(0, 0)`` is the top-left pixel; ``rectangle`` is
                         inclusive), so no shift. Parts that are not present are simply omitted
                         (dlib's ``OBJECT_PART_NOT_PRESENT``). dlib parses the attributes as
                         integers, so the writer rounds by default (``integer=True``);
                         ``integer=False`` keeps 3 decimals for lossless round trips among our own
                         tools. Boxes are kept as written: ``[left, top, width, height]``.
menpo LJSON    ``.ljson`` menpo's ``PointCloud`` for images is ``(y, x)`` = (row, column), **0-based**
                         (menpo subtracts 1 when it reads a ``.pts``, and nothing for LJSON), so the
                         reader swaps the columns and does not shift. ``null`` coordinates are missing
                         points. Versions 1 (``groups`` list), 2 (``landmarks.points`` + ``labels``
                         masks) and 3 (``groups`` dict) are read; version 2 is written, with the
                         iBUG group masks and connectivity for 68 points.
LabelMe JSON   ``.json`` one ``point`` shape per landmark, ``label`` = the index (a trailing
                         integer: ``"12"``, ``"pt_12"``); points are ``[x, y]`` in LabelMe's canvas
                         units, where pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` (Qt paints the
                         image at the origin), so a click on a pixel centre reads ``i + 0.5``. The
                         reader subtracts :data:`LABELME_PIXEL_OFFSET` (0.5) and the writer adds it.
                         Index base: 0 if a label ``0`` exists, 1 if the labels run up to 54 or 68
                         without a 0, else 0 (files we write record it under a ``"dmsl"`` key, which
                         LabelMe keeps as extra data). Unlabelled point shapes are taken in order.
                         A ``rectangle`` shape becomes the box.
CSV            ``.csv``  one row per image: ``image, x0, y0, ..., x67, y67``, 0-based pixels (our
                         own convention); an optional header; empty or ``nan`` cells are missing.
============== ========= ============================================================================

SF-TL54's 54-point scheme is iBUG 0-47 (jaw, brows, nose, eyes) plus six mouth points; see
:data:`SF54_TO_68`, :func:`map_54_to_68` and :func:`map_68_to_54`.

Every write is atomic (temp file + rename); every bad file raises
:class:`~dmsl_core.data.pts.AnnotationError` naming the file and the problem.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..landmarks import CONTOURS, GROUPS, N_POINTS
from .imageio import atomic_write_text
from .pts import AnnotationError, read_pts, write_pts

__all__ = [
    "AnnotationError", "FaceAnnotation", "ANNOTATION_EXTENSIONS", "LABELME_PIXEL_OFFSET",
    "SF54_TO_68", "N_POINTS_SF54", "map_54_to_68", "map_68_to_54", "to_68",
    "read_pts", "write_pts",
    "read_dlib_xml", "read_dlib_xml_all", "write_dlib_xml",
    "read_ljson", "write_ljson",
    "read_labelme", "read_labelme_annotation", "write_labelme",
    "read_csv_landmarks", "write_csv_landmarks",
    "detect_format", "read_landmarks", "write_landmarks",
]

PathLike = Union[str, os.PathLike]

ANNOTATION_EXTENSIONS = (".pts", ".ljson", ".json", ".xml", ".csv")
LABELME_PIXEL_OFFSET = 0.5

# ---------------------------------------------------------------------------------------------
# SF-TL54 <-> iBUG 68
# ---------------------------------------------------------------------------------------------
N_POINTS_SF54 = 54
#: index in the 68-point scheme of each of SF-TL54's 54 points: 0-47 are iBUG 0-47; then the two
#: mouth corners (-> 48, 54) and four points on the vertical mouth midline, top to bottom of the
#: mouth as outer top, inner top, inner bottom, outer bottom (-> 51, 62, 66, 57).
SF54_TO_68: np.ndarray = np.array(list(range(48)) + [48, 54, 51, 62, 66, 57], dtype=np.intp)
SF54_TO_68.setflags(write=False)


def _as_points(points: Any, what: str = "points") -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{what} must be an (N, 2) array, got shape {pts.shape}")
    return pts


def map_54_to_68(pts54: Any) -> np.ndarray:
    """SF-TL54 points -> the 68-point scheme; the 14 mouth points SF-TL54 lacks are NaN."""
    p = _as_points(pts54, "SF-TL54 points")
    if p.shape[0] != N_POINTS_SF54:
        raise ValueError(f"expected {N_POINTS_SF54} SF-TL54 points, got {p.shape[0]}")
    out = np.full((N_POINTS, 2), np.nan)
    out[SF54_TO_68] = p
    return out


def map_68_to_54(pts68: Any) -> np.ndarray:
    """68-point landmarks -> SF-TL54's 54 points (drops the 14 mouth points it does not have)."""
    p = _as_points(pts68, "68-point landmarks")
    if p.shape[0] != N_POINTS:
        raise ValueError(f"expected {N_POINTS} points, got {p.shape[0]}")
    return p[SF54_TO_68].copy()


def to_68(points: Any, source: PathLike | str = "landmarks") -> np.ndarray:
    """68 points as they are, 54 (SF-TL54) mapped with :func:`map_54_to_68`; anything else is an error."""
    p = _as_points(points, str(source))
    if p.shape[0] == N_POINTS:
        return p
    if p.shape[0] == N_POINTS_SF54:
        return map_54_to_68(p)
    raise AnnotationError(f"{source}: {p.shape[0]} points; expected 68 (iBUG) or 54 (SF-TL54)")


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------
@dataclass
class FaceAnnotation:
    """One annotated face read from a multi-field format.

    ``points`` (N, 2) 0-based pixels, NaN = missing; ``box`` ``[left, top, width, height]`` in
    pixels or None; ``image`` the image path as written in the file (relative paths are relative
    to the annotation file's folder); ``image_size`` ``(width, height)`` when the file records it.
    """

    points: np.ndarray
    box: Optional[np.ndarray] = None
    image: str = ""
    image_size: Optional[tuple[int, int]] = None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        try:
            return path.read_text(encoding="latin-1")
        except OSError as exc:  # pragma: no cover - same error as below
            raise AnnotationError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _load_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _fmt(v: float) -> str:
    """Short, exact-enough decimal (3 decimals, trailing zeros trimmed)."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _box_from_points(pts: np.ndarray) -> np.ndarray:
    ok = np.isfinite(pts).all(axis=1)
    if not ok.any():
        raise ValueError("cannot derive a box: no landmark is present")
    p = pts[ok]
    left, top = np.floor(p.min(axis=0))
    right, bottom = np.ceil(p.max(axis=0))
    return np.array([left, top, right - left + 1, bottom - top + 1], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# dlib XML (imglab)
# ---------------------------------------------------------------------------------------------
def _infer_n_points(max_index: int) -> int:
    n = max_index + 1
    return N_POINTS if N_POINTS_SF54 < n < N_POINTS else n


def read_dlib_xml_all(path: PathLike, *, n_points: Optional[int] = None) -> dict[str, list[FaceAnnotation]]:
    """Every face of a dlib imglab XML file: image path (as written) -> list of faces.

    Boxes marked ``ignore='1'`` are skipped. ``n_points`` fixes the length of each point array;
    by default it is the largest part index + 1 (raised to 68 when that lies between 55 and 67,
    i.e. trailing inner-lip points are missing), and 68 for a box without parts.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        root = ET.fromstring(data)  # bytes: the parser honours the declared encoding
    except ET.ParseError as exc:
        raise AnnotationError(f"{p}: not valid XML ({exc})") from None
    if root.tag != "dataset":
        raise AnnotationError(f"{p}: not a dlib image dataset (root element <{root.tag}>, expected <dataset>)")
    images = root.find("images")
    if images is None:
        raise AnnotationError(f"{p}: no <images> element (not a dlib image dataset)")
    out: dict[str, list[FaceAnnotation]] = {}
    for image in images.findall("image"):
        file = image.get("file")
        if not file:
            raise AnnotationError(f"{p}: an <image> has no file attribute")
        faces: list[FaceAnnotation] = []
        for box in image.findall("box"):
            if box.get("ignore", "0").strip() not in ("0", "", "false"):
                continue
            try:
                b = np.array([float(box.get(k, "nan")) for k in ("left", "top", "width", "height")])
            except ValueError:
                raise AnnotationError(f"{p}: image {file!r}: a box has non-numeric attributes") from None
            if not np.isfinite(b).all():
                raise AnnotationError(f"{p}: image {file!r}: a box lacks left/top/width/height")
            parts: dict[int, tuple[float, float]] = {}
            for order, part in enumerate(box.findall("part")):
                name = part.get("name", str(order))
                try:
                    idx = int(name)
                    xy = (float(part.get("x", "")), float(part.get("y", "")))
                except ValueError:
                    raise AnnotationError(
                        f"{p}: image {file!r}: part {name!r} needs an integer name and numeric x, y") from None
                if idx < 0 or idx in parts:
                    raise AnnotationError(f"{p}: image {file!r}: part {name!r} is negative or repeated")
                parts[idx] = xy
            n = n_points if n_points is not None else (_infer_n_points(max(parts)) if parts else N_POINTS)
            if parts and max(parts) >= n:
                raise AnnotationError(f"{p}: image {file!r}: part {max(parts)} but {n} points expected")
            pts = np.full((n, 2), np.nan)
            for idx, xy in parts.items():
                pts[idx] = xy
            faces.append(FaceAnnotation(points=pts, box=b, image=file))
        out.setdefault(file, []).extend(faces)
    return out


def read_dlib_xml(path: PathLike, *, n_points: Optional[int] = None) -> dict[str, FaceAnnotation]:
    """dlib imglab XML -> ``{image path: FaceAnnotation}`` of the first face of each image.

    Images without a (non-ignored) box are left out. See :func:`read_dlib_xml_all` for all faces.
    """
    return {img: faces[0] for img, faces in read_dlib_xml_all(path, n_points=n_points).items() if faces}


DlibEntry = Union[FaceAnnotation, np.ndarray, Sequence[FaceAnnotation]]


def write_dlib_xml(path: PathLike, annotations: Mapping[str, DlibEntry], *, integer: bool = True,
                   name: str = "DMSL Studio landmarks") -> None:
    """Write ``{image path: points | FaceAnnotation | [FaceAnnotation, ...]}`` as dlib imglab XML.

    Missing (NaN) points are omitted, as dlib does. A face without a box gets one around its
    points. ``integer=True`` (default) rounds coordinates as dlib expects.
    """
    p = Path(path)
    num = (lambda v: str(int(round(v)))) if integer else _fmt  # noqa: E731
    lines = ["<?xml version='1.0' encoding='UTF-8'?>",
             "<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>",
             "<dataset>", f"<name>{escape(name)}</name>",
             "<comment>Written by DMSL Studio: 0-based pixel coordinates, part names are iBUG indices.</comment>",
             "<images>"]
    for image, entry in annotations.items():
        if isinstance(entry, FaceAnnotation):
            faces = [entry]
        elif isinstance(entry, np.ndarray):
            faces = [FaceAnnotation(points=entry)]
        else:
            faces = list(entry)
        lines.append(f"  <image file={quoteattr(str(image))}>")
        for face in faces:
            pts = _as_points(face.points, f"{p}: points of {image!r}")
            box = face.box if face.box is not None else _box_from_points(pts)
            left, top, width, height = (int(round(v)) for v in np.asarray(box, dtype=np.float64))
            lines.append(f"    <box top='{top}' left='{left}' width='{width}' height='{height}'>")
            digits = max(2, len(str(len(pts) - 1)))
            for i, (x, y) in enumerate(pts):
                if np.isfinite(x) and np.isfinite(y):
                    lines.append(f"      <part name='{i:0{digits}d}' x='{num(x)}' y='{num(y)}'/>")
            lines.append("    </box>")
        lines.append("  </image>")
    lines += ["</images>", "</dataset>", ""]
    atomic_write_text(p, "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# menpo LJSON
# ---------------------------------------------------------------------------------------------
def _ljson_points(p: Path, raw: Any, where: str) -> np.ndarray:
    if not isinstance(raw, list):
        raise AnnotationError(f"{p}: {where} is not a list of points")
    rows = []
    for i, pt in enumerate(raw):
        if pt is None:
            rows.append((np.nan, np.nan))
            continue
        if not isinstance(pt, list) or len(pt) != 2:
            n = len(pt) if isinstance(pt, list) else "?"
            raise AnnotationError(f"{p}: {where}[{i}] has {n} coordinates; expected 2-D [y, x]")
        y, x = pt
        if x is None or y is None:
            rows.append((np.nan, np.nan))
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            raise AnnotationError(f"{p}: {where}[{i}] is not numeric: {pt!r}")
        rows.append((float(x), float(y)))  # menpo stores (y, x)
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def read_ljson(path: PathLike, *, group: Optional[str] = None) -> np.ndarray:
    """menpo LJSON (versions 1, 2, 3) -> (N, 2) ``(x, y)`` 0-based pixels.

    Version 3 files hold named groups; ``group`` picks one, else the only one, else the first with
    68 points, else the first.
    """
    p = Path(path)
    d = _load_json(p)
    if not isinstance(d, dict):
        raise AnnotationError(f"{p}: not a menpo LJSON object")
    version = d.get("version")
    if version == 3 or (version is None and isinstance(d.get("groups"), dict)):
        groups = d.get("groups")
        if not isinstance(groups, dict) or not groups:
            raise AnnotationError(f"{p}: LJSON v3 without groups")
        if group is not None:
            if group not in groups:
                raise AnnotationError(f"{p}: no landmark group {group!r} (has {sorted(groups)})")
            chosen = groups[group]
        else:
            cands = list(groups.values())
            chosen = cands[0]
            if len(cands) > 1:
                for g in cands:
                    if isinstance(g, dict) and len((g.get("landmarks") or {}).get("points") or []) == N_POINTS:
                        chosen = g
                        break
        lms = chosen.get("landmarks") if isinstance(chosen, dict) else None
        if not isinstance(lms, dict):
            raise AnnotationError(f"{p}: LJSON v3 group has no landmarks")
        return _ljson_points(p, lms.get("points"), "landmarks.points")
    if version == 1 or (version is None and isinstance(d.get("groups"), list)):
        raw: list = []
        for gi, g in enumerate(d.get("groups") or []):
            lms = g.get("landmarks") if isinstance(g, dict) else None
            if not isinstance(lms, list):
                raise AnnotationError(f"{p}: LJSON v1 group {gi} has no landmark list")
            for lm in lms:
                raw.append(lm.get("point") if isinstance(lm, dict) else lm)
        if not raw:
            raise AnnotationError(f"{p}: LJSON v1 without landmarks")
        return _ljson_points(p, raw, "groups[].landmarks")
    if version in (2, None) and isinstance(d.get("landmarks"), dict):
        return _ljson_points(p, d["landmarks"].get("points"), "landmarks.points")
    raise AnnotationError(f"{p}: not a menpo LJSON file (version {version!r}, no landmarks.points)")


def _ibug_labels(n: int) -> list[dict]:
    if n == N_POINTS:
        return [{"label": name, "mask": list(r)} for name, r in GROUPS.items()]
    return [{"label": "all", "mask": list(range(n))}]


def write_ljson(path: PathLike, points: Any) -> None:
    """Write menpo LJSON version 2: points as ``[y, x]``, ``null`` for missing, iBUG labels for 68."""
    pts = _as_points(points, f"{path}: points")
    out_pts = [[float(y), float(x)] if np.isfinite(x) and np.isfinite(y) else [None, None] for x, y in pts]
    conn: list[list[int]] = []
    if len(pts) == N_POINTS:
        for idx, closed in CONTOURS:
            conn += [[a, b] for a, b in zip(idx[:-1], idx[1:])]
            if closed:
                conn.append([idx[-1], idx[0]])
    doc = {"version": 2, "labels": _ibug_labels(len(pts)),
           "landmarks": {"points": out_pts, "connectivity": conn}}
    atomic_write_text(Path(path), json.dumps(doc, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# LabelMe JSON
# ---------------------------------------------------------------------------------------------
_TRAILING_INT = re.compile(r"(\d+)\s*$")


def read_labelme_annotation(path: PathLike, *, n_points: Optional[int] = None,
                            index_base: Optional[int] = None,
                            pixel_offset: Optional[float] = None) -> FaceAnnotation:
    """LabelMe JSON -> :class:`FaceAnnotation` (points, box from a rectangle, imagePath, size)."""
    p = Path(path)
    d = _load_json(p)
    if not isinstance(d, dict) or not isinstance(d.get("shapes"), list):
        raise AnnotationError(f"{p}: not a LabelMe file (no 'shapes' list)")
    meta = d.get("dmsl") if isinstance(d.get("dmsl"), dict) else {}
    offset = pixel_offset if pixel_offset is not None else float(meta.get("pixel_offset", LABELME_PIXEL_OFFSET))
    labelled: list[tuple[int, float, float]] = []
    unlabelled: list[tuple[float, float]] = []
    box = None
    for si, s in enumerate(d["shapes"]):
        if not isinstance(s, dict):
            raise AnnotationError(f"{p}: shape {si} is not an object")
        kind = s.get("shape_type") or "point"
        coords = s.get("points")
        if not isinstance(coords, list) or not coords:
            raise AnnotationError(f"{p}: shape {si} ({s.get('label')!r}) has no points")
        try:
            xy = np.array(coords, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise AnnotationError(f"{p}: shape {si} ({s.get('label')!r}) has non-numeric points") from None
        if kind == "rectangle" and len(xy) >= 2 and box is None:
            lo, hi = xy.min(axis=0) - offset, xy.max(axis=0) - offset
            box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
            continue
        if kind != "point":
            continue
        if len(xy) != 1:
            raise AnnotationError(f"{p}: point shape {si} ({s.get('label')!r}) has {len(xy)} points, expected 1")
        m = _TRAILING_INT.search(str(s.get("label") or ""))
        if m:
            labelled.append((int(m.group(1)), xy[0, 0] - offset, xy[0, 1] - offset))
        else:
            unlabelled.append((xy[0, 0] - offset, xy[0, 1] - offset))
    if labelled and unlabelled:
        raise AnnotationError(f"{p}: {len(labelled)} point shapes are numbered and {len(unlabelled)} are not; "
                              "cannot tell which landmark each unnumbered point is")
    if labelled:
        idx = np.array([i for i, _, _ in labelled])
        base = index_base if index_base is not None else meta.get("index_base")
        if base is None:
            top = int(idx.max())
            if 0 in idx:
                base = 0
            elif top in (N_POINTS_SF54, N_POINTS) or (n_points is not None and top == n_points):
                base = 1
            else:
                base = 0
        idx = idx - int(base)
        if (idx < 0).any():
            raise AnnotationError(f"{p}: point label {int(idx.min()) + int(base)} is below the index base {base}")
        if len(set(idx.tolist())) != len(idx):
            dup = sorted({int(i) for i in idx if (idx == i).sum() > 1})
            raise AnnotationError(f"{p}: landmark indices {dup} appear more than once")
        n = n_points or meta.get("n_points")
        if n is None:
            top = int(idx.max()) + 1
            n = N_POINTS_SF54 if top <= N_POINTS_SF54 else N_POINTS if top <= N_POINTS else top
        n = int(n)
        if idx.max() >= n:
            raise AnnotationError(f"{p}: landmark index {int(idx.max())} but {n} points expected")
        pts = np.full((n, 2), np.nan)
        for (_, x, y), i in zip(labelled, idx):
            pts[i] = (x, y)
    elif unlabelled:
        pts = np.array(unlabelled, dtype=np.float64)
        if n_points is not None and len(pts) != n_points:
            raise AnnotationError(f"{p}: {len(pts)} unnumbered points, expected {n_points}")
    else:
        raise AnnotationError(f"{p}: no point shapes (LabelMe landmarks are 'point' shapes labelled by index)")
    size = None
    w, h = d.get("imageWidth"), d.get("imageHeight")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        size = (w, h)
    return FaceAnnotation(points=pts, box=box, image=str(d.get("imagePath") or ""), image_size=size)


def read_labelme(path: PathLike, *, n_points: Optional[int] = None, index_base: Optional[int] = None,
                 pixel_offset: Optional[float] = None) -> np.ndarray:
    """LabelMe JSON point shapes -> (N, 2) 0-based pixels (see the module notes for the mapping)."""
    return read_labelme_annotation(path, n_points=n_points, index_base=index_base,
                                   pixel_offset=pixel_offset).points


def write_labelme(path: PathLike, points: Any, *, image: str = "",
                  image_size: Optional[tuple[int, int]] = None, index_base: int = 0,
                  pixel_offset: float = LABELME_PIXEL_OFFSET) -> None:
    """Write LabelMe JSON: one ``point`` shape per present landmark, labelled by its index.

    ``image`` is the ``imagePath`` (relative to the JSON's folder); ``image_size`` ``(width, height)``.
    """
    p = Path(path)
    pts = _as_points(points, f"{p}: points")
    shapes = [{"label": str(i + index_base), "points": [[float(x) + pixel_offset, float(y) + pixel_offset]],
               "group_id": None, "description": "", "shape_type": "point", "flags": {}}
              for i, (x, y) in enumerate(pts) if np.isfinite(x) and np.isfinite(y)]
    w, h = (int(image_size[0]), int(image_size[1])) if image_size else (None, None)
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image or "", "imageData": None,
           "imageHeight": h, "imageWidth": w,
           "dmsl": {"index_base": index_base, "n_points": len(pts), "pixel_offset": pixel_offset}}
    atomic_write_text(p, json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------
_XY_COL = re.compile(r"^\s*([xy])[_ ]?(\d+)\s*$", re.IGNORECASE)
_IMAGE_COLS = ("image", "file", "filename", "path", "image_path", "img")


def _cell(p: Path, line: int, v: str) -> float:
    v = v.strip()
    if v == "" or v.lower() in ("nan", "na", "null", "none"):
        return np.nan
    try:
        return float(v)
    except ValueError:
        raise AnnotationError(f"{p}:{line}: {v!r} is not a number") from None


def _is_label(cell: str) -> bool:
    """True for a non-empty cell that is not a number (nor a missing-value marker)."""
    v = cell.strip()
    if v == "" or v.lower() in ("nan", "na", "null", "none"):
        return False
    try:
        float(v)
    except ValueError:
        return True
    return False


def read_csv_landmarks(path: PathLike) -> dict[str, np.ndarray]:
    """CSV ``image, x0, y0, ..., xN, yN`` (0-based pixels) -> ``{image: (N, 2) points}``.

    A header row is optional; with one, columns named ``x<i>``/``y<i>`` (or ``x_<i>``) are the
    coordinates, the ``image``/``file``/``path`` column (or else the first column) names the image,
    and other columns are ignored. Without one, the first column is the image and the rest
    alternate x, y.
    """
    p = Path(path)
    rows = list(csv.reader(io.StringIO(_read_text(p))))
    rows = [(i, r) for i, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not rows:
        raise AnnotationError(f"{p}: empty CSV")
    first = rows[0][1]
    has_header = len(first) < 2 or any(_is_label(c) for c in first[1:])
    if has_header:
        header = [c.strip() for c in first]
        xcol: dict[int, int] = {}
        ycol: dict[int, int] = {}
        image_col = None
        for ci, name in enumerate(header):
            m = _XY_COL.match(name)
            if m:
                (xcol if m.group(1).lower() == "x" else ycol)[int(m.group(2))] = ci
            elif image_col is None and name.lower() in _IMAGE_COLS:
                image_col = ci
        if image_col is None:
            image_col = next((ci for ci in range(len(header)) if ci not in xcol.values()
                              and ci not in ycol.values()), None)
        if not xcol or set(xcol) != set(ycol):
            raise AnnotationError(f"{p}: header needs matching x<i>, y<i> columns (got {header[:6]}...)")
        if image_col is None:
            raise AnnotationError(f"{p}: no image column in the header")
        n = max(xcol) + 1
        body = rows[1:]
    else:
        if (len(first) - 1) % 2:
            raise AnnotationError(f"{p}: {len(first) - 1} coordinate columns is not an even number (x, y pairs)")
        n = (len(first) - 1) // 2
        image_col = 0
        xcol = {i: 1 + 2 * i for i in range(n)}
        ycol = {i: 2 + 2 * i for i in range(n)}
        body = rows
    ncols = max(max(xcol.values()), max(ycol.values()), image_col) + 1
    out: dict[str, np.ndarray] = {}
    for line, r in body:
        if len(r) < ncols:
            raise AnnotationError(f"{p}:{line}: {len(r)} columns, expected {ncols}")
        image = r[image_col].strip()
        if not image:
            raise AnnotationError(f"{p}:{line}: empty image name")
        if image in out:
            raise AnnotationError(f"{p}:{line}: image {image!r} appears twice")
        pts = np.full((n, 2), np.nan)
        for i in range(n):
            if i in xcol:
                pts[i] = (_cell(p, line, r[xcol[i]]), _cell(p, line, r[ycol[i]]))
        pts[~np.isfinite(pts).all(axis=1)] = np.nan
        out[image] = pts
    return out


def write_csv_landmarks(path: PathLike, rows: Mapping[str, Any]) -> None:
    """Write ``{image: (N, 2) points}`` as CSV with a header ``image,x0,y0,...``; NaN -> empty cells."""
    p = Path(path)
    items = [(str(k), _as_points(v, f"{p}: points of {k!r}")) for k, v in rows.items()]
    n = max((len(v) for _, v in items), default=N_POINTS)
    if any(len(v) != n for _, v in items):
        raise ValueError(f"{p}: every row must have the same number of points ({n})")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image"] + [f"{a}{i}" for i in range(n) for a in ("x", "y")])
    for image, pts in items:
        cells = []
        for x, y in pts:
            ok = np.isfinite(x) and np.isfinite(y)
            cells += [_fmt(x), _fmt(y)] if ok else ["", ""]
        w.writerow([image] + cells)
    atomic_write_text(p, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------------
def detect_format(path: PathLike) -> str:
    """``pts``, ``dlib_xml``, ``ljson``, ``labelme`` or ``csv`` from the extension (and content for .json)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".pts":
        return "pts"
    if ext == ".ljson":
        return "ljson"
    if ext == ".xml":
        return "dlib_xml"
    if ext == ".csv":
        return "csv"
    if ext == ".json":
        d = _load_json(p)
        if isinstance(d, dict) and isinstance(d.get("shapes"), list):
            return "labelme"
        if isinstance(d, dict) and ("landmarks" in d or "groups" in d):
            return "ljson"
        raise AnnotationError(f"{p}: JSON that is neither LabelMe ('shapes') nor menpo LJSON ('landmarks')")
    raise AnnotationError(f"{p}: unknown annotation format {ext or '(no extension)'!r} "
                          f"(expected one of {', '.join(ANNOTATION_EXTENSIONS)})")


def _select(p: Path, entries: Mapping[str, np.ndarray], image: Optional[PathLike]) -> np.ndarray:
    if image is None:
        if len(entries) == 1:
            return next(iter(entries.values()))
        raise AnnotationError(f"{p}: holds {len(entries)} images; say which one (image=...)")
    want = str(image).replace("\\", "/")
    norm = {k.replace("\\", "/"): v for k, v in entries.items()}
    if want in norm:
        return norm[want]
    for key in ("name", "stem"):
        target = getattr(Path(want), key)
        hits = [v for k, v in norm.items() if getattr(Path(k), key) == target]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise AnnotationError(f"{p}: several entries match image {want!r}")
    raise AnnotationError(f"{p}: no landmarks for image {want!r}")


def read_landmarks(path: PathLike, *, image: Optional[PathLike] = None) -> np.ndarray:
    """Read any supported annotation file -> (N, 2) 0-based pixels, NaN = missing.

    Multi-image files (dlib XML, CSV) need ``image`` (matched by path, then file name, then stem)
    unless they hold a single image.
    """
    p = Path(path)
    if not p.exists():
        raise AnnotationError(f"{p}: no such file")
    fmt = detect_format(p)
    if fmt == "pts":
        return read_pts(p)
    if fmt == "ljson":
        return read_ljson(p)
    if fmt == "labelme":
        return read_labelme(p)
    if fmt == "dlib_xml":
        return _select(p, {k: v.points for k, v in read_dlib_xml(p).items()}, image)
    return _select(p, read_csv_landmarks(p), image)


def write_landmarks(path: PathLike, points: Any, *, image: str = "",
                    image_size: Optional[tuple[int, int]] = None) -> None:
    """Write one face's points in the format of ``path``'s extension (``.json`` = LabelMe).

    ``image`` names the image for formats that record it (dlib XML, LabelMe, CSV; defaults to the
    annotation's stem + ``.png``); ``image_size`` ``(width, height)`` is recorded by LabelMe.
    dlib XML coordinates are rounded to integers (dlib cannot parse decimals); use
    :func:`write_dlib_xml` with ``integer=False`` to keep them.
    """
    p = Path(path)
    pts = _as_points(points, f"{p}: points")
    ext = p.suffix.lower()
    name = image or (p.stem + ".png")
    if ext == ".pts":
        write_pts(p, pts)
    elif ext == ".ljson":
        write_ljson(p, pts)
    elif ext == ".json":
        write_labelme(p, pts, image=name, image_size=image_size)
    elif ext == ".xml":
        write_dlib_xml(p, {name: pts})  # dlib reads integers only: rounded
    elif ext == ".csv":
        write_csv_landmarks(p, {name: pts})
    else:
        raise ValueError(f"{p}: unknown annotation format {ext or '(no extension)'!r} "
                         f"(expected one of {', '.join(ANNOTATION_EXTENSIONS)})")
