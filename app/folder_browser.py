"""The image-folder browser: every pair of a folder with its predicted landmarks, and - when the
folder has annotations - the ground truth and the per-image NME; sortable to find the failures.

The folder is read and predicted on a worker thread (:class:`FolderWorker`), which streams one
:class:`BrowserEntry` per pair to the window; the table fills while it runs. Selecting a row shows
the pair (both spectra) with predictions (coloured) and ground truth (green crosses). *Export…*
writes the whole folder as ``dmsl predict`` does (:func:`export_folder`, on a worker thread).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .palettes import LevelTracker, lut
from .views import SpectrumView, faces_phrase
from .workers import FunctionWorker, Worker, WorkerHandle, start_worker

THUMB_H = 56


@dataclass
class BrowserEntry:
    index: int
    name: str
    subject: str = ""
    variation: str = ""
    paths: dict = field(default_factory=dict)          # spectrum -> absolute path
    th_format: Optional[str] = None
    landmarks: dict = field(default_factory=dict)      # spectrum -> (68, 2) predicted
    boundary: dict = field(default_factory=dict)
    gt: dict = field(default_factory=dict)             # spectrum -> (68, 2) ground truth
    nme: dict = field(default_factory=dict)            # spectrum -> float
    chosen: str = "vis"
    faces: dict = field(default_factory=dict)          # spectrum -> [TrackedFace] (face detector on)
    primary_ids: dict = field(default_factory=dict)    # spectrum -> the id of the face in ``landmarks``
    tracked: bool = False                              # the face detector ran ("every face")
    thumb: Optional[np.ndarray] = None                 # HxWx3 uint8 (vis | th)
    error: str = ""
    dark: bool = False    # a black "lights off" visible image: its NME is left out, as in Evaluate

    def counted(self, spectrum: str) -> Optional[float]:
        """The NME of ``spectrum`` that the means and the sort use (None: none, or a black visible image)."""
        v = self.nme.get(spectrum)
        if v is None or not math.isfinite(v) or (spectrum == "vis" and self.dark):
            return None
        return float(v)

    @property
    def worst(self) -> float:
        vals = [v for v in (self.counted("vis"), self.counted("th")) if v is not None]
        return max(vals) if vals else float("nan")

    def n_faces(self, spectrum: str) -> Optional[int]:
        """Faces the detector found in ``spectrum`` (None: it did not run there)."""
        return len(self.faces[spectrum]) if self.tracked and spectrum in self.faces else None

    def no_face(self, spectrum: Optional[str] = None) -> bool:
        """The detector ran on ``spectrum`` (default: any of them) and found no face there."""
        if spectrum is None:
            return any(self.no_face(s) for s in self.faces)
        return self.n_faces(spectrum) == 0

    def faces_text(self) -> str:
        """The table's faces column: "3", "no face", "2 / 1" (visible / thermal)."""
        counts = [n for n in (self.n_faces("vis"), self.n_faces("th")) if n is not None]
        if not counts:
            return "—"
        if not any(counts):
            return "no face"
        return str(counts[0]) if len(set(counts)) == 1 else " / ".join(str(n) for n in counts)


def _faces_phrase(n: Optional[int]) -> str:
    return "" if n is None else faces_phrase(n)


def _thermal8(th: np.ndarray, celsius: Optional[np.ndarray]) -> np.ndarray:
    from dmsl_core.preprocess import display_uint8
    return display_uint8(celsius if celsius is not None else th)


def make_thumb(vis: Optional[np.ndarray], th: Optional[np.ndarray], celsius: Optional[np.ndarray],
               palette: str = "iron", height: int = THUMB_H) -> np.ndarray:
    parts = []
    if vis is not None:
        v = vis if vis.ndim == 3 else cv2.cvtColor(vis.astype(np.uint8), cv2.COLOR_GRAY2RGB)
        parts.append(v[:, :, :3].astype(np.uint8))
    if th is not None:
        parts.append(lut(palette)[_thermal8(th, celsius)])
    if not parts:
        return np.zeros((height, height, 3), np.uint8)
    out = [cv2.resize(p, (max(1, round(p.shape[1] * height / p.shape[0])), height), interpolation=cv2.INTER_AREA)
           for p in parts]
    return np.ascontiguousarray(np.hstack(out))


def _source_paths(src, i: int, root: Path) -> tuple[dict, Optional[str]]:
    """Absolute image paths of pair ``i`` of a folder source (for re-reading on selection)."""
    paths = getattr(src, "paths", None)
    if callable(paths):   # a plain image folder: each file in the spectrum its name or pixels say
        return {s: p for s, p in paths(i).items() if s in ("vis", "th")}, getattr(src, "th_format", None)
    recs = getattr(src, "records", None)
    if recs is not None and i < len(recs):
        r = recs[i]
        out = {}
        for s, rel in (("vis", r.vis), ("th", r.th)):
            p = r.abspath(rel)
            if p is not None:
                out[s] = str(p)
        return out, r.th_format
    pairs = getattr(src, "pairs", None)
    if pairs is not None and i < len(pairs):
        vp, tp = pairs[i]
        return ({k: str(v) for k, v in (("vis", vp), ("th", tp)) if v is not None},
                getattr(src, "th_format", None))
    return {}, None


def pair_name(path: str) -> str:
    """A pair's short name: the file stem without a spectrum tag (``0012_vis.png`` -> ``0012``)."""
    from dmsl_core.data.importers import strip_spectrum

    return strip_spectrum(Path(path).stem)


class FolderWorker(Worker):
    """Predicts every pair of a folder; ``progress`` carries ``(done, total, BrowserEntry)``."""

    def __init__(self, folder: str, model_spec, palette: str = "iron", faces: str = "every") -> None:
        super().__init__()
        self.folder, self.model_spec, self.palette, self.faces = folder, model_spec, palette, faces

    def work(self):
        from dmsl_core.data.folder import is_dark
        from dmsl_core.sources import open_source
        from dmsl_core.stream import StreamConfig, StreamProcessor

        from .live import face_detector_available, load_model

        model = load_model(self.model_spec)
        self.progress.emit(("model", model))
        # every face: the face detector on each image (a still: nothing carries from the one before)
        detector = "auto" if self.faces == "every" and face_detector_available(
            lambda text: self.progress.emit(("notice", text))) else None
        uri = self.folder if self.folder.startswith("folder:") else f"folder:{self.folder}"
        root = Path(uri[len("folder:"):].split("?")[0])
        with open_source(uri, realtime=False) as src:
            total = src.info.get("frames") or 0
            self.progress.emit(("info", dict(src.info)))
            proc = StreamProcessor(model.predictor, StreamConfig(mode="both", smoothing=False, reuse_box=False,
                                                                 detector=detector, still_images=True))
            done = 0
            for pair in src:
                self.check_stop()
                proc.reset()
                res = proc.process(pair)
                paths, th_format = _source_paths(src, pair.index, root)
                files = pair.meta.get("files", {})
                name = pair_name(files.get("vis") or files.get("th") or f"pair {pair.index}")
                gt = {}
                if pair.meta.get("landmarks_gt") is not None:
                    gt["vis"] = np.asarray(pair.meta["landmarks_gt"], float)
                gth = pair.meta.get("landmarks_gt_th")
                if gth is None and pair.registered and "vis" in gt:
                    gth = gt["vis"]
                if gth is not None:
                    gt["th"] = np.asarray(gth, float)
                gt = {s: v for s, v in gt.items() if (pair.vis if s == "vis" else pair.th) is not None}
                e = BrowserEntry(index=pair.index, name=name, subject=str(pair.meta.get("subject", "")),
                                 variation=str(pair.meta.get("variation", "")), paths=paths, th_format=th_format,
                                 landmarks={k: np.asarray(v) for k, v in res.landmarks.items()},
                                 boundary={k: np.asarray(v) for k, v in res.boundary.items()},
                                 gt=gt, nme=dict(res.nme), chosen=res.chosen,
                                 faces={k: list(v) for k, v in res.faces.items()}, primary_ids=dict(res.primary_ids),
                                 tracked=bool(res.tracked),
                                 thumb=make_thumb(pair.vis, pair.th, pair.th_celsius, self.palette),
                                 dark=pair.vis is not None and is_dark(pair.vis))
                done += 1
                self.progress.emit(("entry", done, total, e))
        return done


EXPORT_FILES = ("predictions.json", "predictions.csv", "pts", "overlays")


def export_folder(entries: list, out: str, model=None, model_spec=None, detector: str = "auto", worker=None) -> dict:
    """Every image of the browser's pairs through ``dmsl predict``'s implementation
    (:func:`dmsl_core.predictions.predict_files`: the face detector, then M_b / M_l per face; an image
    without a face says so): ``OUT/predictions.json``, ``OUT/predictions.csv``, ``OUT/pts/STEM_face<i>.pts``
    and ``OUT/overlays/STEM.png``. Runs on a worker thread (``worker.progress``: ``(done, total, entry)``)."""
    from dmsl_core.detection import get_detector
    from dmsl_core.predictions import predict_files

    from .live import load_model

    if model is None:
        model = load_model(model_spec)
    det = get_detector(detector) if detector != "none" else None
    paths, spectra, stems, used = [], {}, {}, set()
    for e in entries:
        for s, p in sorted(e.paths.items()):
            stem = Path(p).stem
            if stem in used:                       # vis/0001.png and th/0001.png: one name each
                stem = f"{stem}_{s}"
            if stem in used:
                stem = f"{stem}_{e.index}"
            used.add(stem)
            paths.append(p)
            spectra[p], stems[p] = s, stem
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    done = [0]

    def on_entry(entry: dict) -> None:
        done[0] += 1
        if worker is not None:
            worker.progress.emit((done[0], len(paths), entry))

    res = predict_files(model.predictor, paths, detector=det, spectra=spectra, stems=stems,
                        pts_dir=outp / "pts", overlay_dir=outp / "overlays", json_path=outp / "predictions.json",
                        csv_path=outp / "predictions.csv", on_entry=on_entry,
                        check_stop=worker.check_stop if worker is not None else None)
    res["out"] = str(outp)
    res["no_face"] = [r["image"] for r in res["results"] if not r.get("error") and not r["faces"]]
    return res


class _Item(QtWidgets.QTableWidgetItem):
    """A table item that sorts by a number (NaN last) and shows formatted text."""

    def __init__(self, text: str, key) -> None:
        super().__init__(text)
        self.key = key
        self.setFlags(self.flags() & ~QtCore.Qt.ItemIsEditable)

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:  # type: ignore[override]
        a, b = self.key, getattr(other, "key", None)
        if isinstance(a, float) or isinstance(b, float):
            # pairs without an NME (no annotation) go last in either direction
            t = self.tableWidget()
            desc = t is not None and t.horizontalHeader().sortIndicatorOrder() == QtCore.Qt.DescendingOrder
            missing = -math.inf if desc else math.inf
            fa = a if isinstance(a, float) and math.isfinite(a) else missing
            fb = b if isinstance(b, float) and math.isfinite(b) else missing
            return fa < fb
        if isinstance(a, tuple) and isinstance(b, tuple):
            return a < b
        return str(a) < str(b)


COLUMNS = ["", "pair", "subject · var.", "NME vis", "NME th", "worst", "faces"]
NAME_COL, WORST_COL, FACES_COL = 1, 5, 6


class FolderBrowser(QtWidgets.QWidget):
    """Folder of pairs: a sortable table with thumbnails and NME, and the selected pair shown large."""

    playRequested = QtCore.Signal(str)   # "play this folder as a stream in the live view"
    message = QtCore.Signal(str, bool)   # (text, is_error)
    openRequested = QtCore.Signal()

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.entries: list[BrowserEntry] = []
        self.folder: str = ""
        self.handle: Optional[WorkerHandle] = None
        self.palette = "iron"
        self.faces = "every"             # AppSettings.faces: "every" (face detector) or "one" (M_b)
        self.model_spec = None
        self.done = False
        self.n_dark = 0
        self._levels = LevelTracker(alpha=1.0)

        top = QtWidgets.QHBoxLayout()
        self.open_btn = QtWidgets.QPushButton("Open folder…")
        self.open_btn.clicked.connect(self.openRequested)
        self.path_label = QtWidgets.QLabel("No folder open - open one with the button or File > Open > Image folder")
        self.path_label.setObjectName("Dim")
        self.play_btn = QtWidgets.QPushButton("Play as stream")
        self.play_btn.setEnabled(False)
        self.play_btn.clicked.connect(lambda: self.folder and self.playRequested.emit(f"folder:{self.folder}"))
        self.export_btn = QtWidgets.QPushButton("Export…")
        self.export_btn.setToolTip("Every image of the folder as dmsl predict writes it: predictions.json, "
                                   "predictions.csv, a .pts per face and an overlay image per file")
        self.export_btn.setEnabled(False)
        self.export_btn.clicked.connect(self.export_dialog)
        self.export_handle: Optional[WorkerHandle] = None
        self.export_result: Optional[dict] = None
        self.export_error = ""
        self._model = None
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(self.stop)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        top.addWidget(self.open_btn)
        top.addWidget(self.path_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.stop_btn)
        top.addWidget(self.export_btn)
        top.addWidget(self.play_btn)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_H + 6)
        self.table.setIconSize(QtCore.QSize(int(THUMB_H * 2.5), THUMB_H))
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QtWidgets.QHeaderView.Fixed)
        self.table.setColumnWidth(0, int(THUMB_H * 2.5) + 12)
        hh.setSectionResizeMode(NAME_COL, QtWidgets.QHeaderView.Stretch)
        for c, w in ((2, 112), (3, 66), (4, 66), (5, 66), (6, 62)):
            hh.setSectionResizeMode(c, QtWidgets.QHeaderView.Interactive)
            self.table.setColumnWidth(c, w)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.setMinimumWidth(420)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(QtCore.Qt.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)

        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        views = QtWidgets.QHBoxLayout()
        self.vis_view = SpectrumView("Visible")
        self.th_view = SpectrumView("Thermal")
        for v in (self.vis_view, self.th_view):
            v.options.temperatures = False
            v.show_message("select a pair")
            views.addWidget(v)
        rl.addLayout(views, 1)
        self.detail = QtWidgets.QLabel("")
        self.detail.setObjectName("Reason")
        self.detail.setWordWrap(True)
        legend = QtWidgets.QLabel("<span style='color:#4fc3f7'>●</span> predicted &nbsp; "
                                  "<span style='color:#4cd964'>✕</span> ground truth")
        legend.setObjectName("Dim")
        rl.addWidget(self.detail)
        rl.addWidget(legend)
        self.summary = QtWidgets.QLabel("")
        self.summary.setObjectName("Value")

        split = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addWidget(self.summary)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 700])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(top)
        lay.addWidget(split, 1)

    # ---- loading ------------------------------------------------------------------------------
    def open_folder(self, folder: str, model_spec) -> None:
        self.stop()
        self.folder = folder[len("folder:"):] if folder.startswith("folder:") else folder
        self.model_spec = model_spec
        self.entries.clear()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        self.done = False
        self.path_label.setText(self.folder)
        self.path_label.setToolTip(self.folder)
        self.progress.setRange(0, 0)
        self.summary.setText("")
        self.detail.setText("")
        for v in (self.vis_view, self.th_view):
            v.show_message("reading the folder…")
        self.play_btn.setEnabled(True)
        self.stop_btn.setEnabled(True)
        self.export_btn.setEnabled(False)
        self._model = None
        w = FolderWorker(self.folder, model_spec, self.palette, self.faces)
        self.handle = start_worker(w, "folder-browser", collect=True, on_progress=self._progress, on_error=self._error,
                                   on_finished=self._finished, parent=self)

    def stop(self, timeout_ms: int = 3000) -> bool:
        ok = True
        for name in ("handle", "export_handle"):
            h = getattr(self, name)
            setattr(self, name, None)
            if h is not None:
                ok = h.stop(timeout_ms) and ok
        return ok

    @property
    def running(self) -> bool:
        return any(h is not None and h.running for h in (self.handle, self.export_handle))

    # ---- exporting ---------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the folder's predictions into",
                                                       str(Path(self.folder).parent) if self.folder else "")
        if d:
            self.export(d)

    def export(self, out: str, detector: str = "auto") -> Optional[WorkerHandle]:
        """Export every image's predictions into ``out`` on a worker thread (:func:`export_folder`)."""
        if not self.entries or (self.export_handle is not None and self.export_handle.running):
            return None
        self.export_result, self.export_error = None, ""
        self.export_btn.setEnabled(False)
        self.progress.setRange(0, max(1, sum(len(e.paths) for e in self.entries)))
        self.progress.setValue(0)

        def progress(p) -> None:
            self.progress.setValue(p[0])

        def done(res: dict) -> None:
            self.export_result = res
            n_none = len(res["no_face"])
            self.message.emit(f"Exported {res['n_images']} images ({res['n_faces']} face{'s' if res['n_faces'] != 1 else ''}"
                              + (f"; no face in {n_none}: " + ", ".join(Path(p).name for p in res["no_face"][:5])
                                 + ("…" if n_none > 5 else "") if n_none else "")
                              + (f"; {res['failed']} could not be read" if res["failed"] else "")
                              + f") to {res['out']}: predictions.json, predictions.csv, pts/, overlays/", False)

        def error(text: str) -> None:
            self.export_error = text
            self.message.emit(f"Export failed: {text}", True)

        def finished() -> None:
            self.export_btn.setEnabled(bool(self.entries) and self.done)

        self.export_handle = start_worker(
            FunctionWorker(export_folder, list(self.entries), out, self._model, self.model_spec, detector,
                           pass_worker=True), "folder-export", on_result=done, on_error=error,
            on_progress=progress, on_finished=finished, parent=self, collect=True)
        return self.export_handle

    def _progress(self, msg) -> None:
        kind = msg[0]
        if kind == "model":
            self._model = msg[1]
            if msg[1].note:
                self.message.emit(msg[1].note, False)
        elif kind == "notice":
            self.message.emit(msg[1], False)
        elif kind == "info":
            total = msg[1].get("frames") or 0
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(0)
        elif kind == "entry":
            _, done, total, e = msg
            self.entries.append(e)
            self._add_row(e)
            self.progress.setValue(done)
            if len(self.entries) == 1:
                self.table.selectRow(0)

    def _add_row(self, e: BrowserEntry) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        first = _Item("", e.index)
        first.setData(QtCore.Qt.UserRole, len(self.entries) - 1)
        if e.thumb is not None:
            t = e.thumb
            img = QtGui.QImage(t.data, t.shape[1], t.shape[0], t.strides[0], QtGui.QImage.Format_RGB888).copy()
            first.setData(QtCore.Qt.DecorationRole, QtGui.QPixmap.fromImage(img))
        tip = "\n".join(f"{k}: {v}" for k, v in e.paths.items())
        first.setToolTip(tip)
        self.table.setItem(r, 0, first)
        name = _Item(e.name, e.name)
        name.setToolTip(tip)
        self.table.setItem(r, NAME_COL, name)
        sv = " · ".join(x for x in (e.subject, e.variation) if x)
        self.table.setItem(r, 2, _Item(sv, (e.subject, e.variation)))
        for c, s in ((3, "vis"), (4, "th")):
            v = e.nme.get(s, float("nan"))
            if s == "vis" and e.dark:
                it = _Item("dark", float("nan"))
                it.setToolTip("a black \"lights off\" visible image: left out of the mean and the sort, as in the "
                              "Evaluate tab" + (f" (NME {v:.4f})" if math.isfinite(v) else ""))
                it.setForeground(QtGui.QBrush(QtGui.QColor("#8a93a0")))
                self.table.setItem(r, c, it)
                continue
            self.table.setItem(r, c, _Item("—" if not math.isfinite(v) else f"{v:.4f}", float(v)))
        w = e.worst
        it = _Item("—" if not math.isfinite(w) else f"{w:.4f}", float(w))
        if math.isfinite(w) and w > 0.10:
            it.setForeground(QtGui.QBrush(QtGui.QColor("#ff6b6b")))
        self.table.setItem(r, WORST_COL, it)
        counts = [n for n in (e.n_faces("vis"), e.n_faces("th")) if n is not None]
        it = _Item(e.faces_text(), float(max(counts)) if counts else float("nan"))
        it.setToolTip(", ".join(f"{label}: {_faces_phrase(e.n_faces(s))}" for s, label in
                                (("vis", "visible"), ("th", "thermal")) if e.n_faces(s) is not None)
                      or "one face per image (M_b): Settings > Faces for the face detector")
        if e.no_face():
            it.setForeground(QtGui.QBrush(QtGui.QColor("#ffb74d")))
        self.table.setItem(r, FACES_COL, it)

    def _error(self, text: str) -> None:
        self.message.emit(f"Folder browser: {text}", True)
        for v in (self.vis_view, self.th_view):
            if not self.entries:
                v.show_message("could not read this folder")

    def _finished(self) -> None:
        self.done = True
        self.stop_btn.setEnabled(False)
        self.export_btn.setEnabled(bool(self.entries))
        self.table.setSortingEnabled(True)
        n = len(self.entries)
        self.progress.setRange(0, max(1, n))
        self.progress.setValue(n)
        parts = [f"{n} pair{'s' if n != 1 else ''}"]
        for s, label in (("vis", "visible"), ("th", "thermal")):
            vals = [v for v in (e.counted(s) for e in self.entries) if v is not None]
            if vals:
                parts.append(f"mean NME {label} {np.mean(vals):.4f} ({len(vals)})")
        n_none = sum(1 for e in self.entries if e.no_face())
        if n_none:
            parts.append(f"no face in {n_none} pair{'s' if n_none != 1 else ''}")
        n_dark = sum(1 for e in self.entries if e.dark)
        if n_dark:
            parts.append(f"{n_dark} black visible image{'s' if n_dark != 1 else ''} left out (as in Evaluate)")
        self.n_dark = n_dark
        if not any(e.gt for e in self.entries) and n:
            parts.append("no annotations: predictions only")
        self.summary.setText(" · ".join(parts))
        if n and not self.table.selectedItems():
            self.table.selectRow(0)

    def sort_by_nme(self, descending: bool = True) -> None:
        self.table.setSortingEnabled(True)
        self.table.sortItems(WORST_COL, QtCore.Qt.DescendingOrder if descending else QtCore.Qt.AscendingOrder)
        if self.table.rowCount():
            self.table.selectRow(0)

    # ---- showing a pair ----------------------------------------------------------------------------
    def current_entry(self) -> Optional[BrowserEntry]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        k = item.data(QtCore.Qt.UserRole) if item is not None else None
        return self.entries[k] if k is not None and 0 <= k < len(self.entries) else None

    def _selected(self) -> None:
        e = self.current_entry()
        if e is not None:
            self.show_entry(e)

    def set_palette(self, name: str) -> None:
        self.palette = name
        e = self.current_entry()
        if e is not None:
            self.show_entry(e)

    def show_entry(self, e: BrowserEntry) -> None:
        from dmsl_core.data.folder import thermal_to_celsius
        from dmsl_core.data.imageio import read_image
        from dmsl_core.sources.video import auto_th_format

        present = {s for en in self.entries for s in en.paths}
        for s, view in (("vis", self.vis_view), ("th", self.th_view)):
            # a folder of one spectrum: the other view would only say "no ... image" - leave it out
            view.setVisible(not present or s in present)
            path = e.paths.get(s)
            if not path:
                view.show_message(f"no {'visible' if s == 'vis' else 'thermal'} image")
                continue
            try:
                img = read_image(path)
            except Exception as exc:  # noqa: BLE001 - a file removed since: say so in the view
                view.show_message(f"cannot read {os.path.basename(path)}")
                self.message.emit(f"{path}: {exc}", True)
                continue
            if s == "vis":
                if img.ndim == 2:
                    img = cv2.cvtColor(img if img.dtype == np.uint8 else (img >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
                view.set_image(img[:, :, :3])
                view.value_at = lambda x, y, im=img: "RGB " + " ".join(str(int(v)) for v in im[y, x, :3])
            else:
                if img.ndim == 3:
                    img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                c = thermal_to_celsius(img, e.th_format or auto_th_format(img, None))
                disp = c if c is not None else img.astype(np.float32)
                self._levels.reset()
                view.set_image(disp, levels=self._levels.update(disp), lut=lut(self.palette))
                view.value_at = (lambda x, y, cc=c: f"{cc[y, x]:.2f} °C") if c is not None else (
                    lambda x, y, im=img: f"value {im[y, x]}")
            view.set_landmarks(e.landmarks.get(s), e.boundary.get(s))
            view.set_faces(e.faces.get(s, []) if e.tracked else None, e.primary_ids.get(s))
            view.set_note("no face" if e.no_face(s) else "")
            view.set_ground_truth(e.gt.get(s))
            v = e.nme.get(s)
            view.set_trusted(s == e.chosen, "selector's choice" if s == e.chosen else "")
            info = (f"NME {v:.4f}" if v is not None and math.isfinite(v) else
                    ("no annotation" if s not in e.gt else ""))
            n = e.n_faces(s)
            view.set_info(" · ".join(x for x in (_faces_phrase(n) if n is not None else "", info) if x))
        bits = [f"<b>{e.name}</b>"]
        if e.subject or e.variation:
            bits.append(f"subject {e.subject or '?'}, variation {e.variation or '?'}")
        if e.tracked:
            bits.append(", ".join(f"{_faces_phrase(e.n_faces(s))} in the {'visible' if s == 'vis' else 'thermal'} image"
                                  for s in ("vis", "th") if e.n_faces(s) is not None))
        nmes = [f"{'visible' if s == 'vis' else 'thermal'} NME {v:.4f}" for s, v in e.nme.items() if math.isfinite(v)]
        bits.append(", ".join(nmes) if nmes else ("no ground truth" if not e.gt else "no face found"))
        if e.dark:
            bits.append("black visible image: not in the mean")
        self.detail.setText(" · ".join(bits))
