"""Illumination measures of the visible image and the automatic spectrum switch (with hysteresis).

The rule (mode ``auto``): on each frame the visible image is measured on the face region when
one is known (else on the whole frame): mean luminance, 5th / 95th percentiles, the fraction of
near-black pixels (< 16/255) and of saturated ones (> 250/255). The mean and the saturated
fraction are smoothed over time (exponential, time constant ``tau_s``). Then

- on visible, switch to thermal when ``mean < low`` or ``saturated > sat_high``;
- on thermal, switch back when ``mean > high`` and ``saturated < sat_low``;
- never switch again before ``min_dwell_s`` seconds have passed since the last switch.

Two thresholds and the dwell time make it hysteretic: luminance that hovers around one threshold
cannot make it flap. Modes ``visible`` / ``thermal`` force a spectrum; ``both`` runs both
(the auto rule still names the one to trust). Every :class:`SpectrumDecision` carries the measures,
the smoothed values and the thresholds, and a sentence saying why.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import cv2
import numpy as np

MODES = ("auto", "visible", "thermal", "both")
DARK_LEVEL = 16.0 / 255.0
SAT_LEVEL = 250.0 / 255.0


@dataclass
class IlluminationMeasures:
    """Measures of one image on a region; luminance values in [0, 1] of full scale."""

    mean: float
    p05: float
    p95: float
    dark_frac: float
    sat_frac: float
    region: str = "frame"    # "face" or "frame"

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _luma01(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[:, :, :3]
        if a.dtype == np.uint8:
            a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        else:
            a = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    f = a.astype(np.float32)
    lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
    return (f - lo) / max(1e-6, hi - lo)


def clip_box(box: Optional[np.ndarray], shape: tuple[int, ...], grow: float = 0.0) -> Optional[tuple[int, int, int, int]]:
    """[x, y, w, h] -> integer (x0, y0, x1, y1) inside the image, or None when empty / unknown."""
    if box is None:
        return None
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= 1 or b[3] <= 1:
        return None
    x, y, w, h = b
    x -= grow * w
    y -= grow * h
    w *= 1 + 2 * grow
    h *= 1 + 2 * grow
    H, W = shape[:2]
    x0, y0 = int(max(0, math.floor(x))), int(max(0, math.floor(y)))
    x1, y1 = int(min(W, math.ceil(x + w))), int(min(H, math.ceil(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def measure_image(img: np.ndarray, box: Optional[np.ndarray] = None, max_pixels: int = 20000) -> IlluminationMeasures:
    """Illumination measures of an image (visible: luminance; uint16 / float scaled to its range)."""
    a = np.asarray(img)
    r = clip_box(box, a.shape)
    region = "frame"
    if r is not None:
        a = a[r[1]:r[3], r[0]:r[2]]
        region = "face"
    step = max(1, int(math.sqrt(a.shape[0] * a.shape[1] / max_pixels)))
    g = _luma01(a[::step, ::step])
    p05, p95 = np.percentile(g, [5, 95])
    return IlluminationMeasures(mean=float(g.mean()), p05=float(p05), p95=float(p95),
                                dark_frac=float((g < DARK_LEVEL).mean()), sat_frac=float((g > SAT_LEVEL).mean()),
                                region=region)


def measure_thermal(th: np.ndarray, celsius: Optional[np.ndarray] = None, box: Optional[np.ndarray] = None) -> dict:
    """Thermal measures: contrast (p95 - p05) and range, in degrees C when radiometric, else raw units."""
    a = np.asarray(celsius if celsius is not None else th)
    r = clip_box(box, a.shape)
    if r is not None:
        a = a[r[1]:r[3], r[0]:r[2]]
    step = max(1, int(math.sqrt(a.shape[0] * a.shape[1] / 20000)))
    f = a[::step, ::step].astype(np.float32)
    p05, p50, p95 = np.percentile(f, [5, 50, 95])
    return {"units": "C" if celsius is not None else "raw", "p05": round(float(p05), 4), "p50": round(float(p50), 4),
            "p95": round(float(p95), 4), "contrast": round(float(p95 - p05), 4),
            "region": "face" if r is not None else "frame"}


@dataclass
class SelectorConfig:
    mode: str = "auto"
    low: float = 0.12          # smoothed mean luminance below this -> thermal
    high: float = 0.20         # above this (and not saturated) -> back to visible
    sat_high: float = 0.50     # smoothed saturated fraction above this -> thermal (glare)
    sat_low: float = 0.30
    tau_s: float = 0.4         # smoothing time constant (seconds)
    min_dwell_s: float = 1.5   # no second switch within this time

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"spectrum mode {self.mode!r}; use one of {', '.join(MODES)}")
        if not (0 <= self.low < self.high <= 1):
            raise ValueError(f"thresholds must satisfy 0 <= low < high <= 1 (low={self.low}, high={self.high})")
        if not (0 <= self.sat_low < self.sat_high <= 1):
            raise ValueError("saturation thresholds must satisfy 0 <= sat_low < sat_high <= 1")


@dataclass
class SpectrumDecision:
    """Which spectrum to trust on this frame, which to run, and why."""

    chosen: str                                  # "vis" | "th"
    run: tuple[str, ...]                         # spectra to run the model on
    mode: str
    switched: bool
    reason: str
    measures: Optional[IlluminationMeasures] = None
    smoothed: dict = field(default_factory=dict)  # {"mean": .., "sat_frac": ..}
    thresholds: dict = field(default_factory=dict)
    state: str = "vis"                           # the auto rule's state (what it would trust)

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "run": list(self.run), "mode": self.mode, "switched": self.switched,
                "reason": self.reason, "state": self.state,
                "measures": self.measures.to_dict() if self.measures else None,
                "smoothed": {k: round(v, 5) for k, v in self.smoothed.items()}, "thresholds": dict(self.thresholds)}


class SpectrumSelector:
    """Decides per frame which spectrum's landmarks to trust (see the module docstring)."""

    def __init__(self, config: Optional[SelectorConfig] = None, **overrides) -> None:
        cfg = config or SelectorConfig()
        if overrides:
            cfg = SelectorConfig(**{**asdict(cfg), **overrides})
        self.config = cfg
        self.reset()

    _STATE = ("state", "_mean", "_sat", "_t_last", "_t_switch")

    def get_state(self) -> dict:
        """What carries from one frame to the next (the trusted spectrum, the smoothed measures, the
        times of the last frame and the last switch); the switch counter is left out."""
        return {k.lstrip("_"): getattr(self, k) for k in self._STATE}

    def set_state(self, state: dict) -> None:
        """Continue from a :meth:`get_state` copy."""
        for k in self._STATE:
            setattr(self, k, state[k.lstrip("_")])

    def reset(self) -> None:
        self.state = "vis"
        self._mean: Optional[float] = None
        self._sat: Optional[float] = None
        self._t_last: Optional[float] = None
        self._t_switch: Optional[float] = None
        self.switches = 0

    @property
    def mode(self) -> str:
        return self.config.mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"spectrum mode {value!r}; use one of {', '.join(MODES)}")
        self.config.mode = value

    def _smooth(self, m: IlluminationMeasures, t: float) -> None:
        if self._mean is None or self._t_last is None:
            self._mean, self._sat = m.mean, m.sat_frac
        else:
            dt = max(0.0, t - self._t_last)
            a = 1.0 - math.exp(-dt / self.config.tau_s) if self.config.tau_s > 0 else 1.0
            # kept on a 1e-9 grid: two runs that started apart end up bit-identical instead of one
            # float ulp apart for ever (sharded `dmsl run` compares the state to hand frames over)
            self._mean = round(self._mean + a * (m.mean - self._mean), 9)
            self._sat = round(self._sat + a * (m.sat_frac - self._sat), 9)  # type: ignore[operator]
        self._t_last = t

    def update(self, vis: Optional[np.ndarray], has_thermal: bool, t: float,
               face_box: Optional[np.ndarray] = None) -> SpectrumDecision:
        """Decide for one frame. ``face_box`` = [x, y, w, h] in visible pixels when known."""
        c = self.config
        thr = {"low": c.low, "high": c.high, "sat_high": c.sat_high, "sat_low": c.sat_low,
               "min_dwell_s": c.min_dwell_s, "tau_s": c.tau_s}
        measures = measure_image(vis, face_box) if vis is not None else None
        switched = False
        if measures is not None:
            self._smooth(measures, t)
        sm = {} if self._mean is None else {"mean": float(self._mean), "sat_frac": float(self._sat or 0.0)}
        # The auto rule (kept up to date in every mode, so "both" and the GUI can show it).
        why = ""
        if measures is None:
            why = "no visible image"
        elif not has_thermal:
            why = "no thermal image"
        else:
            dwell_ok = self._t_switch is None or (t - self._t_switch) >= c.min_dwell_s
            mean, sat = sm["mean"], sm["sat_frac"]
            if self.state == "vis":
                bad = mean < c.low or sat > c.sat_high
                if bad and dwell_ok:
                    self.state, switched = "th", True
                    why = (f"switched to thermal: visible mean {mean:.3f} < low {c.low:.3f}" if mean < c.low else
                           f"switched to thermal: saturated fraction {sat:.3f} > {c.sat_high:.3f}")
                elif bad:
                    why = f"visible poor (mean {mean:.3f}) but within the {c.min_dwell_s:g} s dwell after a switch"
                else:
                    why = f"visible usable: mean {mean:.3f} >= low {c.low:.3f}, saturated {sat:.3f}"
            else:
                good = mean > c.high and sat < c.sat_low
                if good and dwell_ok:
                    self.state, switched = "vis", True
                    why = f"switched to visible: mean {mean:.3f} > high {c.high:.3f}"
                elif good:
                    why = f"visible recovered (mean {mean:.3f}) but within the {c.min_dwell_s:g} s dwell"
                else:
                    why = (f"staying on thermal: visible mean {mean:.3f} <= high {c.high:.3f}" if mean <= c.high else
                           f"staying on thermal: saturated fraction {sat:.3f} >= {c.sat_low:.3f}")
            if switched:
                self._t_switch = t
                self.switches += 1
        avail = tuple(s for s, ok in (("vis", vis is not None), ("th", has_thermal)) if ok)
        if not avail:
            return SpectrumDecision(chosen=self.state, run=(), mode=c.mode, switched=False, reason="no image",
                                    measures=None, smoothed=sm, thresholds=thr, state=self.state)
        auto_choice = self.state if self.state in avail else avail[0]
        if c.mode == "auto":
            chosen, run, reason = auto_choice, (auto_choice,), why
        elif c.mode == "both":
            chosen, run, reason = auto_choice, avail, f"both spectra run; trusting {auto_choice}: {why}"
        else:
            want = "vis" if c.mode == "visible" else "th"
            chosen = want if want in avail else avail[0]
            reason = f"forced {c.mode}" + ("" if chosen == want else f" (not available, using {chosen})")
            run = (chosen,)
        return SpectrumDecision(chosen=chosen, run=run, mode=c.mode, switched=switched and c.mode in ("auto", "both"),
                                reason=reason, measures=measures, smoothed=sm, thresholds=thr, state=self.state)
