"""The Models tab: the models the app knows (shipped in ``assets/models`` and the training runs
under the runs folder) with configuration, training data, date, measured NME and size.

Use one as the live model, show its card, rename or delete a run (with confirmation), or open it
in the Evaluate tab. The listing, rename and delete are :mod:`dmsl_core.runs` functions.
"""
from __future__ import annotations

import json
from typing import Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import ModelEntry, delete_run, list_models, rename_run

from .panel_common import MessageStrip, fmt_num, title

COLS = ["name", "kind", "status", "configuration", "training data", "date", "NME TH", "NME VIS", "NME measured on",
        "size"]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class ModelsPanel(QtWidgets.QWidget):
    useModel = QtCore.Signal(str)        # a weights spec to use for the live view
    evaluateModel = QtCore.Signal(str)   # open it in the Evaluate tab
    resumeRun = QtCore.Signal(str)       # a resumable run folder (the Train tab resumes it)

    def __init__(self, runs_dir: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.entries: list[ModelEntry] = []
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(title("Models"))
        self.root_label = QtWidgets.QLabel()
        self.root_label.setObjectName("Dim")
        head.addWidget(self.root_label, 1)
        lay.addLayout(head)
        self.message = MessageStrip()
        lay.addWidget(self.message)
        self.table = QtWidgets.QTableWidget(0, len(COLS))
        self.table.setHorizontalHeaderLabels(COLS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _: self.show_card())
        lay.addWidget(self.table, 1)
        row = QtWidgets.QHBoxLayout()
        self.use_btn = QtWidgets.QPushButton("Use for live view")
        self.use_btn.clicked.connect(self.use_selected)
        self.eval_btn = QtWidgets.QPushButton("Evaluate…")
        self.eval_btn.clicked.connect(lambda: self.selected() and self.evaluateModel.emit(self.selected().path))
        self.resume_btn = QtWidgets.QPushButton("Resume training")
        self.resume_btn.clicked.connect(lambda: self.selected() and self.resumeRun.emit(self.selected().path))
        self.card_btn = QtWidgets.QPushButton("Model card")
        self.card_btn.clicked.connect(self.show_card)
        self.rename_btn = QtWidgets.QPushButton("Rename…")
        self.rename_btn.clicked.connect(self.rename_dialog)
        self.delete_btn = QtWidgets.QPushButton("Delete…")
        self.delete_btn.clicked.connect(self.delete_dialog)
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.onnx_btn = QtWidgets.QPushButton("Export to ONNX…")
        self.onnx_btn.setToolTip("boundary.onnx + landmark.onnx, compared with ONNX Runtime when it is installed")
        self.onnx_btn.clicked.connect(self.onnx_dialog)
        self.onnx_handle = None
        for b in (self.use_btn, self.eval_btn, self.resume_btn, self.card_btn, self.rename_btn, self.delete_btn,
                  self.onnx_btn):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(refresh)
        lay.addLayout(row)
        self.refresh()

    def set_runs_dir(self, d: str) -> None:
        self.runs_dir = d
        self.refresh()

    def refresh(self) -> None:
        try:
            self.entries = list_models(self.runs_dir)
        except OSError as exc:
            self.entries = []
            self.message.show_message(f"Cannot list {self.runs_dir}: {exc}")
        self.root_label.setText(f"shipped models and runs under {self.runs_dir or '(no runs folder)'}")
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(self.entries):
            vals = [e.name, e.kind, e.status, e.config, e.data, e.date.replace("T", " ")[:19],
                    fmt_num(e.nme.get("th")), fmt_num(e.nme.get("vis")), e.nme_note, _size(e.size_bytes)]
            for j, v in enumerate(vals):
                it = QtWidgets.QTableWidgetItem(v)
                it.setToolTip(e.path if j == 0 else (f"{v} - {e.nme_note}" if j in (6, 7) and e.nme_note else v))
                self.table.setItem(i, j, it)
        self.table.resizeColumnsToContents()
        self._update_buttons()

    def selected(self) -> Optional[ModelEntry]:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def select_path(self, path: str) -> bool:
        for i, e in enumerate(self.entries):
            if e.path == path:
                self.table.selectRow(i)
                return True
        return False

    def _update_buttons(self) -> None:
        e = self.selected()
        for b in (self.use_btn, self.eval_btn, self.onnx_btn):
            b.setEnabled(e is not None and e.usable)
        self.card_btn.setEnabled(e is not None)
        self.resume_btn.setEnabled(e is not None and e.status == "resumable")
        for b in (self.rename_btn, self.delete_btn):
            b.setEnabled(e is not None and e.kind == "run")

    def use_selected(self) -> None:
        e = self.selected()
        if e is not None and e.usable:
            self.useModel.emit(e.name if e.kind == "shipped" else e.path)
            self.message.show_message(f"Live view now uses {e.name}.", "info")

    def show_card(self) -> None:
        e = self.selected()
        if e is None:
            return
        dlg = QtWidgets.QDialog(self)
        dlg.setWindowTitle(f"Model card · {e.name}")
        lay = QtWidgets.QVBoxLayout(dlg)
        text = QtWidgets.QPlainTextEdit(json.dumps(e.card or {"note": "no model card (run not finished)"}, indent=2))
        text.setReadOnly(True)
        lay.addWidget(text)
        dlg.resize(640, 560)
        dlg.show()
        self._card_dialog = dlg

    def onnx_dialog(self) -> None:
        e = self.selected()
        if e is None or not e.usable:
            return
        d = QtWidgets.QFileDialog.getExistingDirectory(self, f"Export {e.name} to ONNX into", e.path)
        if d:
            self.export_onnx(e, d)

    def export_onnx(self, entry: ModelEntry, folder: str):
        """Export on a worker thread; the result (or the error) is shown in the message line."""
        from dmsl_core.models.onnx_export import export_onnx

        from .workers import FunctionWorker, start_worker
        spec = entry.name if entry.kind == "shipped" else entry.path
        self.onnx_btn.setEnabled(False)
        self.message.show_message(f"Exporting {entry.name} to ONNX …", "info")
        self.onnx_result = None

        def done(res: dict) -> None:
            self.onnx_result = res
            chk = res.get("check")
            what = chk if isinstance(chk, str) else "ONNX Runtime gives the same outputs (max difference " + \
                ", ".join(f"{k} {v:.1e}" for k, v in chk.items()) + ")"
            self.message.show_message(f"Exported {entry.name} to {folder}: {what}.", "info")

        self.onnx_handle = start_worker(FunctionWorker(export_onnx, spec, folder), "dmsl-onnx", on_result=done,
                                        on_error=lambda m: self.message.show_message(f"ONNX export failed: {m}"),
                                        on_finished=self._update_buttons, parent=self, collect=True)
        return self.onnx_handle

    def stop(self, timeout_ms: int = 10000) -> bool:
        return self.onnx_handle.wait(timeout_ms) if self.onnx_handle is not None else True

    def rename(self, entry: ModelEntry, new_name: str) -> bool:
        try:
            rename_run(entry.path, new_name)
        except (ValueError, OSError) as exc:
            self.message.show_message(f"Cannot rename {entry.path}: {exc}")
            return False
        self.refresh()
        return True

    def delete(self, entry: ModelEntry) -> bool:
        try:
            delete_run(entry.path)
        except (ValueError, OSError) as exc:
            self.message.show_message(f"Cannot delete {entry.path}: {exc}")
            return False
        self.refresh()
        return True

    def rename_dialog(self) -> None:
        e = self.selected()
        if e is None or e.kind != "run":
            return
        name, ok = QtWidgets.QInputDialog.getText(self, "Rename run", "New folder name", text=e.name)
        if ok and name.strip() and name.strip() != e.name:
            self.rename(e, name)

    def delete_dialog(self) -> None:
        e = self.selected()
        if e is None or e.kind != "run":
            return
        r = QtWidgets.QMessageBox.question(self, "Delete run", f"Delete the run folder {e.path} with its "
                                           f"checkpoints and weights? This cannot be undone.")
        if r == QtWidgets.QMessageBox.Yes:
            self.delete(e)
