"""How ``dmsl train`` / ``dmsl cv`` show training events: a progress line on a terminal
(:class:`ProgressPrinter`), JSON lines for the app (:class:`EventStream`, ``--events-jsonl``)."""
from __future__ import annotations

import sys
import time

import numpy as np


def _fmt_s(s) -> str:
    if s is None or not np.isfinite(s):
        return "--"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressPrinter:
    """Turns training events into a one-line progress bar on a terminal (a line per epoch otherwise)."""

    NAMES = {"boundary": "M_b", "landmark": "M_l"}

    def __init__(self, stream=None, width: int = 24, prefix: str = "", tty: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty and getattr(self.stream, "isatty", lambda: False)()
        self.width = width
        self.prefix = prefix

    def __call__(self, e) -> None:
        name = f"{self.NAMES.get(e.model, e.model)} stage {e.stage}"
        if self.prefix:
            name = f"{self.prefix}{name}"
        if e.kind == "step" and self.tty and e.steps:
            frac = e.step / e.steps
            bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
            self.stream.write(f"\r[{e.phase + 1}/{e.n_phases}] {name} epoch {e.epoch}/{e.epochs} [{bar}] "
                              f"loss {e.loss:.4g}  {e.images_per_s or 0:.0f} img/s  ETA {_fmt_s(e.eta_s)}   ")
            self.stream.flush()
        elif e.kind == "epoch":
            extra = f" val {e.val_loss:.4g}" if e.val_loss is not None else ""
            extra += f" NME {e.val_nme:.4f}" if e.val_nme is not None else ""
            self.stream.write(("\r" if self.tty else "") + f"[{e.phase + 1}/{e.n_phases}] {name} epoch "
                              f"{e.epoch}/{e.epochs} loss {e.loss:.4g}{extra}{' *best' if e.best else ''}"
                              f"  ETA {_fmt_s(e.eta_s)}" + " " * 10 + "\n")
        elif e.kind in ("start", "done", "cancelled") and e.message:
            self.stream.write(f"{e.message}\n")
            if e.kind == "start" and e.extra.get("device_name"):
                self.stream.write(f"device: {e.extra['device']} ({e.extra['device_name']})\n")
        self.stream.flush()


class EventStream:
    """``dmsl train --events-jsonl``: one JSON :class:`TrainEvent` per line on ``stream``, flushed.
    Step events are thinned to at most one per ``step_interval`` seconds (plus each epoch's last)."""

    def __init__(self, stream, step_interval: float = 0.25) -> None:
        self.stream, self.step_interval, self._last = stream, step_interval, 0.0

    def __call__(self, e) -> None:
        from ..training import event_to_json
        if e.kind == "step":
            now = time.monotonic()
            if now - self._last < self.step_interval and e.step != e.steps:
                return
            self._last = now
        self.stream.write(event_to_json(e) + "\n")
        self.stream.flush()
