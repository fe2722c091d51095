"""Help > About: version, the model card, the compute device; Help > Keyboard shortcuts."""
from __future__ import annotations

import html
import json
import platform
from typing import Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core import __version__

SHORTCUTS = [
    ("Space", "play / pause"),
    ("Right or .", "step one frame (pauses)"),
    ("Home", "back to the first frame (files)"),
    ("A / V / T / B", "spectrum mode: auto / visible / thermal / both"),
    ("P", "next thermal palette"),
    ("Ctrl+R", "start / stop recording"),
    ("Ctrl+E", "export the current frame as PNG"),
    ("Ctrl+O", "open a source"),
    ("Ctrl+W", "close the source (the views are cleared)"),
    ("Ctrl+Shift+O", "open an image folder in the folder browser"),
    ("Ctrl+L", "focus the source URI box"),
    ("Ctrl+,", "settings"),
    ("0", "reset the zoom of both views"),
    ("F1", "about"),
    ("N / P (PgDown / PgUp)", "annotation view: next / previous pair"),
    ("Ctrl+Z, Ctrl+Shift+Z", "annotation view: undo, redo"),
    ("T", "annotation view: show both images / visible / thermal"),
    ("A or Return", "annotation view: accept the pair (checked) and go on"),
    ("G, + / -", "annotation view: next group, scale the group"),
    ("F", "annotation view: fit the images"),
]


def training_bits(tr: dict, data: bool = True) -> list[str]:
    """A card's ``training`` block in words: images, spectra, stages, fold (and the data folder)."""
    bits = [f"{tr[k]} {label}" for k, label in (("n_train_images", "training images"),
                                                 ("n_val_images", "validation images")) if k in tr]
    if tr.get("spectra"):
        bits.append("spectra " + "+".join(map(str, tr["spectra"])))
    if tr.get("stages"):
        bits.append("stages " + ",".join(map(str, tr["stages"])))
    if tr.get("fold") is not None:
        bits.append(f"fold {tr['fold']}")
    if data and tr.get("data"):
        bits.append(f"data {tr['data']}")
    return bits


def card_rows(card: dict) -> list[tuple[str, str]]:
    """The model card as (field, text) rows: the summary first, then every other field compactly."""
    from dmsl_core.runs import card_nme

    rows: list[tuple[str, str]] = []
    nme, src, note = card_nme(card)
    if nme:   # the card's one figure (the Models tab shows the same), with what it was measured on
        vals = ", ".join(f"{'TH' if k == 'th' else 'VIS'} {nme[k]:.4f}" for k in ("th", "vis")
                         if isinstance(nme.get(k), (int, float)))
        rows.append(("held-out NME" if src == "heldout" else f"NME ({src})", f"{vals} - {note}"))
    cfg = card.get("config") or {}
    if isinstance(cfg, dict) and cfg:
        widths = "-".join(str(w) for w in cfg.get("widths", []))
        rows.append(("architecture", f"{cfg.get('name', '?')}: U-Net {widths}, hidden {cfg.get('hidden', '?')}, "
                                     f"input {cfg.get('input_size', '?')} px"))
    tr = card.get("training") or {}
    if isinstance(tr, dict) and tr:
        rows.append(("training", ", ".join(training_bits(tr)) or "-"))
    for k, v in card.items():
        if k in ("config", "training"):
            continue
        if k in ("nme_test", "nme_val") and src == "heldout":
            # not the model's figure: the training run's own end-of-training pass, before shipping
            k = f"{k} (end of training, not the shipped settings)"
        if isinstance(v, dict) and any(isinstance(x, (int, float)) for x in v.values()):
            # e.g. nme_val: the numbers only (per-variation tables stay in the JSON file)
            text = ", ".join(f"{kk} {x:.4g}" if isinstance(x, float) else f"{kk} {x}"
                             for kk, x in v.items() if isinstance(x, (int, float)) and not isinstance(x, bool))
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
        rows.append((k, text if len(text) <= 300 else text[:300] + "…"))
    return rows


def about_html(model=None) -> str:
    try:
        import torch
        torch_v = torch.__version__
    except Exception:  # noqa: BLE001 - the About box shows "?" for a broken torch  # pragma: no cover
        torch_v = "?"
    from PySide6 import __version__ as pyside_v
    import pyqtgraph
    rows = [("DMSL Studio", __version__), ("Python", platform.python_version()), ("PyTorch", torch_v),
            ("PySide6", pyside_v), ("pyqtgraph", pyqtgraph.__version__)]
    out = ["<h2>DMSL Studio %s</h2>" % html.escape(__version__),
           "<p>Facial landmarks on visible and thermal images with DMSL (Deep Multi-Spectral Learning: "
           "Keong, Dong, Jin, Mallat, Dugelay): a face-boundary model M<sub>b</sub> and a 68-point landmark "
           "model M<sub>l</sub>, one model for both spectra.</p>"]
    if model is not None:
        out.append("<h3>Model</h3><table>")
        out.append(f"<tr><td><b>name</b></td><td>{html.escape(model.name)}</td></tr>")
        out.append(f"<tr><td><b>device</b></td><td>{html.escape(model.device)}</td></tr>")
        out.append(f"<tr><td><b>weights</b></td><td>{html.escape(model.source or '-')}</td></tr>")
        if model.note:
            out.append(f"<tr><td><b>note</b></td><td style='color:#ffb74d'>{html.escape(model.note)}</td></tr>")
        out.append("</table>")
        card = dict(model.card or {})
        if card:
            out.append("<h3>Model card</h3><table>")
            for key, value in card_rows(card):
                out.append(f"<tr><td><b>{html.escape(key)}</b></td><td>{html.escape(value)}</td></tr>")
            out.append("</table>")
    else:
        out.append("<p><i>No model loaded yet.</i></p>")
    out.append("<h3>Software</h3><table>")
    out += [f"<tr><td>{html.escape(a)}</td><td>{html.escape(str(b))}</td></tr>" for a, b in rows]
    out.append("</table>")
    return "".join(out)


class AboutDialog(QtWidgets.QDialog):
    def __init__(self, model=None, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About DMSL Studio")
        self.resize(560, 520)
        self.text = QtWidgets.QTextBrowser()
        self.text.setOpenExternalLinks(True)
        self.text.setHtml(about_html(model))
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(buttons)


class ShortcutsDialog(QtWidgets.QDialog):
    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QtWidgets.QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(["keys", "action"])
        table.verticalHeader().setVisible(False)
        for r, (k, a) in enumerate(SHORTCUTS):
            for c, v in enumerate((k, a)):
                it = QtWidgets.QTableWidgetItem(v)
                it.setFlags(it.flags() & ~QtCore.Qt.ItemIsEditable)
                table.setItem(r, c, it)
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeColumnsToContents()
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(table)
        self.resize(440, 420)
