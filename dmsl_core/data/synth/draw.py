"""Small vectorised drawing helpers for the synthetic renderer (OpenCV + numpy, no Qt).

A *box* is ``(x0, y0, x1, y1)`` in pixels (x1, y1 exclusive). Masks are float32 alpha in 0..1
of a box's size; :func:`paint` blends a colour (or a per-pixel array) into an image through one.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]
_SHIFT = 4
_ONE = 1 << _SHIFT


def bbox(points: np.ndarray, pad: float, width: int, height: int) -> Optional[Box]:
    """Integer box around ``points`` (N, 2) grown by ``pad`` and clipped to the image; None if empty."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        return None
    pad = float(pad)
    (mx0, my0), (mx1, my1) = p.min(axis=0).tolist(), p.max(axis=0).tolist()
    if not math.isfinite(mx0 + my0 + mx1 + my1):  # a NaN / inf point: drop such points (rare)
        p = p[np.isfinite(p).all(axis=1)]
        if len(p) == 0:
            return None
        (mx0, my0), (mx1, my1) = p.min(axis=0).tolist(), p.max(axis=0).tolist()
    x0 = max(math.floor(mx0 - pad), 0)
    y0 = max(math.floor(my0 - pad), 0)
    x1 = min(math.ceil(mx1 + pad) + 1, width)
    y1 = min(math.ceil(my1 + pad) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def union(a: Optional[Box], b: Optional[Box]) -> Optional[Box]:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _fixed(p: np.ndarray, box: Box) -> np.ndarray:
    q = np.asarray(p, dtype=np.float64).reshape(-1, 2) - np.array([box[0], box[1]], np.float64)
    q *= _ONE
    np.maximum(q, -1e6, out=q)  # == np.clip(q, -1e6, 1e6), without np.clip's Python overhead
    np.minimum(q, 1e6, out=q)
    return np.rint(q, out=q).astype(np.int32)  # rint == np.round (half to even)


_INV255 = np.float32(1 / 255)


def _alpha(m: np.ndarray) -> np.ndarray:
    """uint8 mask -> float32 alpha ``m * (1/255)`` in one pass (same values as astype then multiply)."""
    return np.multiply(m, _INV255, dtype=np.float32)


def fill(polys: Sequence[np.ndarray], box: Box) -> np.ndarray:
    """Anti-aliased filled polygons (sub-pixel vertices) as float32 alpha of ``box``'s size."""
    m = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
    cv2.fillPoly(m, [_fixed(p, box) for p in polys if len(p) >= 3], 255, cv2.LINE_AA, _SHIFT)
    return _alpha(m)


def stroke(lines: Sequence[np.ndarray], box: Box, thickness: float, closed: bool = False,
           value: int = 255, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Anti-aliased polylines; returns (or draws into ``out``, uint8) an alpha of ``box``'s size."""
    m = out if out is not None else np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
    cv2.polylines(m, [_fixed(p, box) for p in lines if len(p) >= 2], closed, int(value),
                  max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)
    return m if out is not None else _alpha(m)


def fill_into(m: np.ndarray, polys: Sequence[np.ndarray], box: Box, value: int) -> None:
    """Filled polygons drawn into an existing uint8 canvas of ``box``'s size."""
    cv2.fillPoly(m, [_fixed(p, box) for p in polys if len(p) >= 3], int(value), cv2.LINE_AA, _SHIFT)


def paint(img: np.ndarray, alpha: np.ndarray, box: Box, colour) -> None:
    """``img[box] += alpha * (colour - img[box])`` in place.

    ``img`` is HxW or planar CxHxW (colour channels first: fast, no trailing-axis broadcasting);
    ``colour`` is a scalar, a per-channel vector, a HxW array of the box or a CxHxW array of the box.
    """
    x0, y0, x1, y1 = box
    if img.ndim == 2:
        roi = img[y0:y1, x0:x1]
        cc = colour if isinstance(colour, np.ndarray) else np.float32(colour)
    else:
        roi = img[:, y0:y1, x0:x1]
        col = colour if isinstance(colour, np.ndarray) else np.asarray(colour, dtype=np.float32)
        if col.ndim == 0:
            cc = np.float32(col)
        elif col.ndim == 1:
            cc = col.astype(np.float32, copy=False)[:, None, None]
        elif col.ndim == 3:
            cc = col
        else:  # a HxW colour for a planar image: the historical per-channel row indexing
            for c in range(img.shape[0]):
                r = img[c, y0:y1, x0:x1]
                r += alpha * (col[c] - r)
            return
    if alpha.dtype == np.float32 and cc.dtype == np.float32:
        # all channels at once, through one temporary: the same float32 operations as
        # ``roi += alpha * (cc - roi)`` (x * y == y * x exactly), without three temporaries per channel
        t = np.subtract(cc, roi)
        t *= alpha
        roi += t
    else:  # mixed precision: keep numpy's promotion of the plain expression
        roi += alpha * (cc - roi)


def sub(outer: Box, inner: Box) -> tuple[slice, slice]:
    """Slices of ``inner`` within an array covering ``outer`` (inner must lie inside outer)."""
    return slice(inner[1] - outer[1], inner[3] - outer[1]), slice(inner[0] - outer[0], inner[2] - outer[0])


def add_gauss(acc: np.ndarray, box: Box, center: np.ndarray, sigma: float, amp: float,
              sigma_y: Optional[float] = None) -> None:
    """Add an axis-aligned gaussian blob (pixels) to ``acc`` (an array covering ``box``), locally."""
    sy = sigma if sigma_y is None else sigma_y
    cx, cy = float(center[0]) - box[0], float(center[1]) - box[1]
    h, w = acc.shape[:2]
    x0, x1 = max(int(cx - 3 * sigma), 0), min(int(cx + 3 * sigma) + 2, w)
    y0, y1 = max(int(cy - 3 * sy), 0), min(int(cy + 3 * sy) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) - cx) / sigma) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) - cy) / sy) ** 2)
    acc[y0:y1, x0:x1] += np.float32(amp) * gy[:, None] * gx[None, :]


@functools.lru_cache(maxsize=16)
def _cr_weights(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Catmull-Rom basis weights of ``n`` samples per segment, shaped (1, n, 1) (read-only)."""
    t = np.linspace(0, 1, n, endpoint=False)
    t2, t3 = t * t, t * t * t
    ws = (-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1, -1.5 * t3 + 2 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2)
    out = tuple(w[None, :, None] for w in ws)
    for w in out:
        w.flags.writeable = False
    return out


def catmull_rom(points: np.ndarray, n: int = 6, closed: bool = False) -> np.ndarray:
    """A smooth curve through ``points`` (K, D): ``n`` samples per segment (centripetal-free, uniform)."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
        segs = len(p)
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
        segs = len(p) - 1
    w0, w1, w2, w3 = _cr_weights(int(n))
    e = ext[:, None]  # segment i uses control points i .. i+3 (slices instead of fancy indexing)
    out = w0 * e[0:segs] + w1 * e[1:segs + 1] + w2 * e[2:segs + 2] + w3 * e[3:segs + 3]
    out = out.reshape(-1, p.shape[1])
    if not closed:
        out = np.concatenate([out, p[-1:]])
    return out


def ellipse_pts(center: np.ndarray, ax1: np.ndarray, ax2: np.ndarray, n: int = 16) -> np.ndarray:
    """Points of the ellipse ``center + cos(t) ax1 + sin(t) ax2`` (any dimension)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return center[None] + np.cos(t)[:, None] * ax1[None] + np.sin(t)[:, None] * ax2[None]


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return img
    return cv2.GaussianBlur(img, (0, 0), float(sigma), borderType=cv2.BORDER_REPLICATE)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)
