"""The Models tab: the models the app knows (shipped in ``assets/models`` and the training runs
under the runs folder) with configuration, training data, date, measured NME and size.

Use one as the live model, show its card (:class:`CardDialog`: a readable page, :func:`card_html`, with the
JSON one tab away), rename or delete a run (with confirmation), or open it in the Evaluate tab. The listing, rename and delete are :mod:`dmsl_core.runs` functions.
"""
from __future__ import annotations

import html
import json
from typing import Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import ModelEntry, delete_run, list_models, rename_run

from .panel_common import MessageStrip, fmt_num, title

COLS = ["name", "kind", "status", "configuration", "training data", "date", "NME TH", "NME VIS", "NME measured on",
        "size"]


def _h(v) -> str:
    return html.escape(str(v))


def _f(v, digits: int = 4) -> str:
    return fmt_num(v, digits) if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


def _pct(v) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th align='left'>{_h(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{x}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table cellspacing='0' cellpadding='3'><tr>{th}</tr>{body}</table>"


def _eval_rows(name: str, ev: dict) -> list[list[str]]:
    """A method row (DMSL) and a row per baseline of one evaluation block (heldout_eval / real_eval[x])."""
    n = ev.get("nme") or {}
    rows = [[f"<b>{_h(name)}</b>", _f(n.get("th")), _f(n.get("vis")), _f(n.get("all")), _f(ev.get("auc_0.08"), 3),
             _pct(ev.get("failure_rate_0.08")), _pct(ev.get("failure_rate_0.10")), "—"]]
    for b, bv in (ev.get("baselines") or {}).items():
        if not isinstance(bv, dict):
            continue
        bn = bv.get("nme") or {}
        miss = bv.get("misses") or {}
        m = ", ".join(f"{'TH' if k == 'th' else 'VIS'} {miss[k]}" for k in ("th", "vis") if k in miss)
        rows.append([_h(b.replace("dlib", "Dlib")), _f(bn.get("th")), _f(bn.get("vis")), _f(bn.get("all")), "—", "—",
                     "—", m or "—"])
    return rows


def _brief(v) -> str:
    """A field in words: scalars as they are, a dict's scalar entries as "key value", nested parts as
    "key (…)" (the JSON tab has them whole)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (str, int, bool)) or v is None:
        return str(v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_brief(x)}" if not isinstance(x, (dict, list)) else f"{k} (…)" for k, x in v.items())
    if isinstance(v, list):
        if all(not isinstance(x, (dict, list)) for x in v):
            return ", ".join(_brief(x) for x in v)
        return f"{len(v)} entries (…)"
    return str(v)


EVAL_HEAD = ["method", "NME TH", "NME VIS", "NME all", "AUC@0.08", "failures >0.08", "failures >0.10",
             "no face found"]
CARD_SECTIONS = ("heldout_eval", "real_eval", "training_sources", "training", "inference", "bench", "config",
                 "history", "nme_val", "nme_test")


def card_html(card: dict) -> str:
    """The model card as a readable page: what the figures are and what they were measured on, what
    the model was trained on, its inference settings and speed. Fields it does not know are listed
    at the end in one line each; the whole JSON is the dialog's other tab."""
    from dmsl_core.runs import card_nme

    out = [f"<h2>{_h(card.get('name', 'model'))}</h2>"]
    cfg = card.get("config") or {}
    facts = []
    if isinstance(cfg, dict) and cfg:
        facts.append(f"{_h(cfg.get('name', '?'))}: U-Net {_h('-'.join(map(str, cfg.get('widths', []))))}, "
                     f"head {_h(cfg.get('head', 'fc'))} {_h(cfg.get('hidden', ''))}, input {_h(cfg.get('input_size', '?'))} px")
    for k, label in (("created", "created"), ("dtype", "weights"), ("size_bytes", "size")):
        if card.get(k) is not None:
            facts.append(f"{label} {_h(_size(card[k]) if k == 'size_bytes' else card[k])}")
    if facts:
        out.append("<p>" + " · ".join(facts) + "</p>")
    nme, src, note = card_nme(card)
    if nme:
        vals = " / ".join(f"{'TH' if k == 'th' else 'VIS'} <b>{_f(nme.get(k))}</b>" for k in ("th", "vis"))
        out.append(f"<p>The model's figure (the Models tab's NME): {vals} — {_h(note)}.</p>")
    h = card.get("heldout_eval")
    if isinstance(h, dict) and isinstance(h.get("nme"), dict):
        out.append("<h3>Held-out test subjects</h3>")
        if h.get("what"):
            out.append(f"<p>{_h(h['what'])}.</p>")
        out.append(_table(EVAL_HEAD, _eval_rows("DMSL", h)))
    real = card.get("real_eval")
    if isinstance(real, dict) and real:
        out.append("<h3>Real faces</h3>")
        for name, ev in real.items():
            if not isinstance(ev, dict):
                continue
            out.append(f"<p><b>{_h(name)}</b>: {_h(ev.get('n_images', '?'))} images"
                       + (f" ({_h(ev['data'])})" if ev.get("data") else "") + "</p>")
            out.append(_table(EVAL_HEAD, _eval_rows("DMSL", ev)))
    inf = card.get("inference")
    if isinstance(inf, dict) and inf:
        out.append("<h3>Inference settings</h3><p>" + " · ".join(f"{_h(k)} <b>{_h(v)}</b>" for k, v in inf.items())
                   + " (the Settings dialog's test-time augmentation and box refinement can override them)</p>")
    src_rows = card.get("training_sources")
    tr = card.get("training") or {}
    if (isinstance(src_rows, list) and src_rows) or (isinstance(tr, dict) and tr):
        out.append("<h3>Trained on</h3>")
    if isinstance(src_rows, list) and src_rows:
        rows = [[f"<b>{_h(r.get('set', '?'))}</b>", _h(r.get("faces", "")), _h(r.get("spectra", "")),
                 _h(r.get("role", "")), _h(r.get("licence", ""))] for r in src_rows if isinstance(r, dict)]
        out.append(_table(["set", "faces", "spectra", "role", "licence"], rows))
    if isinstance(tr, dict) and tr:
        from .about import training_bits
        out.append("<p>" + _h(", ".join(training_bits(tr, data=False))) + "</p>")
    if card.get("history"):
        out.append(f"<p style='color:#8a93a0'>{_h(card['history'])}</p>")
    for k, label in (("nme_test", "test subjects at the end of training"),
                     ("nme_val", "validation subjects at the end of training")):
        v = card.get(k)
        if isinstance(v, dict) and isinstance(v.get("th", v.get("vis")), (int, float)):
            extra = " (not the shipped settings)" if src == "heldout" else ""
            out.append(f"<p>NME on the {label}{extra}: TH {_f(v.get('th'))} / VIS {_f(v.get('vis'))}"
                       + (f", {v['n_images']} images" if v.get("n_images") else "") + "</p>")
    bench = card.get("bench")
    if isinstance(bench, dict) and bench.get("pipeline"):
        out.append("<h3>Speed</h3>")
        rows = []
        for r in bench["pipeline"]:
            ms, fps, ratio = r.get("ms_per_image") or {}, r.get("fps") or {}, r.get("ratio_vs_dlib") or {}
            rows.append([_h(r.get("model", "?")), _h(r.get("device", "?")),
                         " / ".join(_h(f"{ms[b]:.1f}") for b in ("1", "8") if b in ms),
                         " / ".join(_h(f"{fps[b]:.0f}") for b in ("1", "8") if b in fps),
                         " / ".join(_h(f"{ratio[b]:.1f}×") for b in ("1", "8") if b in ratio)])
        out.append(_table(["model", "device", "ms / image (batch 1 / 8)", "images / s", "vs Dlib"], rows))
        d = bench.get("dlib") or {}
        m = bench.get("machine") or {}
        fr = bench.get("frames") or {}
        line = [f"{_h(bench.get('threads', '?'))} threads, {_h(m.get('cpu_count', '?'))} CPUs, torch "
                f"{_h(m.get('torch', '?'))}", f"frames: {_h(fr.get('source', '?'))}"]
        if d.get("fps"):
            line.append(f"Dlib {d['fps']:.1f} frames / s")
        out.append("<p style='color:#8a93a0'>" + " · ".join(line) + " (dmsl bench)</p>")
    rest = [(k, v) for k, v in card.items() if k not in CARD_SECTIONS and k not in ("name", "created", "dtype",
                                                                                    "size_bytes")]
    if rest:
        out.append("<h3>Other fields</h3>")
        rows = []
        for k, v in rest:
            text = _brief(v)
            rows.append([f"<b>{_h(k)}</b>", _h(text if len(text) <= 160 else text[:160] + "…")])
        out.append(_table(["field", "value"], rows))
    return "\n".join(out)


class CardDialog(QtWidgets.QDialog):
    """A model card: the readable card, and the JSON one tab away."""

    def __init__(self, name: str, card: dict, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card · {name}")
        lay = QtWidgets.QVBoxLayout(self)
        self.tabs = QtWidgets.QTabWidget()
        self.card_view = QtWidgets.QTextBrowser()
        self.card_view.setOpenExternalLinks(False)
        self.card_view.setHtml(card_html(card))
        self.json_view = QtWidgets.QPlainTextEdit(json.dumps(card, indent=2))
        self.json_view.setReadOnly(True)
        self.tabs.addTab(self.card_view, "Card")
        self.tabs.addTab(self.json_view, "JSON")
        lay.addWidget(self.tabs)
        self.resize(900, 720)


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
        dlg = CardDialog(e.name, e.card or {"name": e.name, "note": "no model card (run not finished)"}, self)
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
