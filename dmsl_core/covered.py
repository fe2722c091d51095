"""Which temperature regions are covered (glasses): their temperature says it is not skin.

Glass and most plastics are opaque to long-wave infrared, so a thermal camera sees the lens, at
about room temperature, not the eye behind it. The inner eye corner (canthus) is normally the
warmest spot of the face (the reason fever screening measures it), so a canthus that is not warmer
than the face's median by at least :data:`COVERED_MARGIN_C` is reported as covered, not as an eye
temperature. Only measured on the generated demo so far (below), not on real radiometric faces.

The rule (:func:`covered_regions`): for each inner eye corner region of
:func:`dmsl_core.temperatures.temperatures_at`, covered when

    temperature(canthus) < median(temperatures inside the hull of the 68 landmarks) + COVERED_MARGIN_C

The face median is robust to one covered region (a lens covers a small part of the hull). Only
the eye regions are judged: the forehead and the nose tip have no such physiological ordering
(a cold nose is normal). Measured on the demo's first 100 frames (a 20 s cycle at 5 fps, the
shipped model's landmarks): canthus minus face median at least +1.4 / +1.0 / +0.9 degrees C without
glasses at 320 x 256 / 160 x 128 / 640 x 512, and through the glasses -9.1..+0.3 (all 16 eye
regions flagged) / -9.0..-1.2 (16 of 16) / -9.1..+1.2 (11 of 16: a turned head shows part of the
canthus beside the lens at 640 x 512).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

COVERED_MARGIN_C = 0.5
EYE_REGIONS = ("inner_eye_r", "inner_eye_l")


def face_median(celsius: np.ndarray, pts: np.ndarray) -> float:
    """Median temperature inside the convex hull of the 68 landmarks (NaN when it holds no pixel)."""
    c = np.asarray(celsius, dtype=np.float32)
    p = np.asarray(pts, dtype=np.float64)
    if c.ndim != 2 or p.shape != (68, 2) or not np.isfinite(p).all():
        return float("nan")
    mask = np.zeros(c.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(p).astype(np.int32)), 1)
    vals = c[(mask > 0) & np.isfinite(c)]
    return float(np.median(vals)) if vals.size else float("nan")


def covered_regions(celsius: np.ndarray, pts: np.ndarray, temps: dict) -> dict[str, str]:
    """Region -> why it is covered, for the eye regions of ``temps`` (``temperatures_at``'s dict)
    whose temperature is not above the face median by :data:`COVERED_MARGIN_C`."""
    med = face_median(celsius, pts)
    if not math.isfinite(med):
        return {}
    out = {}
    for k in EYE_REGIONS:
        v = temps.get(k)
        if v is not None and math.isfinite(v) and v < med + COVERED_MARGIN_C:
            out[k] = (f"{v:.1f} °C, not warmer than the face's median {med:.1f} °C (an inner eye corner is "
                      f"normally the warmest spot): covered (glasses?), not an eye temperature")
    return out
