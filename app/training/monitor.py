"""The Train tab's monitor: the progress line and a bar per stage, and the training chart after
SLEAP's (loss above, validation NME below, one whole-epoch axis, the best epochs marked), drawn from
the training process's events (:class:`~dmsl_core.training.TrainEvent`)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import read_metrics

from ..panel_common import fmt_eta, fmt_num, title

MODEL_NAMES = {"boundary": "M_b", "landmark": "M_l"}


class EpochAxis(pg.AxisItem):
    """An epoch axis: whole epochs only (no 0.5, 1.5 ...), no SI prefix."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        out = []
        for spacing, ticks in super().tickValues(minVal, maxVal, size):
            if spacing >= 1:
                out.append((spacing, [t for t in ticks if abs(t - round(t)) < 1e-6]))
        if not out or not any(t for _, t in out):
            lo, hi = math.ceil(minVal), math.floor(maxVal)
            out = [(1.0, [float(v) for v in range(lo, hi + 1)][:50])]
        return out

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [str(int(round(v))) for v in values]


class ValueAxis(pg.AxisItem):
    """A y axis that writes plain numbers (0.002, 0.05, 3) on linear and log scales: no "(x0.001)"
    SI prefix in the label, no "7·10²" tick labels."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        # log scale: 1, 2, 5 x 10^k inside the range (every 1..9 x 10^k when that gives fewer than 3)
        lo, hi = min(minVal, maxVal), max(minVal, maxVal)
        ks = range(int(math.floor(lo)) - 1, int(math.ceil(hi)) + 1)
        for mult in ((1, 2, 5), tuple(range(1, 10))):
            vals = [math.log10(m) + k for k in ks for m in mult if lo <= math.log10(m) + k <= hi]
            if len(vals) >= 3:
                break
        if len(vals) > max(3, int(size / 22)):   # about one label per 22 px
            vals = [v for v in vals if abs(v - round(v)) < 1e-9] or vals[::2]
        return [(1.0, vals)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if self.logMode:
            return self.logTickStrings(values, scale, spacing)
        return [f"{v * scale:.3g}" for v in values]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802
        return [f"{10 ** float(v):.3g}" for v in values]


class TrainMonitor(QtCore.QObject):
    """Two frames the panel lays out, ``progress_frame`` (state, device, speed, ETA, a bar per
    stage) and ``chart_frame`` (the chart, with ``side`` beside it), and what they show: the epoch
    records of ``run_dir`` (as in its ``metrics.jsonl``) and the recent events."""

    checkpointSaved = QtCore.Signal()    # an epoch ended or the run is done: a new checkpoint to preview
    foldStarted = QtCore.Signal(str)     # a cross-validation's next fold (its run folder)

    def __init__(self, side: QtWidgets.QWidget, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.run_dir = ""                       # the run shown (a cross-validation's current fold)
        self.records: list[dict] = []           # epoch records, as in metrics.jsonl
        self.events: list = []                  # recent non-step events
        self.n_steps = 0                        # step events received
        self.weights = ""                       # the finished run's weights
        self.phases: list[tuple[str, int]] = []  # (model, stage) of the run's stages
        self._bars: dict[int, QtWidgets.QProgressBar] = {}
        self._build(side)

    def _build(self, side: QtWidgets.QWidget) -> None:
        info = self.progress_frame = QtWidgets.QFrame()
        info.setObjectName("Panel")
        il = QtWidgets.QVBoxLayout(info)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(title("Progress"))
        head.addStretch(1)
        self.state_label = QtWidgets.QLabel("idle")
        self.device_label = QtWidgets.QLabel("device: —")
        self.speed_label = QtWidgets.QLabel("— img/s")
        self.eta_label = QtWidgets.QLabel("ETA --")
        for w in (self.state_label, self.device_label, self.speed_label, self.eta_label):
            w.setObjectName("Dim")
            head.addSpacing(12)
            head.addWidget(w)
        il.addLayout(head)
        self.bars_box = QtWidgets.QGridLayout()
        self.bars_box.setVerticalSpacing(2)
        il.addLayout(self.bars_box)

        plots = self.chart_frame = QtWidgets.QFrame()
        plots.setObjectName("Panel")
        pl = QtWidgets.QVBoxLayout(plots)
        ph = QtWidgets.QHBoxLayout()
        ph.addWidget(title("Training monitor"))
        ph.addStretch(1)
        # the key sits above the chart, not in it: a legend inside covered the last stages' curves
        self.loss_key = QtWidgets.QLabel(
            "<span style='color:#f5a623'>&#9472;&#9472;</span> training loss &nbsp; "
            "<span style='color:#4fc3f7'>&#9472;&#9472;</span> validation loss &nbsp; "
            "&#9733; best epoch of each stage &nbsp; "
            "<span style='color:#81c784'>&#9472;&#9472;</span> validation NME &nbsp; "
            "<span style='color:#ffd54f'>&#9474;</span> best validation NME")
        self.loss_key.setObjectName("Dim")
        ph.addWidget(self.loss_key)
        ph.addSpacing(12)
        self.log_check = QtWidgets.QCheckBox("log scale")
        self.log_check.setChecked(True)
        self.log_check.toggled.connect(self.set_log)
        ph.addWidget(self.log_check)
        pl.addLayout(ph)
        # one chart, as SLEAP's training monitor: loss above, validation NME below, one epoch axis
        self.chart = pg.GraphicsLayoutWidget()
        self.chart.setBackground(None)
        self.chart.setMinimumHeight(320)
        self.chart.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
        self.loss_plot = self.chart.addPlot(row=0, col=0, axisItems={"bottom": EpochAxis("bottom"),
                                                                      "left": ValueAxis("left")})
        self.nme_plot = self.chart.addPlot(row=1, col=0, axisItems={"bottom": EpochAxis("bottom"),
                                                                     "left": ValueAxis("left")})
        self.chart.ci.layout.setRowStretchFactor(0, 3)
        self.chart.ci.layout.setRowStretchFactor(1, 2)
        self.nme_plot.setXLink(self.loss_plot)
        for plot, label in ((self.loss_plot, "loss"), (self.nme_plot, "val NME")):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
            plot.getAxis("left").setWidth(62)      # both y axes as wide: the epochs line up
            plot.setMenuEnabled(False)
        self.loss_plot.getAxis("bottom").setStyle(showValues=False)   # the NME plot below carries the epochs
        self.nme_plot.setLabel("bottom", "epoch (all stages in order)")
        self.train_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#f5a623", width=2), name="training loss",
                                               connect="finite")
        self.val_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="validation loss",
                                             connect="finite")
        self.best_marks = self.loss_plot.plot([], [], pen=None, symbol="star", symbolSize=14,
                                              symbolBrush=pg.mkBrush("#ffffff"), symbolPen=pg.mkPen("#1b1d21"),
                                              name="best epoch of each stage")
        self.nme_curve = self.nme_plot.plot([], [], pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=5,
                                            symbolBrush="#81c784", name="validation NME", connect="finite")
        self.best_nme_mark = self.nme_plot.plot([], [], pen=None, symbol="star", symbolSize=16,
                                                symbolBrush=pg.mkBrush("#ffd54f"), symbolPen=pg.mkPen("#1b1d21"),
                                                name="best validation NME")
        self.best_lines = []
        for plot in (self.loss_plot, self.nme_plot):   # the best epoch, through both panels
            ln = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffd54f", width=1, style=QtCore.Qt.DotLine))
            ln.setVisible(False)
            plot.addItem(ln)
            self.best_lines.append(ln)
        self.best_label = QtWidgets.QLabel("best validation NME: after the first M_l epoch")
        self.best_label.setObjectName("Dim")
        self.best_epoch: Optional[int] = None   # x (epoch over all stages) of the lowest validation NME
        self._phase_lines: list = []
        chart_col = QtWidgets.QVBoxLayout()
        chart_col.addWidget(self.chart, 1)
        chart_col.addWidget(self.best_label)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(chart_col, 3)
        body.addWidget(side, 2)
        pl.addLayout(body, 1)
        self.set_log(True)

    def reset(self, run_dir: str, phases: list, records: list) -> None:
        """A new process: its run, stages and the records it starts from (a resumed run's)."""
        self.run_dir, self.phases, self.records = run_dir, phases, records
        self.events, self.n_steps, self.weights = [], 0, ""
        self.make_bars()
        self.redraw()

    def on_event(self, e) -> None:
        """Draw one TrainEvent: the progress line and bars, an epoch's point on the chart."""
        if e.kind != "step":
            self.events = (self.events + [e])[-200:]
        else:
            self.n_steps += 1
        if e.kind == "start":
            self.device_label.setText(f"device: {e.extra.get('device', '?')} ({e.extra.get('device_name', '')})")
            if e.extra.get("resumed"):
                self.records = read_metrics(self.run_dir)
                self.make_bars()
                self.redraw()
        elif e.kind == "fold":
            self.run_dir = e.extra.get("run_dir", "")
            self.records = []
            self.make_bars()
            self.redraw()
            self.foldStarted.emit(self.run_dir)
            self.state_label.setText(e.message)
        elif e.kind == "phase_start":
            self.bar_update(e.phase, (e.epoch or 0) / max(e.epochs, 1), e, None)
            if 0 <= e.phase < len(self.phases):   # a stage's own status replaces the last stage's
                kind, stage = self.phases[e.phase]
                self.state_label.setText(f"running {MODEL_NAMES.get(kind, kind)} stage {stage}")
        elif e.kind == "step":
            frac = ((e.epoch - 1) * max(e.steps, 1) + e.step) / max(e.epochs * max(e.steps, 1), 1)
            self.bar_update(e.phase, frac, e, e.eta_s)
            if e.images_per_s:
                self.speed_label.setText(f"{e.images_per_s:.0f} img/s")
            self.eta_label.setText(f"stage ETA {fmt_eta(e.eta_s)}")
        elif e.kind == "epoch":
            self.records.append({"phase": e.phase, "model": e.model, "stage": e.stage, "epoch": e.epoch,
                                 "epochs": e.epochs, "train_loss": e.loss, "val_loss": e.val_loss,
                                 "val_nme": e.val_nme, "best": e.best})
            self.bar_update(e.phase, e.epoch / max(e.epochs, 1), e, e.eta_s)
            self.redraw()
            self.checkpointSaved.emit()
        elif e.kind == "phase_end":
            self.bar_update(e.phase, 1.0, e, 0.0)
        elif e.kind == "status":
            self.state_label.setText(e.message)
        elif e.kind == "done":
            self.weights = e.extra.get("weights", "")
            for i in self._bars:
                self.bar_update(i, 1.0, None, 0.0)
            self.checkpointSaved.emit()

    def make_bars(self) -> None:
        while self.bars_box.count():
            w = self.bars_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self._bars = {}
        for i, (kind, stage) in enumerate(self.phases):
            lab = QtWidgets.QLabel(f"{MODEL_NAMES[kind]} stage {stage}")
            bar = QtWidgets.QProgressBar()
            bar.setMaximumHeight(bar.fontMetrics().height() + 4)   # six stages fit without squeezing the chart
            bar.setRange(0, 1000)
            bar.setValue(0)
            bar.setFormat("waiting")
            done = [r for r in self.records if r["phase"] == i]
            if done:
                bar.setValue(int(1000 * done[-1]["epoch"] / max(done[-1]["epochs"], 1)))
                bar.setFormat(f"epoch {done[-1]['epoch']}/{done[-1]['epochs']} (before resume)")
            self.bars_box.addWidget(lab, i, 0)
            self.bars_box.addWidget(bar, i, 1)
            self._bars[i] = bar

    def bar_update(self, phase: int, frac: float, e, eta) -> None:
        bar = self._bars.get(phase)
        if bar is None:
            return
        bar.setValue(int(round(1000 * min(max(frac, 0.0), 1.0))))
        if frac >= 1.0 and (e is None or e.kind in ("phase_end", "done")):
            bar.setFormat("done")
        elif e is not None:
            bar.setFormat(f"epoch {max(e.epoch, 1)}/{e.epochs} · %p% · ETA {fmt_eta(eta)}")

    def set_log(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=bool(on))
        self.loss_plot.setLabel("left", "loss" + (" (log)" if on else ""))
        self.redraw()

    def curve_data(self) -> dict:
        """x / train / val arrays of the loss plot (NaN between stages) and the best epochs."""
        xs, tr, va, best_x, best_y = [], [], [], [], []
        last_phase = None
        for i, r in enumerate(self.records):
            if last_phase is not None and r["phase"] != last_phase:
                xs.append(np.nan)
                tr.append(np.nan)
                va.append(np.nan)
            last_phase = r["phase"]
            xs.append(i + 1)
            tr.append(np.nan if r.get("train_loss") is None else r["train_loss"])
            va.append(np.nan if r.get("val_loss") is None else r["val_loss"])
        by_phase: dict[int, tuple[int, dict]] = {}
        for i, r in enumerate(self.records):
            if r.get("best"):
                by_phase[r["phase"]] = (i, r)
        for i, r in by_phase.values():
            y = r.get("val_loss") if r.get("val_loss") is not None else r.get("train_loss")
            if y is not None:
                best_x.append(i + 1)
                best_y.append(y)
        return {"x": np.array(xs, float), "train": np.array(tr, float), "val": np.array(va, float),
                "best_x": np.array(best_x, float), "best_y": np.array(best_y, float)}

    def redraw(self) -> None:
        d = self.curve_data()
        log = self.log_check.isChecked()
        safe = (lambda a: np.where(a > 0, a, np.nan)) if log else (lambda a: a)
        self.train_curve.setData(d["x"], safe(d["train"]), connect="finite")
        self.val_curve.setData(d["x"], safe(d["val"]), connect="finite")
        by = d["best_y"]
        ok = by > 0 if log else np.isfinite(by)
        self.best_marks.setData(d["best_x"][ok], by[ok])
        for ln in self._phase_lines:
            self.loss_plot.removeItem(ln)
        self._phase_lines = []
        prev = None
        for i, r in enumerate(self.records):
            if r["phase"] != prev:   # every second stage's name a line higher: short stages' names do not overlap
                ln = pg.InfiniteLine(pos=i + 0.5, angle=90, pen=pg.mkPen("#666b73", style=QtCore.Qt.DashLine),
                                     label=f"{MODEL_NAMES.get(r['model'], r['model'])} s{r['stage']}",
                                     labelOpts={"position": 0.06 + 0.09 * (len(self._phase_lines) % 2),
                                                "color": "#969fa9"})
                self.loss_plot.addItem(ln)
                self._phase_lines.append(ln)
                prev = r["phase"]
        # the same x as the loss plot (epochs of all stages in order), broken between stages
        nx, ny, prev = [], [], None
        for i, r in enumerate(self.records):
            if r.get("val_nme") is None:
                continue
            if prev is not None and r["phase"] != prev:
                nx.append(np.nan)
                ny.append(np.nan)
            nx.append(i + 1)
            ny.append(r["val_nme"])
            prev = r["phase"]
        self.nme_curve.setData(np.array(nx, float), np.array(ny, float), connect="finite")
        # the best epoch: the lowest validation NME of the run so far, marked through both panels
        scored = [(r["val_nme"], i + 1, r) for i, r in enumerate(self.records)
                  if r.get("val_nme") is not None and math.isfinite(r["val_nme"])]
        if scored:
            best, x, r = min(scored, key=lambda t: (t[0], t[1]))
            self.best_epoch = x
            self.best_nme_mark.setData([x], [best])
            for ln in self.best_lines:
                ln.setPos(x)
                ln.setVisible(True)
            self.best_label.setText(f"best validation NME {fmt_num(best)} at epoch {x} "
                                    f"({MODEL_NAMES.get(r['model'], r['model'])} stage {r['stage']}, "
                                    f"its epoch {r['epoch']})")
        else:
            self.best_epoch = None
            self.best_nme_mark.setData([], [])
            for ln in self.best_lines:
                ln.setVisible(False)
            self.best_label.setText("best validation NME: after the first M_l epoch")
        self.loss_plot.setXRange(0.5, max(len(self.records), 1) + 0.5, padding=0.02)
