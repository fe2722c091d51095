"""Spectrum control and the live indicator of the selector: mode buttons, the trusted spectrum,
the illumination measures against the thresholds, why the selector is where it is, and a strip
chart of the visible luminance over the last seconds."""
from __future__ import annotations

import collections
import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from .views import ACCENT

MODE_LABELS = {"auto": "Auto", "visible": "Visible", "thermal": "Thermal", "both": "Both"}
MODE_KEYS = {"auto": "A", "visible": "V", "thermal": "T", "both": "B"}
SPECTRUM_NAMES = {"vis": "VISIBLE", "th": "THERMAL"}
VIS_COLOUR = "#4fc3f7"
TH_COLOUR = ACCENT


class ModeSelector(QtWidgets.QWidget):
    """Four exclusive buttons: auto / visible / thermal / both."""

    modeChanged = QtCore.Signal(str)

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.group = QtWidgets.QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QtWidgets.QToolButton] = {}
        for i, (mode, label) in enumerate(MODE_LABELS.items()):
            b = QtWidgets.QToolButton()
            b.setText(label)
            b.setCheckable(True)
            b.setObjectName("Segment")
            b.setProperty("pos", "first" if i == 0 else ("last" if i == len(MODE_LABELS) - 1 else "mid"))
            b.setToolTip(f"Spectrum mode: {label.lower()} ({MODE_KEYS[mode]})")
            b.setFocusPolicy(QtCore.Qt.NoFocus)
            b.setMinimumWidth(62)
            self.group.addButton(b)
            self.buttons[mode] = b
            lay.addWidget(b)
            b.clicked.connect(lambda _=False, m=mode: self.modeChanged.emit(m))
        self.buttons["auto"].setChecked(True)

    def set_mode(self, mode: str) -> None:
        if mode in self.buttons:
            self.buttons[mode].setChecked(True)

    def mode(self) -> str:
        for m, b in self.buttons.items():
            if b.isChecked():
                return m
        return "auto"


class SelectorChart(pg.PlotWidget):
    """The visible luminance (raw and smoothed) over the last ``window_s`` seconds, the two
    thresholds, and shading where thermal was trusted."""

    def __init__(self, window_s: float = 20.0, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent=parent)
        self.window_s = window_s
        self.data: collections.deque = collections.deque(maxlen=4000)
        self._dirty = False              # samples added since the last redraw
        self.setMenuEnabled(False)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0.02)
        self.setXRange(-window_s, 0, padding=0)
        self.showGrid(x=False, y=True, alpha=0.15)
        pi = self.getPlotItem()
        pi.setLabel("bottom", "seconds")
        pi.setLabel("left", "visible luminance")
        for ax in ("left", "bottom"):
            pi.getAxis(ax).setStyle(tickFont=QtGui.QFont("Sans", 8))
            pi.getAxis(ax).label.setFont(QtGui.QFont("Sans", 8))
        self.th_fill = pg.PlotCurveItem(pen=pg.mkPen(None), fillLevel=0.0, brush=pg.mkBrush(245, 166, 35, 50))
        self.raw_curve = pg.PlotCurveItem(pen=pg.mkPen((150, 160, 170, 120), width=1))
        self.smooth_curve = pg.PlotCurveItem(pen=pg.mkPen("#ffffff", width=2))
        self.sat_curve = pg.PlotCurveItem(pen=pg.mkPen((240, 98, 146, 170), width=1, style=QtCore.Qt.DotLine))
        for it in (self.th_fill, self.raw_curve, self.sat_curve, self.smooth_curve):
            self.addItem(it)
        self.low_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(TH_COLOUR, width=1, style=QtCore.Qt.DashLine),
                                        label="low {value:.2f}", labelOpts={"position": 0.06, "color": TH_COLOUR})
        self.high_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(VIS_COLOUR, width=1, style=QtCore.Qt.DashLine),
                                         label="high {value:.2f}", labelOpts={"position": 0.06, "color": VIS_COLOUR})
        self.addItem(self.low_line)
        self.addItem(self.high_line)
        self.low_line.setValue(0.12)
        self.high_line.setValue(0.20)
        self.setMinimumHeight(120)

    def clear_data(self) -> None:
        self.data.clear()
        self._dirty = False
        for c in (self.th_fill, self.raw_curve, self.smooth_curve, self.sat_curve):
            c.setData([], [])

    def add(self, t: float, raw: float, smooth: float, sat: float, thermal: bool) -> None:
        if self.data and t < self.data[-1][0] - 1e-6:
            self.data.clear()  # seek / restart
        self.data.append((t, raw, smooth, sat, 1.0 if thermal else 0.0))
        self._dirty = True
        while self.data and self.data[0][0] < t - self.window_s - 1.0:
            self.data.popleft()

    def redraw(self) -> None:
        """Draw the samples added since the last redraw (none added - paused: nothing to do)."""
        if not self.data or not self._dirty:
            return
        self._dirty = False
        a = np.array(self.data, dtype=np.float64)
        x = a[:, 0] - a[-1, 0]
        for curve, col in ((self.raw_curve, 1), (self.smooth_curve, 2), (self.sat_curve, 3)):
            y = a[:, col]
            ok = np.isfinite(y)
            curve.setData(x[ok], y[ok])
        # a step function: each sample's state holds until the next sample
        xs = np.repeat(x, 2)[1:]
        ys = np.repeat(a[:, 4], 2)[:-1]
        self.th_fill.setData(xs, ys)

    def set_thresholds(self, low: Optional[float], high: Optional[float]) -> None:
        if low is not None and math.isfinite(low):
            self.low_line.setValue(low)
        if high is not None and math.isfinite(high):
            self.high_line.setValue(high)


class SpectrumPanel(QtWidgets.QFrame):
    """The selector's state: mode buttons, the trusted spectrum, measures vs thresholds, the reason."""

    modeChanged = QtCore.Signal(str)

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("Panel")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(6)
        head = QtWidgets.QLabel("SPECTRUM")
        head.setObjectName("PanelTitle")
        lay.addWidget(head)
        self.modes = ModeSelector()
        self.modes.modeChanged.connect(self.modeChanged)
        lay.addWidget(self.modes)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Trusting"))
        self.trusted = QtWidgets.QLabel("—")
        self.trusted.setObjectName("Pill")
        self.trusted.setAlignment(QtCore.Qt.AlignCenter)
        self.trusted.setMinimumWidth(90)
        row.addWidget(self.trusted)
        row.addStretch(1)
        self.switches = QtWidgets.QLabel("")
        self.switches.setObjectName("Dim")
        row.addWidget(self.switches)
        lay.addLayout(row)
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        self.values: dict[str, QtWidgets.QLabel] = {}
        for r, (key, label) in enumerate((("mean", "luminance"), ("sat", "saturated"), ("thr", "thresholds"),
                                          ("th", "thermal contrast"))):
            name = QtWidgets.QLabel(label)
            name.setObjectName("Dim")
            val = QtWidgets.QLabel("—")
            val.setObjectName("Value")
            grid.addWidget(name, r, 0)
            grid.addWidget(val, r, 1)
            self.values[key] = val
        grid.setColumnStretch(1, 1)
        lay.addLayout(grid)
        self.reason = QtWidgets.QLabel("")
        self.reason.setObjectName("Reason")
        self.reason.setWordWrap(True)
        self.reason.setMinimumHeight(34)
        self.reason.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        lay.addWidget(self.reason)
        lay.addStretch(1)
        self.n_switches = 0

    def set_mode(self, mode: str) -> None:
        self.modes.set_mode(mode)

    def update_decision(self, result) -> None:
        d = result.decision
        chosen = result.chosen
        self.trusted.setText(SPECTRUM_NAMES.get(chosen, chosen))
        if self.trusted.property("spectrum") != chosen:   # restyled on a change only: polishing costs
            self.trusted.setProperty("spectrum", chosen)
            self.trusted.style().unpolish(self.trusted)
            self.trusted.style().polish(self.trusted)
        if d.switched:
            self.n_switches += 1
        self.switches.setText(f"{self.n_switches} switch{'es' if self.n_switches != 1 else ''}")
        m = d.measures
        sm = d.smoothed or {}
        thr = d.thresholds or {}
        if m is not None:
            self.values["mean"].setText(f"{m.mean:.3f}  (smoothed {sm.get('mean', m.mean):.3f}, {m.region})")
            self.values["sat"].setText(f"{m.sat_frac:.3f}  (smoothed {sm.get('sat_frac', m.sat_frac):.3f})")
        else:
            self.values["mean"].setText("— (no visible image)")
            self.values["sat"].setText("—")
        if thr:
            self.values["thr"].setText(f"low {thr.get('low', 0):.2f} · high {thr.get('high', 0):.2f} · "
                                       f"dwell {thr.get('min_dwell_s', 0):g} s")
        tm = result.measures.get("th") if hasattr(result, "measures") else None
        if tm:
            unit = "°C" if tm.get("units") == "C" else " raw"
            self.values["th"].setText(f"{tm.get('contrast', float('nan')):.1f}{unit} ({tm.get('region', '')})")
        else:
            self.values["th"].setText("— (no thermal image)")
        self.reason.setText(d.reason)

    def reset(self) -> None:
        self.n_switches = 0
        self.switches.setText("")
        self.trusted.setText("—")
        for v in self.values.values():
            v.setText("—")
        self.reason.setText("")
