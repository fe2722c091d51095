"""The Evaluate tab: a model (and baselines) on a dataset folder, with the paper's metrics and plots.

The evaluation runs on a worker thread (:func:`dmsl_core.evaluation.evaluate_folder`, the same
code as ``dmsl eval``); the tab shows

- the paper's Table I shape: one row per method (DMSL, Dlib, Dlib with M_b's box), NME TH / VIS
  over detected images, misses per spectrum, AUC@0.08 and failure rates - the paper's way
  (misses excluded) and the strict way (a miss is a failure); an unavailable baseline gets a row
  saying why,
- the CED curve per spectrum for every method,
- the per-variation NME bar chart (the paper's Fig. 12),
- the worst images; selecting one shows it with predicted (coloured) and ground-truth (green
  crosses) landmarks.

Export writes ``report.json``, ``report.csv`` and the plots as PNG (atomic writes).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from dmsl_core.atomic import atomic_path, atomic_write_text
from dmsl_core.evaluation import evaluate_folder, report_to_csv, table_rows, write_report

from .panel_common import MessageStrip, fmt_num, path_row, title
from .views import SpectrumView
from .workers import FunctionWorker, WorkerHandle, start_worker

METHOD_COLOURS = ["#f5a623", "#4fc3f7", "#ba68c8", "#81c784", "#e57373"]
TABLE_COLS = ["method", "NME TH", "NME VIS", "miss TH", "miss VIS", "AUC.08", "fail.08", "fail.10",
              "strict AUC.08", "strict fail.08"]
N_WORST = 30


def _run_eval(data, weights, fold, spectra, baselines, device, compare=(), worker=None) -> dict:
    def progress(msg, i, n):
        worker.progress.emit((msg, i, n))
    return evaluate_folder(data, weights, fold=fold, spectra=spectra, baselines=baselines, device=device,
                           keep_predictions=True, skip_unavailable=True, progress=progress,
                           should_stop=lambda: worker.stopping, compare=compare)


class EvalPanel(QtWidgets.QWidget):
    evaluated = QtCore.Signal(dict)

    def __init__(self, runs_dir: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.report: Optional[dict] = None
        self.handle: Optional[WorkerHandle] = None
        self.error_text = ""
        self._worst: list[dict] = []
        self._started: Optional[float] = None
        self.seconds: Optional[float] = None
        self._build()
        self.refresh_models()

    # ---- construction --------------------------------------------------------------------------
    def _build(self) -> None:
        from dmsl_core.baselines import dlib_available

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        top = QtWidgets.QFrame()
        top.setObjectName("Panel")
        tl = QtWidgets.QGridLayout(top)
        self.weights_box = QtWidgets.QComboBox()
        self.weights_box.setEditable(True)
        self.weights_box.setMinimumWidth(320)
        self.weights_box.setToolTip("A run folder, a .safetensors file or a shipped model name")
        bw = QtWidgets.QPushButton("Folder…")
        bw.clicked.connect(self._browse_weights_dir)
        bf = QtWidgets.QPushButton("File…")
        bf.clicked.connect(self._browse_weights_file)
        self.data_edit = QtWidgets.QLineEdit()
        self.data_edit.setPlaceholderText("dataset folder (manifest.csv + annotations)")
        bd = QtWidgets.QPushButton("…")
        bd.clicked.connect(self._browse_data)
        self.fold = QtWidgets.QSpinBox()
        self.fold.setRange(-1, 99)
        self.fold.setValue(-1)
        self.fold.setSpecialValueText("all images")
        self.fold.setToolTip("Evaluate fold k's test subjects of the paper's 10-fold protocol, or every image")
        self.spectra_box = QtWidgets.QComboBox()
        self.spectra_box.addItems(["both", "th", "vis"])
        self.device_box = QtWidgets.QComboBox()
        self.device_box.setEditable(True)
        self.device_box.addItems(["auto", "cpu", "cuda", "mps"])
        ok, why = dlib_available()
        self.dlib_check = QtWidgets.QCheckBox("Dlib")
        self.dlibmb_check = QtWidgets.QCheckBox("Dlib with M_b's face box")
        for c in (self.dlib_check, self.dlibmb_check):
            c.setChecked(ok)
            c.setEnabled(ok)
            c.setToolTip("Dlib's HOG detector + 68-point predictor" if ok else f"unavailable: {why}")
        self.dlib_reason = why
        self.compare_box = QtWidgets.QComboBox()
        self.compare_box.setEditable(True)
        self.compare_box.setMinimumWidth(220)
        self.compare_box.setToolTip("Another trained model to evaluate on the same images (a row of its own); "
                                    "empty: none")
        self.run_btn = QtWidgets.QPushButton("Evaluate")
        self.run_btn.clicked.connect(lambda: self.evaluate())
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.clicked.connect(self.stop)
        self.export_btn = QtWidgets.QPushButton("Export…")
        self.export_btn.setToolTip("Write report.json, report.csv and the plots as PNG into a folder")
        self.export_btn.clicked.connect(self.export_dialog)
        tl.addWidget(QtWidgets.QLabel("Weights"), 0, 0)
        tl.addWidget(path_row(self.weights_box, bw, bf), 0, 1)
        tl.addWidget(QtWidgets.QLabel("Dataset"), 1, 0)
        tl.addWidget(path_row(self.data_edit, bd), 1, 1)
        opts = QtWidgets.QHBoxLayout()
        for lab, w in (("Fold", self.fold), ("Spectra", self.spectra_box), ("Device", self.device_box)):
            opts.addWidget(QtWidgets.QLabel(lab))
            opts.addWidget(w)
        opts.addSpacing(12)
        opts.addWidget(QtWidgets.QLabel("Baselines"))
        opts.addWidget(self.dlib_check)
        opts.addWidget(self.dlibmb_check)
        opts.addWidget(QtWidgets.QLabel("Compare with"))
        opts.addWidget(self.compare_box)
        if not ok:
            lab = QtWidgets.QLabel(f"(unavailable: {why})")
            lab.setObjectName("Dim")
            opts.addWidget(lab)
        opts.addStretch(1)
        tl.addLayout(opts, 2, 0, 1, 2)
        btns = QtWidgets.QVBoxLayout()
        for b in (self.run_btn, self.stop_btn, self.export_btn):
            btns.addWidget(b)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        # wide enough for "dmsl-default: 205/205"; a longer model name is elided, never the count
        self.progress.setMinimumWidth(self.progress.fontMetrics().horizontalAdvance("dmsl-default: 0000/0000") + 24)
        btns.addWidget(self.progress)
        tl.addLayout(btns, 0, 2, 3, 1)
        tl.setColumnStretch(1, 1)
        outer.addWidget(top)
        self.message = MessageStrip()
        outer.addWidget(self.message)

        grid = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        row1 = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        tbl_frame = QtWidgets.QFrame()
        tbl_frame.setObjectName("Panel")
        tfl = QtWidgets.QVBoxLayout(tbl_frame)
        tfl.addWidget(title("NME per spectrum (Table I)"))
        self.table = QtWidgets.QTableWidget(0, len(TABLE_COLS))
        self.table.setHorizontalHeaderLabels(TABLE_COLS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        tfl.addWidget(self.table)
        self.summary = QtWidgets.QLabel("")
        self.summary.setObjectName("Dim")
        self.summary.setWordWrap(True)
        self.summary.setMinimumHeight(self.summary.fontMetrics().lineSpacing() * 5)   # whole, not cut by the table
        tfl.addWidget(self.summary)
        row1.addWidget(tbl_frame)
        ced_frame = QtWidgets.QFrame()
        ced_frame.setObjectName("Panel")
        cfl = QtWidgets.QHBoxLayout(ced_frame)
        self.ced_plots = {}
        for spec, name in (("th", "thermal"), ("vis", "visible")):
            pw = pg.PlotWidget(title=f"CED · {name}")
            pw.setBackground(None)
            pw.showGrid(x=True, y=True, alpha=0.2)
            pw.setLabel("bottom", "NME")
            pw.getAxis("bottom").enableAutoSIPrefix(False)
            pw.setLabel("left", "fraction of images")
            pw.setYRange(0, 1)
            pw.addLegend(offset=(8, 8), labelTextSize="8pt")
            self.ced_plots[spec] = pw
            cfl.addWidget(pw)
        row1.addWidget(ced_frame)
        row1.setSizes([520, 700])
        grid.addWidget(row1)

        row2 = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        var_frame = QtWidgets.QFrame()
        var_frame.setObjectName("Panel")
        vfl = QtWidgets.QVBoxLayout(var_frame)
        vfl.addWidget(title("NME per variation (DMSL)"))
        self.var_plot = pg.PlotWidget()
        self.var_plot.setBackground(None)
        self.var_plot.showGrid(x=True, alpha=0.2)
        self.var_plot.setLabel("bottom", "NME")
        self.var_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.var_plot.addLegend(offset=(-5, 5))
        self.var_bars: list = []
        vfl.addWidget(self.var_plot)
        row2.addWidget(var_frame)
        worst_frame = QtWidgets.QFrame()
        worst_frame.setObjectName("Panel")
        wfl = QtWidgets.QHBoxLayout(worst_frame)
        wl = QtWidgets.QVBoxLayout()
        wl.addWidget(title("Worst images (DMSL)"))
        self.worst_table = QtWidgets.QTableWidget(0, 4)
        self.worst_table.setHorizontalHeaderLabels(["NME", "spectrum", "variation", "image"])
        self.worst_table.verticalHeader().setVisible(False)
        self.worst_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.worst_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.worst_table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.worst_table.horizontalHeader().setStretchLastSection(True)
        self.worst_table.itemSelectionChanged.connect(self._show_selected)
        wl.addWidget(self.worst_table)
        wfl.addLayout(wl, 1)
        self.image_view = SpectrumView("Selected image")
        self.image_view.setMinimumWidth(260)
        wfl.addWidget(self.image_view, 1)
        row2.addWidget(worst_frame)
        row2.setSizes([600, 620])
        grid.addWidget(row2)
        outer.addWidget(grid, 1)
        self._update_buttons()

    def refresh_models(self) -> None:
        from dmsl_core.runs import list_models
        specs = [m.name if m.kind == "shipped" else m.path for m in list_models(self.runs_dir) if m.usable]
        for box, blank in ((self.weights_box, False), (self.compare_box, True)):
            cur = box.currentText()
            box.blockSignals(True)
            box.clear()
            if blank:
                box.addItem("")
            box.addItems(specs)
            box.setCurrentText(cur)
            box.blockSignals(False)

    def _browse_weights_dir(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Run folder", self.runs_dir or str(Path.home()))
        if d:
            self.weights_box.setCurrentText(d)

    def _browse_weights_file(self) -> None:
        f, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Weights", self.runs_dir or str(Path.home()),
                                                     "Weights (*.safetensors)")
        if f:
            self.weights_box.setCurrentText(f)

    def _browse_data(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Dataset folder", self.data_edit.text() or str(Path.home()))
        if d:
            self.data_edit.setText(d)

    # ---- running -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    def _update_buttons(self) -> None:
        self.run_btn.setEnabled(not self.running)
        self.stop_btn.setEnabled(self.running)
        self.export_btn.setEnabled(self.report is not None and not self.running)

    def evaluate(self, weights: Optional[str] = None, data: Optional[str] = None, fold: Optional[int] = None,
                 baselines: Optional[list[str]] = None, compare: Optional[str] = None) -> Optional[WorkerHandle]:
        if self.running:
            return None
        if weights is not None:
            self.weights_box.setCurrentText(weights)
        if data is not None:
            self.data_edit.setText(data)
        if fold is not None:
            self.fold.setValue(fold)
        if compare is not None:
            self.compare_box.setCurrentText(compare)
        w = self.weights_box.currentText().strip() or None
        d = self.data_edit.text().strip()
        if not d:
            self.message.show_message("Choose a dataset folder to evaluate on.")
            return None
        if baselines is None:
            baselines = [n for n, c in (("dlib", self.dlib_check), ("dlib+mb", self.dlibmb_check))
                         if c.isChecked() and c.isEnabled()]
        f = None if self.fold.value() < 0 else self.fold.value()
        spectra = ("vis", "th") if self.spectra_box.currentText() == "both" else (self.spectra_box.currentText(),)
        self.error_text = ""
        self.message.clear()
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self._started = time.monotonic()
        self.seconds = None

        def progress(p) -> None:
            msg, i, n = p
            self.progress.setFormat(self._progress_text(str(msg), f"{i}/{n}"))
            self.progress.setToolTip(f"{msg}: {i}/{n}")
            self.progress.setValue(int(1000 * i / max(n, 1)))

        def failed(msg: str) -> None:
            self.error_text = msg
            self._started = None
            self.message.show_message(f"Evaluation failed: {msg}")

        def finished() -> None:
            if not self.report or self.error_text:
                self.progress.setFormat("")
            self._update_buttons()

        self.handle = start_worker(FunctionWorker(_run_eval, d, w, f, spectra, baselines,
                                                  self.device_box.currentText().strip() or "auto",
                                                  [c for c in [self.compare_box.currentText().strip()] if c],
                                                  pass_worker=True),
                                   "dmsl-eval", on_result=self.show_report, on_progress=progress, on_error=failed,
                                   on_finished=finished, parent=self, collect=True)
        self._update_buttons()
        return self.handle

    def _progress_text(self, msg: str, count: str) -> str:
        """``msg: count`` with ``msg`` elided to the bar's width, so the count is always whole."""
        fm = self.progress.fontMetrics()
        room = max(0, self.progress.width() - 24 - fm.horizontalAdvance(f": {count}"))
        return f"{fm.elidedText(msg, QtCore.Qt.ElideMiddle, room)}: {count}"

    def stop(self, timeout_ms: int = 5000) -> bool:
        if self.handle is None:
            return True
        return self.handle.stop(timeout_ms)

    # ---- showing -----------------------------------------------------------------------------------
    def show_report(self, report: dict) -> None:
        if report is None:
            return
        self.report = report
        # the report holds no timing (the same data give the same JSON); the time is the panel's own
        # measure, from Evaluate to the report - a report shown from elsewhere has none
        started, self._started = self._started, None
        self.seconds = time.monotonic() - started if started is not None else None
        rows = table_rows(report)
        unavailable = report.get("baselines_unavailable") or {}
        self.table.setRowCount(len(rows) + len(unavailable))
        for i, r in enumerate(rows):
            vals = [r["method"], fmt_num(r["nme_th"]), fmt_num(r["nme_vis"]), str(r["misses_th"]), str(r["misses_vis"]),
                    fmt_num(r["auc_0.08"], 3), fmt_num(r["failure_rate_0.08"], 3), fmt_num(r["failure_rate_0.10"], 3),
                    fmt_num(r["strict_auc_0.08"], 3), fmt_num(r["strict_failure_rate_0.08"], 3)]
            for j, v in enumerate(vals):
                it = QtWidgets.QTableWidgetItem(v)
                if j == 0 and i == 0:
                    f = it.font()
                    f.setBold(True)
                    it.setFont(f)
                self.table.setItem(i, j, it)
        for k, (name, why) in enumerate(unavailable.items()):
            i = len(rows) + k
            self.table.setItem(i, 0, QtWidgets.QTableWidgetItem(name))
            it = QtWidgets.QTableWidgetItem(f"unavailable: {why}")
            it.setToolTip(why)
            self.table.setItem(i, 1, it)
            self.table.setSpan(i, 1, 1, len(TABLE_COLS) - 1)
        dark = report.get("dropped_dark", 0)
        self.summary.setText(
            f"{report['n_images']} images ({dark} black visible image{'s' if dark != 1 else ''} left out"
            f"{', fold ' + str(report['fold']) + ' test subjects' if report.get('fold') is not None else ''}); "
            f"NME over the images a method detected (the paper's way); misses are images it found no face in; "
            f"'strict' counts a miss as a failure. AUC.08 = area under the CED up to 0.08; "
            f"fail.08 / fail.10 = fraction of images with NME above 0.08 / 0.10."
            + (f" Took {self.seconds:.1f} s." if self.seconds is not None else ""))
        self._draw_ced()
        self._draw_variations()
        self._fill_worst()
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self.evaluated.emit(report)
        self._update_buttons()

    def _methods(self) -> list[tuple[str, dict]]:
        r = self.report or {}
        return [(r.get("model") or "dmsl", r), *(r.get("baselines") or {}).items()]

    def _draw_ced(self) -> None:
        for spec, pw in self.ced_plots.items():
            pw.clear()
            if pw.plotItem.legend is not None:
                pw.plotItem.legend.clear()
            for k, (name, r) in enumerate(self._methods()):
                t = np.asarray(r["ced"]["thresholds"], float)
                c = r["ced"].get(spec)
                ps = r["per_spectrum"].get(spec) or {}
                if c is None or not ps.get("n"):
                    continue
                short = name if len(name) <= 18 else name[:17] + "…"
                label = (f"{short} · AUC {fmt_num(ps.get('auc_0.08'), 3)} · fail "
                         f"{fmt_num(ps.get('failure_rate_0.08'), 3)}")
                pw.plot(t, np.asarray(c, float), pen=pg.mkPen(METHOD_COLOURS[k % len(METHOD_COLOURS)], width=2),
                        name=label)
            pw.addItem(pg.InfiniteLine(pos=0.08, angle=90, pen=pg.mkPen("#666b73", style=QtCore.Qt.DashLine)))
            pw.setYRange(0, 1)

    def _draw_variations(self) -> None:
        """Horizontal bars (variations down the side, readable with all 21): thermal and visible."""
        for b in self.var_bars:
            self.var_plot.removeItem(b)
        self.var_bars = []
        pv = (self.report or {}).get("per_variation") or {}
        names = list(pv)
        y = np.arange(len(names), dtype=float)
        for off, spec, colour in ((-0.2, "th", "#f5a623"), (0.2, "vis", "#4fc3f7")):
            w = np.array([np.nan if pv[n].get(spec) is None else pv[n][spec] for n in names], float)
            ok = np.isfinite(w)
            bars = pg.BarGraphItem(x0=np.zeros(int(ok.sum())), y=y[ok] + off, width=w[ok], height=0.38,
                                   brush=colour, pen=None, name="thermal" if spec == "th" else "visible")
            self.var_plot.addItem(bars)
            self.var_bars.append(bars)
        ax = self.var_plot.getAxis("left")
        ax.setTicks([[(i, n.replace("_", " ")) for i, n in enumerate(names)]])
        self.var_plot.setYRange(-0.7, max(len(names) - 0.3, 0.7), padding=0)
        self.var_plot.invertY(True)

    def _fill_worst(self) -> None:
        imgs = [e for e in (self.report or {}).get("images") or [] if e.get("nme") is not None]
        misses = [e for e in (self.report or {}).get("images") or [] if e.get("nme") is None]
        self._worst = misses + sorted(imgs, key=lambda e: -e["nme"])
        self._worst = self._worst[:N_WORST]
        self.worst_table.setRowCount(len(self._worst))
        for i, e in enumerate(self._worst):
            vals = ["miss" if e["nme"] is None else fmt_num(e["nme"]), e["spectrum"], e["variation"],
                    Path(e["image"]).name]
            for j, v in enumerate(vals):
                it = QtWidgets.QTableWidgetItem(v)
                it.setToolTip(e["image"])
                self.worst_table.setItem(i, j, it)
        self.worst_table.resizeColumnsToContents()
        if self._worst:
            self.worst_table.selectRow(0)

    def worst_images(self) -> list[dict]:
        return list(self._worst)

    def _show_selected(self) -> None:
        rows = self.worst_table.selectionModel().selectedRows()
        if not rows:
            return
        self.show_image(rows[0].row())

    def show_image(self, row: int) -> None:
        from dmsl_core.data.imageio import read_image
        e = self._worst[row]
        try:
            img = read_image(e["image"])
        except Exception as exc:  # noqa: BLE001 - a bad file is a message, not a crash
            self.image_view.show_message(f"cannot read {e['image']}: {exc}")
            return
        if img.dtype != np.uint8:
            from dmsl_core.preprocess import display_uint8
            img = display_uint8(img)
        self.image_view.set_image(img)
        pred = None if e.get("pred") is None else np.asarray(e["pred"], float)
        gt = np.array([[np.nan if v is None else v for v in row_] for row_ in e.get("gt") or []], float) \
            if e.get("gt") else None
        self.image_view.set_landmarks(pred)
        self.image_view.set_ground_truth(gt)
        self.image_view.set_info(f"NME {'miss' if e['nme'] is None else fmt_num(e['nme'])} · {e['spectrum']} · "
                                 f"{e['variation']} · {Path(e['image']).name}")

    # ---- export -------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the report into", str(Path.home()))
        if d:
            try:
                paths = self.export(d)
            except Exception as exc:  # noqa: BLE001 - shown, never raised into Qt
                self.message.show_message(f"Export failed: {exc}")
                return
            self.message.show_message(f"Exported {len(paths)} files to {d}", "info")

    def export(self, folder: str) -> list[str]:
        """Write report.json, report.csv, ced_th.png, ced_vis.png, per_variation.png, table.png."""
        if self.report is None:
            raise ValueError("nothing to export: run an evaluation first")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_report(self.report, out / "report.json")
        atomic_write_text(out / "report.csv", report_to_csv(self.report))
        paths = [str(out / "report.json"), str(out / "report.csv")]
        for name, w in (("ced_th.png", self.ced_plots["th"]), ("ced_vis.png", self.ced_plots["vis"]),
                        ("per_variation.png", self.var_plot), ("table.png", self.table)):
            with atomic_path(out / name, suffix=".png") as tmp:
                if not w.grab().save(tmp, "PNG"):
                    raise OSError(f"{out / name}: could not write the PNG")
            paths.append(str(out / name))
        return paths
