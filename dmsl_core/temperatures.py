"""Skin temperatures at landmark regions of a radiometric thermal image (degrees C): the inner eye
corners (the canthus is the warmest spot of the face), the forehead and the nose tip.

:func:`temperatures_at` measures them; :func:`temperature_points` says where (a view writes each
value there). :mod:`dmsl_core.covered` judges from them whether an eye is covered (glasses).
"""
from __future__ import annotations

import math

import numpy as np

from .landmarks import INNER_EYE_CORNERS, NOSE_TIP

TEMPERATURE_REGIONS = ("inner_eye_r", "inner_eye_l", "forehead", "nose_tip")


def temperatures_at(celsius: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    """Temperatures (degrees C) at landmark regions of a radiometric thermal image.

    ``pts`` are the 68 landmarks in the thermal image's pixels. Regions: the inner eye corners
    (indices 39 = subject's right, 42 = left; the maximum in a disc of 8 % of the inter-ocular
    distance - the canthus is the warmest spot), the nose tip (30, mean in a disc) and the
    forehead (mean of a patch above the brows, 50 % x 20 % of the inter-ocular distance).
    Regions outside the image give NaN.
    """
    c = np.asarray(celsius, dtype=np.float32)
    p = np.asarray(pts, dtype=np.float64)
    H, W = c.shape[:2]
    if p.shape != (68, 2) or not np.isfinite(p).all():
        return {k: float("nan") for k in TEMPERATURE_REGIONS}
    eye_r, eye_l = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    iod = float(np.linalg.norm(eye_l - eye_r)) or 1.0
    r = max(1.0, 0.08 * iod)

    def disc(center: np.ndarray, radius: float, how: str) -> float:
        x0, x1 = int(max(0, math.floor(center[0] - radius))), int(min(W, math.ceil(center[0] + radius) + 1))
        y0, y1 = int(max(0, math.floor(center[1] - radius))), int(min(H, math.ceil(center[1] + radius) + 1))
        if x1 <= x0 or y1 <= y0:
            return float("nan")
        gy, gx = np.mgrid[y0:y1, x0:x1]
        m = (gx - center[0]) ** 2 + (gy - center[1]) ** 2 <= radius ** 2
        vals = c[y0:y1, x0:x1][m] if m.any() else c[y0:y1, x0:x1].ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return float("nan")
        return float(vals.max() if how == "max" else vals.mean())

    out = {"inner_eye_r": disc(p[INNER_EYE_CORNERS[0]], r, "max"),
           "inner_eye_l": disc(p[INNER_EYE_CORNERS[1]], r, "max"),
           "nose_tip": disc(p[NOSE_TIP], max(1.0, 0.1 * iod), "mean")}
    # forehead: above the brows, perpendicular to the eye line
    center = np.asarray(temperature_points(p)["forehead"])
    half_w, half_h = 0.25 * iod, 0.10 * iod
    x0, x1 = int(max(0, math.floor(center[0] - half_w))), int(min(W, math.ceil(center[0] + half_w) + 1))
    y0, y1 = int(max(0, math.floor(center[1] - half_h))), int(min(H, math.ceil(center[1] + half_h) + 1))
    patch = c[y0:y1, x0:x1] if (x1 > x0 and y1 > y0) else np.empty(0, np.float32)
    patch = patch[np.isfinite(patch)] if patch.size else patch
    out["forehead"] = float(patch.mean()) if patch.size else float("nan")
    return {k: out[k] for k in TEMPERATURE_REGIONS}


def temperature_points(pts: np.ndarray) -> dict[str, tuple[float, float]]:
    """Where :func:`temperatures_at` measures each region (``pts``: the 68 landmarks in thermal pixels):
    the inner eye corners, the nose tip and the forehead patch's centre - where a view writes them."""
    p = np.asarray(pts, dtype=np.float64)
    eye_r, eye_l = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    iod = float(np.linalg.norm(eye_l - eye_r)) or 1.0
    d = (eye_l - eye_r) / iod
    up = np.array([d[1], -d[0]])
    return {"inner_eye_r": tuple(p[INNER_EYE_CORNERS[0]]), "inner_eye_l": tuple(p[INNER_EYE_CORNERS[1]]),
            "nose_tip": tuple(p[NOSE_TIP]), "forehead": tuple(p[17:27].mean(axis=0) + up * 0.35 * iod)}
