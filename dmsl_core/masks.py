"""Stage-1 targets: the face-boundary mask (M_b) and Algorithm 1's landmark glow mask (M_l).

Both return float32 arrays on the 0..255 scale (divide by 255 for a BCE target).

Algorithm 1 (paper): for every landmark (x, y) and every pixel,
``mask += 0.5 ** max(|x - col|, |y - row|) * 255`` while the mask is below 255 - brightness
halves with each pixel of Chebyshev distance and saturates at 255. Here the image is stored
row-major (``mask[row, col]``) and x is the column, so each glow sits on its landmark.
Because every addition is positive, "add while below 255, then saturate" equals
``min(sum over landmarks, 255)``, which is what the vectorised version computes.
"""
from __future__ import annotations

import numpy as np

# 0.5 ** d * 255 < 2.5e-4 beyond this Chebyshev distance: contributions further out are dropped.
GLOW_RADIUS = 20


def boundary_mask(box: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """255 inside B = [x, y, w, h] (pixel centres within [x, x+w] x [y, y+h]), 0 outside."""
    h, w = (size, size) if isinstance(size, int) else (size[1], size[0])
    x, y, bw, bh = (float(v) for v in box)
    cols = np.arange(w, dtype=np.float32)
    rows = np.arange(h, dtype=np.float32)
    inx = (cols >= x) & (cols <= x + bw)
    iny = (rows >= y) & (rows <= y + bh)
    return (np.outer(iny, inx) * 255.0).astype(np.float32)


def glow_mask(points: np.ndarray, size: int | tuple[int, int], radius: int = GLOW_RADIUS) -> np.ndarray:
    """Algorithm 1, vectorised. ``points`` (N, 2) in pixel coordinates; NaN points are skipped.

    0.5 ** max(a, b) = min(0.5 ** a, 0.5 ** b), so each glow is the element-wise minimum of an
    outer product of 1-D decays. All glows are computed at once in (2r+1)^2 windows around their
    landmarks and added into a padded canvas; contributions beyond ``radius`` (< 255 * 2^-radius
    each) are dropped.
    """
    h, w = (size, size) if isinstance(size, int) else (size[1], size[0])
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    # landmarks far outside the image cannot reach it
    pts = pts[(pts[:, 0] > -radius - 1) & (pts[:, 0] < w + radius) & (pts[:, 1] > -radius - 1) & (pts[:, 1] < h + radius)]
    n = 2 * radius + 1
    pad = 2 * radius + 2
    canvas = np.zeros((h + 2 * pad + 1, w + 2 * pad + 1), dtype=np.float32)
    if len(pts):
        ox = np.floor(pts[:, 0]).astype(np.int64) - radius      # window origin (image coords)
        oy = np.floor(pts[:, 1]).astype(np.int64) - radius
        offs = np.arange(n, dtype=np.float64)
        u = np.exp2(-np.abs(ox[:, None] + offs[None, :] - pts[:, 0:1])).astype(np.float32)
        v = np.exp2(-np.abs(oy[:, None] + offs[None, :] - pts[:, 1:2])).astype(np.float32)
        win = np.minimum(v[:, :, None], u[:, None, :])
        for i in range(len(pts)):
            r, c = oy[i] + pad, ox[i] + pad
            canvas[r:r + n, c:c + n] += win[i]
    mask = canvas[pad:pad + h, pad:pad + w]
    return np.minimum(mask * 255.0, 255.0).astype(np.float32)


def glow_mask_literal(points: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """A literal per-pixel transcription of Algorithm 1 (slow; the reference for tests)."""
    h, w = (size, size) if isinstance(size, int) else (size[1], size[0])
    mask = [[0.0] * w for _ in range(h)]
    for x, y in np.asarray(points, dtype=np.float64):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        for j in range(w):          # j: column, paired with x
            for k in range(h):      # k: row, paired with y
                if mask[k][j] < 255:
                    mask[k][j] += 0.5 ** max(abs(x - j), abs(y - k)) * 255
    return np.minimum(np.array(mask, dtype=np.float64), 255.0).astype(np.float32)
