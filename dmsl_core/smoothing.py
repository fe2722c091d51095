"""Temporal smoothing of landmarks for video: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A low-pass filter whose cut-off rises with speed: jitter is smoothed when the face is still, lag
stays small when it moves. Here the speed is measured in face sizes per second (the landmarks'
bounding-box diagonal), so one set of parameters suits every image size. Off for still images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class OneEuroConfig:
    min_cutoff: float = 1.5    # Hz, cut-off at rest (lower: smoother, more lag)
    beta: float = 4.0          # cut-off increase per (face size / s) of speed
    d_cutoff: float = 1.0      # Hz, cut-off of the speed estimate
    max_gap_s: float = 0.5     # longer gaps between frames restart the filter
    reset_jump: float = 0.5    # a jump of more than this many face sizes restarts it


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over an array of points (e.g. (68, 2)); call :meth:`__call__` per frame."""

    def __init__(self, config: Optional[OneEuroConfig] = None) -> None:
        self.config = config or OneEuroConfig()
        self.reset()

    def get_state(self) -> dict:
        """The filter's memory (the last filtered points, their speed, the last time)."""
        return {"x": self._x, "dx": self._dx, "t": self._t}

    def set_state(self, state: dict) -> None:
        """Continue from a :meth:`get_state` copy."""
        self._x, self._dx, self._t = state["x"], state["dx"], state["t"]

    def reset(self) -> None:
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None
        self._t: Optional[float] = None

    def __call__(self, points: np.ndarray, t: float) -> np.ndarray:
        c = self.config
        x = np.asarray(points, dtype=np.float64)
        if not np.isfinite(x).all():
            self.reset()
            return x.copy()
        span = x.reshape(-1, 2)
        scale = float(np.linalg.norm(span.max(axis=0) - span.min(axis=0))) or 1.0
        if self._x is None or self._t is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0 or dt > c.max_gap_s or float(np.abs(x - self._x).max()) > c.reset_jump * scale:
            if dt <= 0 and dt > -1e-9 and not (float(np.abs(x - self._x).max()) > c.reset_jump * scale):
                return self._x.copy()  # same instant: keep the estimate
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dx = (x - self._x) / dt
        a_d = _alpha(c.d_cutoff, dt)
        self._dx = self._dx + a_d * (dx - self._dx)
        speed = np.linalg.norm(self._dx.reshape(-1, 2), axis=1) / scale      # face sizes per second, per point
        cutoff = c.min_cutoff + c.beta * speed
        a = np.array([_alpha(float(cf), dt) for cf in cutoff])[:, None]
        self._x = self._x + a.reshape(-1, 1) * (x.reshape(-1, 2) - self._x.reshape(-1, 2))
        self._x = self._x.reshape(x.shape)
        self._t = t
        return self._x.copy()
