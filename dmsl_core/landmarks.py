"""The iBUG / Multi-PIE 68-point scheme, 0-based.

The paper's points 37 and 46 (1-based outer eye corners) are indices 36 and 45 here.
"""
from __future__ import annotations

import numpy as np

N_POINTS = 68

GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),   # subject's right = image left for a frontal face
    "left_brow": range(22, 27),
    "nose_ridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lips": range(48, 60),
    "inner_lips": range(60, 68),
}
# Coarser groups the issue text names.
COARSE_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}

OUTER_EYE_CORNERS = (36, 45)  # inter-ocular normaliser of NME (paper's 37 and 46)
INNER_EYE_CORNERS = (39, 42)
NOSE_TIP = 30

# Polylines for drawing: (indices, closed?)
CONTOURS: list[tuple[tuple[int, ...], bool]] = [
    (tuple(range(0, 17)), False),
    (tuple(range(17, 22)), False),
    (tuple(range(22, 27)), False),
    (tuple(range(27, 31)), False),
    (tuple(range(31, 36)), False),
    (tuple(range(36, 42)), True),
    (tuple(range(42, 48)), True),
    (tuple(range(48, 60)), True),
    (tuple(range(60, 68)), True),
]


def _mirror_permutation() -> np.ndarray:
    perm = np.arange(N_POINTS)
    pairs = [(i, 16 - i) for i in range(8)]                      # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                # brows
    pairs += [(31, 35), (32, 34)]                                # nose base
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]                      # inner lips
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


MIRROR_PERM: np.ndarray = _mirror_permutation()
MIRROR_PERM.setflags(write=False)


def mirror_points(points: np.ndarray, width: int | float) -> np.ndarray:
    """Landmarks of the horizontally mirrored image of width ``width``.

    Pixel-centre convention: pixel column c maps to column (width - 1 - c), so x -> width - 1 - x.
    The indices are permuted so that index 36 stays the image-left outer eye corner, etc.
    """
    pts = np.asarray(points, dtype=np.float64)
    out = pts[MIRROR_PERM].copy()
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def valid_mask(points: np.ndarray) -> np.ndarray:
    """Boolean (68,) - True where the point exists (missing points are NaN)."""
    return np.isfinite(np.asarray(points, dtype=np.float64)).all(axis=1)


def boundary_from_points(points: np.ndarray) -> np.ndarray:
    """B = [x, y, w, h]: leftmost-highest corner (min x, min y), width and height of the points.

    Missing (NaN) points are ignored; raises ValueError if fewer than two points exist.
    """
    pts = np.asarray(points, dtype=np.float64)
    ok = valid_mask(pts)
    if ok.sum() < 2:
        raise ValueError("cannot derive a face boundary from fewer than two landmarks")
    p = pts[ok]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)


def interocular_distance(points: np.ndarray) -> float:
    a, b = OUTER_EYE_CORNERS
    pts = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(pts[a] - pts[b]))
