"""Thermal palettes as 256-entry lookup tables and the display scaling of thermal frames.

``LUTS[name]`` is a (256, 3) uint8 table for ``pg.ImageItem.setLookupTable``; the same table
colours an 8-bit image with numpy (``apply_lut``) when an overlay is rendered off-screen.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dmsl_core.preprocess import DISPLAY_PERCENTILES

PALETTES = ("white-hot", "black-hot", "iron", "rainbow")


def _interp(stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    xs = np.array([s[0] for s in stops], dtype=np.float64)
    cs = np.array([s[1] for s in stops], dtype=np.float64)
    t = np.linspace(0.0, 1.0, 256)
    out = np.stack([np.interp(t, xs, cs[:, k]) for k in range(3)], axis=1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _make_luts() -> dict[str, np.ndarray]:
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    iron = _interp([(0.00, (0, 0, 10)), (0.15, (32, 0, 90)), (0.35, (128, 0, 140)), (0.50, (190, 30, 100)),
                    (0.65, (230, 90, 20)), (0.80, (250, 160, 0)), (0.92, (255, 220, 60)), (1.00, (255, 255, 230))])
    rainbow = _interp([(0.00, (0, 0, 128)), (0.15, (0, 0, 255)), (0.32, (0, 200, 255)), (0.48, (0, 220, 60)),
                       (0.64, (240, 240, 0)), (0.80, (255, 130, 0)), (0.92, (230, 0, 0)), (1.00, (255, 255, 255))])
    luts = {"white-hot": grey, "black-hot": grey[::-1].copy(), "iron": iron, "rainbow": rainbow}
    for v in luts.values():
        v.setflags(write=False)
    return luts


LUTS: dict[str, np.ndarray] = _make_luts()


def lut(name: str) -> np.ndarray:
    if name not in LUTS:
        raise ValueError(f"unknown palette {name!r}; choose one of {', '.join(PALETTES)}")
    return LUTS[name]


def apply_lut(img8: np.ndarray, name: str) -> np.ndarray:
    """HxW uint8 -> HxWx3 uint8 RGB through the palette."""
    return lut(name)[np.asarray(img8, dtype=np.uint8)]


class LevelTracker:
    """Display levels for a thermal stream: robust percentiles, smoothed so the picture does not flicker.

    ``update(img)`` returns (lo, hi) in the image's units (degrees C when given Celsius).
    """

    def __init__(self, alpha: float = 0.25, low_pct: float = DISPLAY_PERCENTILES[0],
                 high_pct: float = DISPLAY_PERCENTILES[1], min_span: float = 1.0):
        self.alpha, self.low_pct, self.high_pct, self.min_span = alpha, low_pct, high_pct, min_span
        self.levels: Optional[tuple[float, float]] = None

    def reset(self) -> None:
        self.levels = None

    def update(self, img: np.ndarray) -> tuple[float, float]:
        a = np.asarray(img)
        step = max(1, int((a.shape[0] * a.shape[1] / 20000) ** 0.5)) if a.ndim >= 2 else 1
        sub = a[::step, ::step] if a.ndim >= 2 else a
        finite = sub[np.isfinite(sub)] if sub.dtype.kind == "f" else sub.ravel()
        if finite.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = (float(v) for v in np.percentile(finite, [self.low_pct, self.high_pct]))
        span = self.min_span if a.dtype.kind == "f" else max(self.min_span, 4.0)
        if hi - lo < span:
            mid = 0.5 * (hi + lo)
            lo, hi = mid - span / 2, mid + span / 2
        if self.levels is None:
            self.levels = (lo, hi)
        else:
            k = self.alpha
            self.levels = ((1 - k) * self.levels[0] + k * lo, (1 - k) * self.levels[1] + k * hi)
        return self.levels
