"""The paper's pre-processing, shared by training and inference so both see the same views.

A *view* is an S x S model input cut from an image by a similarity transform (square crop or
pad, resize, optionally rotation and mirroring for augmentation). ``View.matrix`` maps source
pixel coordinates (0-based, pixel centres at integers) to view pixel coordinates; the model's
normalised outputs n relate to view pixels u by ``u = n * S - 0.5`` (``n = (u + 0.5) / S``), and
widths/heights by ``w_view = n_w * S``.

Intensities are normalised per view: percentiles 1 and 99 of the valid pixels map to 0 and 1
(clipped), whatever the units (8-bit grey or RGB luma, 16-bit raw counts or centi-kelvin, float
degrees C). Pixels outside the source image (padding) are 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .data.imageio import pixel_problem, to_gray_float


@dataclass
class View:
    matrix: np.ndarray  # 3x3, source pixel -> view pixel
    size: int

    def to_view(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return p @ self.matrix[:2, :2].T + self.matrix[:2, 2]

    def to_source(self, pts: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.matrix)
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return p @ inv[:2, :2].T + inv[:2, 2]

    def box_to_source(self, box: np.ndarray) -> np.ndarray:
        """[x, y, w, h] in view pixels -> source pixels (axis-aligned views only)."""
        x, y, w, h = box
        c = self.to_source(np.array([[x, y], [x + w, y + h]]))
        x0, y0 = c.min(axis=0)
        x1, y1 = c.max(axis=0)
        return np.array([x0, y0, x1 - x0, y1 - y0])

    def box_to_view(self, box: np.ndarray) -> np.ndarray:
        x, y, w, h = box
        c = self.to_view(np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
        x0, y0 = c.min(axis=0)
        x1, y1 = c.max(axis=0)
        return np.array([x0, y0, x1 - x0, y1 - y0])


def square_view(cx: float, cy: float, side: float, size: int, angle_deg: float = 0.0,
                flip: bool = False) -> View:
    """The view of the square of ``side`` pixels centred at (cx, cy), rotated by ``angle_deg``
    (counter-clockwise in the image) and mirrored horizontally when ``flip``."""
    s = size / float(side)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * s
    m = np.eye(3)
    m[:2, :2] = rot
    # centre of the source square -> centre of the view ((size - 1) / 2 in pixel-centre coords)
    c = (size - 1) / 2.0
    m[:2, 2] = np.array([c, c]) - rot @ np.array([cx, cy])
    if flip:
        f = np.array([[-1.0, 0, size - 1], [0, 1, 0], [0, 0, 1]])
        m = f @ m
    return View(m, size)


def full_view(height: int, width: int, size: int) -> View:
    """The whole image padded to a square (centred) and resized to ``size``."""
    side = float(max(height, width))
    return square_view((width - 1) / 2.0, (height - 1) / 2.0, side, size)


def box_view(box: np.ndarray, size: int, crop_scale: float, angle_deg: float = 0.0, flip: bool = False,
             shift: tuple[float, float] = (0.0, 0.0)) -> View:
    """A square crop around face box B = [x, y, w, h]: side = crop_scale * max(w, h)."""
    x, y, w, h = (float(v) for v in box)
    side = max(crop_scale * max(w, h), 4.0)
    return square_view(x + w / 2 + shift[0] * side, y + h / 2 + shift[1] * side, side, size, angle_deg, flip)


def warp_view(gray: np.ndarray, view: View) -> np.ndarray:
    """Sample ``gray`` (HxW float32) into the view; pixels outside the image are NaN.

    Large reductions are pre-shrunk with area averaging so the view does not alias; only the part
    of the image the view covers (plus a margin for the interpolation) is shrunk, so a face crop
    does not pay for the whole frame.
    """
    m = view.matrix
    scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    src = gray
    if scale < 0.5:
        f = max(scale * 1.5, 1.0 / min(gray.shape))
        inv = np.linalg.inv(m)
        edge = np.array([-0.5, view.size - 0.5])
        corners = np.array([[u, v, 1.0] for u in edge for v in edge]) @ inv[:2].T
        pad = 2.0 / f + 2.0
        x0 = max(0, int(np.floor(corners[:, 0].min() - pad)))
        y0 = max(0, int(np.floor(corners[:, 1].min() - pad)))
        x1 = min(gray.shape[1], int(np.ceil(corners[:, 0].max() + pad)) + 1)
        y1 = min(gray.shape[0], int(np.ceil(corners[:, 1].max() + pad)) + 1)
        if x1 - x0 < 1 or y1 - y0 < 1:           # the view lies wholly outside the image
            return np.full((view.size, view.size), np.nan, dtype=np.float32)
        sub = gray[y0:y1, x0:x1]
        sh, sw = max(1, int(round(sub.shape[0] * f))), max(1, int(round(sub.shape[1] * f)))
        src = cv2.resize(sub, (sw, sh), interpolation=cv2.INTER_AREA)
        fx, fy = sw / sub.shape[1], sh / sub.shape[0]
        # shrunk pixel coords: u = (x - x0 + 0.5) * f - 0.5  ->  source = shrunk^-1
        shrink = np.array([[fx, 0, 0.5 * fx - 0.5 - fx * x0], [0, fy, 0.5 * fy - 0.5 - fy * y0], [0, 0, 1]])
        m = m @ np.linalg.inv(shrink)
    return cv2.warpAffine(src, m[:2].astype(np.float64), (view.size, view.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def normalise(view_img: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Per-view intensity normalisation to [0, 1]; NaN (padding) becomes 0."""
    valid = np.isfinite(view_img)
    whole = bool(valid.all())           # a crop inside the image: no mask to apply (same result, faster)
    if not whole and not valid.any():
        return np.zeros(view_img.shape, dtype=np.float32)
    vals = view_img.ravel() if whole else view_img[valid]
    lo, hi = np.percentile(vals[:: max(1, vals.size // 8192)], [lo_pct, hi_pct])
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    if whole:
        return np.clip((view_img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32, copy=False)
    out = np.zeros(view_img.shape, dtype=np.float32)
    out[valid] = np.clip((vals - lo) / (hi - lo), 0.0, 1.0)
    return out


def blackout(view_img: np.ndarray, box_view: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """F-hat: every pixel outside B (grown by ``margin`` x (w, h) each side) set to 0."""
    x, y, w, h = (float(v) for v in box_view)
    x0, x1 = x - margin * w, x + w + margin * w
    y0, y1 = y - margin * h, y + h + margin * h
    size_y, size_x = view_img.shape[-2:]
    cols = np.arange(size_x)
    rows = np.arange(size_y)
    keep = np.outer((rows >= y0) & (rows <= y1), (cols >= x0) & (cols <= x1))
    return np.where(keep, view_img, 0.0).astype(np.float32)


def prepare_gray(image: np.ndarray) -> np.ndarray:
    """Any supported image (RGB/grey, uint8/uint16/float) -> HxW float32 in its own units."""
    g = to_gray_float(image)
    why = pixel_problem(g)
    if why is not None:   # M_b would still return a box (and M_l points) on the zeros it became
        raise ValueError(why)
    if not np.isfinite(g).all():
        g = np.nan_to_num(g, nan=float(np.nanmin(g)) if np.isfinite(g).any() else 0.0)
    return g


def to_normalised(points_view: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(points_view, dtype=np.float64) + 0.5) / size


def from_normalised(points_norm: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(points_norm, dtype=np.float64) * size - 0.5


def box_to_normalised(box_view: np.ndarray, size: int) -> np.ndarray:
    x, y, w, h = box_view
    return np.array([(x + 0.5) / size, (y + 0.5) / size, w / size, h / size])


def box_from_normalised(box_norm: np.ndarray, size: int) -> np.ndarray:
    x, y, w, h = (float(v) for v in box_norm)
    return np.array([x * size - 0.5, y * size - 0.5, w * size, h * size])


#: the display stretch of a thermal (or any non-8-bit) image: the percentiles mapped to 0 and 255
DISPLAY_PERCENTILES = (1.0, 99.5)


def display_uint8(image: np.ndarray, lo_pct: float = DISPLAY_PERCENTILES[0],
                  hi_pct: float = DISPLAY_PERCENTILES[1]) -> np.ndarray:
    """An image of any bit depth (raw counts, degrees C, float) as 8-bit grey for *display*: the
    ``lo_pct``-``hi_pct`` percentiles of its finite pixels (estimated on at most ~20 000 of them)
    stretched to 0-255; colour is averaged to grey first; NaN becomes 0. The one thermal stretch of
    the app's views, thumbnails and previews and of the exported videos (the models' own input
    normalisation is :func:`normalise`)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a.mean(axis=2)
    flat = a.ravel()[::max(1, a.size // 20000)]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = np.percentile(flat, [lo_pct, hi_pct])
    g = np.clip((np.nan_to_num(a, nan=lo) - lo) / max(1e-6, float(hi - lo)) * 255.0, 0, 255)
    return g.astype(np.uint8)
