"""iBUG ``.pts`` landmark files (300-W convention).

The file's coordinates are 1-based (the centre of the top-left pixel is (1, 1)); in memory they
are 0-based, so reading subtracts 1 and writing adds 1. Missing points are written as ``-1 -1``
after conversion (i.e. stored as NaN in memory).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .imageio import atomic_write_text


class AnnotationError(ValueError):
    """An annotation file that cannot be used; the message names the file and the reason."""


def read_pts(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AnnotationError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    n_points = None
    body: list[str] = []
    in_body = False
    for ln in lines:
        if ln.lower().startswith("n_points"):
            try:
                n_points = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise AnnotationError(f"{p}: bad n_points line {ln!r}") from None
        elif ln == "{":
            in_body = True
        elif ln == "}":
            in_body = False
        elif in_body:
            body.append(ln)
        elif ln.lower().startswith("version"):
            continue
    if n_points is None:
        raise AnnotationError(f"{p}: not an iBUG .pts file (no n_points header)")
    if len(body) != n_points:
        raise AnnotationError(f"{p}: header says {n_points} points but the file has {len(body)}")
    try:
        pts = np.array([[float(v) for v in ln.split()[:2]] for ln in body], dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{p}: a point is not two numbers") from None
    if pts.shape != (n_points, 2):
        raise AnnotationError(f"{p}: a point is not two numbers")
    missing = (pts[:, 0] < 0) & (pts[:, 1] < 0)
    pts = pts - 1.0
    pts[missing] = np.nan
    return pts


def write_pts(path: str | os.PathLike, points: np.ndarray) -> None:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{path}: points must be (N, 2), got {pts.shape}")
    rows = []
    for x, y in pts:
        if np.isfinite(x) and np.isfinite(y):
            rows.append(f"{x + 1.0:.3f} {y + 1.0:.3f}")
        else:
            rows.append("-1 -1")
    text = "version: 1\nn_points: %d\n{\n%s\n}\n" % (len(pts), "\n".join(rows))
    atomic_write_text(path, text)
