"""The annotation view: correct the landmarks of a dataset's visible/thermal pairs by hand.

The two images of a pair side by side (each a :class:`PairCanvas`, a ``QGraphicsView``), the 68
points on both. Dragging a point on either image moves it on both: the same coordinates for a
registered pair, through the rig's homography (``calibration.json``) otherwise. With a group
chosen (an eye, the mouth, ...) dragging one of its points moves the whole group, and ``+``/``-``
scale it about its centre. The wheel zooms around the cursor, dragging the background pans,
``F`` fits the image again.

Every change is one undo step (``QUndoStack``; the stack belongs to the pair shown) and is saved
at once through :class:`dmsl_core.annotate.AnnotationSet`: a journal first, then the ``.pts``
and ``.origin.json`` files (each atomically, an ``.orig.pts`` kept of any annotation replaced the
first time), then the journal is removed; if the app dies in between, the next open re-applies
the journal. A save that fails (disk full, read-only folder) is reported in the view; the edit
stays in memory and the next change saves again. Moved points get the origin ``hand``; *Accept*
marks the pair as checked by a person.

The dataset is read (manifest, sidecars, the disagreement order, a pending journal) on a worker
thread; a pair's two images and its ~2 KB of annotation are read and written on the Qt thread
(milliseconds).

Keys: N / PgDown next pair, P / PgUp previous, Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo, T cycles
the spectra shown (both, visible, thermal), A / Return accepts the pair (checked) and moves on,
G cycles the group, + / - scale the group, F fits the images.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from dmsl_core.annotate import AnnotationSet, PairAnnotation, disagreement_order
from dmsl_core.landmarks import CONTOURS, COARSE_GROUPS, GROUPS, N_POINTS

from .palettes import lut
from .views import GROUP_COLOURS
from .workers import FunctionWorker, WorkerHandle, start_worker

ORIGIN_COLOURS = {"dlib": "#4fc3f7", "model": "#f5a623", "transferred": "#b0bec5", "neighbour": "#ba68c8",
                  "hand": "#4cd964", "file": "#ffffff"}
PICK_RADIUS_PX = 9.0
GROUP_CHOICES: dict[str, Optional[range]] = {"single point": None, **COARSE_GROUPS,
                                             **{k: v for k, v in GROUPS.items() if k not in COARSE_GROUPS}}
SPECTRA_CYCLE = ("both", "vis", "th")


def _group_colour(i: int) -> str:
    for name, rng in COARSE_GROUPS.items():
        if i in rng:
            return GROUP_COLOURS[name]
    return "#ffffff"


def to_rgb8(img: np.ndarray, spectrum: str, th_format: str = "u8", palette: str = "iron") -> np.ndarray:
    """HxWx3 uint8 for display: visible as it is, thermal stretched (1st-99.5th percentile) through a palette."""
    from dmsl_core.data.folder import thermal_to_celsius
    a = np.asarray(img)
    if spectrum == "vis":
        if a.ndim == 2:
            a8 = a if a.dtype == np.uint8 else np.clip(a / max(1.0, float(a.max())) * 255, 0, 255).astype(np.uint8)
            return cv2.cvtColor(a8, cv2.COLOR_GRAY2RGB)
        if a.dtype != np.uint8:
            a = np.clip(a / max(1.0, float(a.max())) * 255, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(a[:, :, :3])
    if a.ndim == 3:
        a = a.astype(np.float32).mean(axis=2)
    c = thermal_to_celsius(a, th_format)
    f = np.asarray(c if c is not None else a, dtype=np.float32)
    from dmsl_core.preprocess import display_uint8
    return np.ascontiguousarray(lut(palette)[display_uint8(f)])


def _pixmap(rgb: np.ndarray) -> QtGui.QPixmap:
    h, w = rgb.shape[:2]
    img = QtGui.QImage(rgb.data, w, h, rgb.strides[0], QtGui.QImage.Format_RGB888).copy()
    return QtGui.QPixmap.fromImage(img)


# ---------------------------------------------------------------------------------------------
class LandmarkOverlay(QtWidgets.QGraphicsItem):
    """The 68 points (filled by origin) and their contours (coloured by group), drawn at a constant
    screen size whatever the zoom; the chosen group is ringed."""

    def __init__(self) -> None:
        super().__init__()
        self.pts: Optional[np.ndarray] = None
        self.origins: list = []
        self.group: Optional[range] = None
        self.active: Optional[int] = None
        self.rect = QtCore.QRectF(0, 0, 1, 1)
        self.setZValue(10)

    def set_rect(self, rect: QtCore.QRectF) -> None:
        self.prepareGeometryChange()
        self.rect = QtCore.QRectF(rect).adjusted(-50, -50, 50, 50)

    def set_points(self, pts: Optional[np.ndarray], origins: Optional[list] = None) -> None:
        self.pts = None if pts is None else np.asarray(pts, float)
        self.origins = list(origins or [])
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt name
        return self.rect

    def paint(self, p: QtGui.QPainter, option, widget=None) -> None:  # noqa: D401
        if self.pts is None:
            return
        s = max(1e-6, p.worldTransform().m11())
        pts = self.pts
        p.setRenderHint(QtGui.QPainter.Antialiasing)
        for seq, closed in CONTOURS:
            colour = QtGui.QColor(_group_colour(seq[0]))
            colour.setAlpha(190)
            pen = QtGui.QPen(colour, 1.3)
            pen.setCosmetic(True)
            p.setPen(pen)
            idx = list(seq) + ([seq[0]] if closed else [])
            poly = QtGui.QPolygonF([QtCore.QPointF(*pts[i]) for i in idx if np.isfinite(pts[i]).all()])
            p.drawPolyline(poly)
        r = 3.6 / s
        edge = QtGui.QPen(QtGui.QColor(0, 0, 0, 200), 1.0)
        edge.setCosmetic(True)
        ring = QtGui.QPen(QtGui.QColor("#ffeb3b"), 1.6)
        ring.setCosmetic(True)
        for i in range(len(pts)):
            if not np.isfinite(pts[i]).all():
                continue
            o = self.origins[i] if i < len(self.origins) else "file"
            p.setBrush(QtGui.QColor(ORIGIN_COLOURS.get(o, "#ffffff")))
            p.setPen(edge)
            c = QtCore.QPointF(*pts[i])
            p.drawEllipse(c, r, r)
            if (self.group is not None and i in self.group) or i == self.active:
                p.setBrush(QtCore.Qt.NoBrush)
                p.setPen(ring)
                p.drawEllipse(c, r * 1.6, r * 1.6)


class PairCanvas(QtWidgets.QGraphicsView):
    """One image of the pair with its points; emits drags in image pixels."""

    dragging = QtCore.Signal(str, object, object)          # spectrum, indices, new points (live preview)
    dragged = QtCore.Signal(str, object, object, object)   # spectrum, indices, old points, new points

    def __init__(self, spectrum: str, title: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.spectrum = spectrum
        self.title = title
        self.setScene(QtWidgets.QGraphicsScene(self))
        self.setBackgroundBrush(QtGui.QColor("#15171a"))
        self.setRenderHints(QtGui.QPainter.Antialiasing | QtGui.QPainter.SmoothPixmapTransform)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QtWidgets.QGraphicsView.AnchorViewCenter)
        self.setDragMode(QtWidgets.QGraphicsView.NoDrag)
        self.setMouseTracking(True)
        self.setMinimumSize(240, 200)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)   # pan by dragging; the bars still scroll
        self.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.pixmap_item = QtWidgets.QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(QtCore.Qt.SmoothTransformation)
        self.scene().addItem(self.pixmap_item)
        self.overlay = LandmarkOverlay()
        self.scene().addItem(self.overlay)
        self.message = self.scene().addSimpleText("")
        self.message.setBrush(QtGui.QColor("#8a9099"))
        self.message.setZValue(20)
        self.group: Optional[range] = None
        self.editable = True
        self._drag: Optional[dict] = None
        self._pan: Optional[QtCore.QPoint] = None
        self._user_zoom = False

    # ---- content ---------------------------------------------------------------------------------
    def set_image(self, rgb: Optional[np.ndarray]) -> None:
        if rgb is None:
            self.pixmap_item.setPixmap(QtGui.QPixmap())
            return
        pm = _pixmap(rgb)
        size_changed = self.pixmap_item.pixmap().size() != pm.size()
        self.pixmap_item.setPixmap(pm)
        rect = QtCore.QRectF(0, 0, pm.width(), pm.height())
        self.scene().setSceneRect(rect)
        self.overlay.set_rect(rect)
        if size_changed or not self._user_zoom:
            self.fit()

    def set_points(self, pts: Optional[np.ndarray], origins: Optional[list] = None) -> None:
        self.overlay.set_points(pts, origins)

    def set_group(self, group: Optional[range]) -> None:
        self.group = group
        self.overlay.group = group
        self.overlay.update()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        r = self.scene().sceneRect()
        b = self.message.boundingRect()
        self.message.setPos(r.center().x() - b.width() / 2, r.center().y() - b.height() / 2)

    def fit(self) -> None:
        r = self.scene().sceneRect()
        if r.width() > 0:
            self.fitInView(r, QtCore.Qt.KeepAspectRatio)
        self._user_zoom = False

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if not self._user_zoom:
            self.fit()

    # ---- picking / dragging ---------------------------------------------------------------------
    def view_pos_of(self, i: int) -> QtCore.QPoint:
        """Viewport pixel of point ``i`` (tests use it to aim a real mouse drag)."""
        return self.mapFromScene(QtCore.QPointF(*self.overlay.pts[i]))

    def pick(self, view_pos: QtCore.QPointF) -> Optional[int]:
        pts = self.overlay.pts
        if pts is None:
            return None
        sp = self.mapToScene(view_pos.toPoint())
        d = np.hypot(pts[:, 0] - sp.x(), pts[:, 1] - sp.y()) * self.zoom
        d[~np.isfinite(d)] = np.inf
        i = int(np.argmin(d))
        return i if d[i] <= PICK_RADIUS_PX else None

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        pos = ev.position()
        if ev.button() == QtCore.Qt.LeftButton:
            i = self.pick(pos) if self.editable else None
            if i is not None:
                idx = list(self.group) if (self.group is not None and i in self.group) else [i]
                sp = self.mapToScene(pos.toPoint())
                self._drag = {"idx": idx, "start": np.array([sp.x(), sp.y()]),
                              "old": self.overlay.pts[idx].copy(), "moved": False}
                self.overlay.active = i
                self.overlay.update()
                ev.accept()
                return
        if ev.button() in (QtCore.Qt.LeftButton, QtCore.Qt.MiddleButton, QtCore.Qt.RightButton):
            self._pan = pos.toPoint()
            self.setCursor(QtCore.Qt.ClosedHandCursor)
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        pos = ev.position().toPoint()
        if self._drag is not None:
            sp = self.mapToScene(pos)
            delta = np.array([sp.x(), sp.y()]) - self._drag["start"]
            new = self._drag["old"] + delta
            self._drag["moved"] = self._drag["moved"] or bool(np.abs(delta).max() > 0)
            self._drag["new"] = new
            self.dragging.emit(self.spectrum, self._drag["idx"], new)
            ev.accept()
            return
        if self._pan is not None:
            d = pos - self._pan
            self._pan = pos
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - d.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - d.y())
            ev.accept()
            return
        if self.editable and self.pick(ev.position()) is not None:
            self.setCursor(QtCore.Qt.PointingHandCursor)
        else:
            self.unsetCursor()
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            d, self._drag = self._drag, None
            self.overlay.active = None
            self.overlay.update()
            if d["moved"]:
                self.dragged.emit(self.spectrum, d["idx"], d["old"], d["new"])
            ev.accept()
            return
        if self._pan is not None:
            self._pan = None
            self.unsetCursor()
            ev.accept()
            return
        super().mouseReleaseEvent(ev)

    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:  # noqa: N802
        steps = ev.angleDelta().y() / 120.0
        if not steps:
            return
        factor = 1.25 ** steps
        z = self.zoom * factor
        fit_zoom = min(self.viewport().width() / max(1.0, self.scene().sceneRect().width()),
                       self.viewport().height() / max(1.0, self.scene().sceneRect().height()))
        if z < fit_zoom * 0.98:
            self.fit()
        elif z <= 40:
            self.scale(factor, factor)
            self._user_zoom = True
        ev.accept()


# ---------------------------------------------------------------------------------------------
class SnapshotCommand(QtGui.QUndoCommand):
    """One edit of a pair: the annotation before and after (68 points x 2 spectra: tiny)."""

    def __init__(self, view: "AnnotateView", index: int, before: PairAnnotation, after: PairAnnotation,
                 text: str) -> None:
        super().__init__(text)
        self.view, self.index, self.before, self.after = view, index, before.copy(), after.copy()

    def redo(self) -> None:
        self.view._set_annotation(self.index, self.after.copy())

    def undo(self) -> None:
        self.view._set_annotation(self.index, self.before.copy())


def _load_dataset(folder: str, calibration=None) -> dict:
    aset = AnnotationSet(folder, calibration)
    recovered = aset.recover()
    return {"aset": aset, "recovered": recovered, "disagreement": disagreement_order(aset)}


class AnnotateView(QtWidgets.QWidget):
    """Hand correction of a dataset's annotations (see the module docstring)."""

    message = QtCore.Signal(str, bool)     # (text, is_error)
    opened = QtCore.Signal(str)
    saved = QtCore.Signal(str)             # the .pts path written

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.aset: Optional[AnnotationSet] = None
        self.folder = ""
        self.order: list[int] = []
        self.manifest_order: list[int] = []
        self.disagreement_order: list[int] = []
        self.pos = 0
        self.index: Optional[int] = None
        self.ann: Optional[PairAnnotation] = None
        self.handle: Optional[WorkerHandle] = None
        self.palette = "iron"
        self.spectra = "both"
        self.last_error = ""
        self.save_count = 0
        self.undo_stack = QtGui.QUndoStack(self)
        self._build()
        self._shortcuts()
        self._update_enabled()

    # ---- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        bar = QtWidgets.QHBoxLayout()
        self.open_btn = QtWidgets.QPushButton("Open dataset…")
        self.open_btn.clicked.connect(self.open_dialog)
        self.prev_btn = QtWidgets.QToolButton()
        self.prev_btn.setText("◀ Prev")
        self.prev_btn.setToolTip("Previous pair (P, PgUp)")
        self.prev_btn.clicked.connect(self.prev_pair)
        self.next_btn = QtWidgets.QToolButton()
        self.next_btn.setText("Next ▶")
        self.next_btn.setToolTip("Next pair (N, PgDown)")
        self.next_btn.clicked.connect(self.next_pair)
        self.pos_label = QtWidgets.QLabel("—")
        self.pos_label.setObjectName("Value")
        self.order_box = QtWidgets.QComboBox()
        self.order_box.addItems(["manifest order", "largest Dlib-vs-model disagreement first"])
        self.order_box.setToolTip("Order of the pairs; the disagreement comes from `dmsl annotate --source both`")
        self.order_box.currentIndexChanged.connect(self._order_changed)
        self.group_box = QtWidgets.QComboBox()
        self.group_box.addItems(list(GROUP_CHOICES))
        self.group_box.setToolTip("Drag moves this group together; + / - scale it (G cycles)")
        self.group_box.currentIndexChanged.connect(self._group_changed)
        self.shrink_btn = QtWidgets.QToolButton()
        self.shrink_btn.setText("−")
        self.shrink_btn.setToolTip("Shrink the group (-)")
        self.shrink_btn.clicked.connect(lambda: self.scale_group(1 / 1.05))
        self.grow_btn = QtWidgets.QToolButton()
        self.grow_btn.setText("+")
        self.grow_btn.setToolTip("Grow the group (+)")
        self.grow_btn.clicked.connect(lambda: self.scale_group(1.05))
        self.undo_btn = QtWidgets.QToolButton()
        self.undo_btn.setDefaultAction(self.undo_stack.createUndoAction(self, "Undo"))
        self.redo_btn = QtWidgets.QToolButton()
        self.redo_btn.setDefaultAction(self.undo_stack.createRedoAction(self, "Redo"))
        self.spectra_btn = QtWidgets.QToolButton()
        self.spectra_btn.setText("Spectra: both")
        self.spectra_btn.setToolTip("Show both images, the visible or the thermal one (T)")
        self.spectra_btn.clicked.connect(self.toggle_spectra)
        self.copy_btn = QtWidgets.QToolButton()
        self.copy_btn.setText("Copy previous")
        self.copy_btn.setToolTip("Give this pair the points of the previous pair (origin: neighbour)")
        self.copy_btn.clicked.connect(self.copy_previous)
        self.accept_btn = QtWidgets.QPushButton("Accept ✓")
        self.accept_btn.setToolTip("Mark the pair as checked by hand and go to the next one (A, Return)")
        self.accept_btn.clicked.connect(self.accept_pair)
        for w in (self.open_btn, self.prev_btn, self.pos_label, self.next_btn, self.order_box, self.group_box,
                  self.shrink_btn, self.grow_btn, self.undo_btn, self.redo_btn, self.spectra_btn, self.copy_btn):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.accept_btn)

        views = QtWidgets.QHBoxLayout()
        self.canvases: dict[str, PairCanvas] = {}
        self.frames: dict[str, QtWidgets.QFrame] = {}
        for spec, title in (("vis", "Visible"), ("th", "Thermal")):
            frame = QtWidgets.QFrame()
            frame.setObjectName("SpectrumView")
            fl = QtWidgets.QVBoxLayout(frame)
            fl.setContentsMargins(3, 3, 3, 3)
            t = QtWidgets.QLabel(title)
            t.setObjectName("ViewTitle")
            c = PairCanvas(spec, title)
            c.dragging.connect(self._on_dragging)
            c.dragged.connect(self._on_dragged)
            fl.addWidget(t)
            fl.addWidget(c, 1)
            views.addWidget(frame, 1)
            self.canvases[spec] = c
            self.frames[spec] = frame
        self.vis_canvas, self.th_canvas = self.canvases["vis"], self.canvases["th"]

        self.info = QtWidgets.QLabel("Open a dataset folder (manifest.csv) - annotate it first with "
                                     "`dmsl annotate --data DIR` to start from Dlib's points")
        self.info.setObjectName("Reason")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        legend = QtWidgets.QLabel(" ".join(f"<span style='color:{c}'>●</span> {o}" for o, c in ORIGIN_COLOURS.items())
                                  + " &nbsp;·&nbsp; drag a point · wheel zooms · drag the background pans · "
                                    "N/P next/prev · Ctrl+Z / Ctrl+Shift+Z · T spectra · A accept · G group")
        legend.setObjectName("Dim")
        legend.setWordWrap(True)
        self.status = QtWidgets.QLabel("")
        self.status.setObjectName("Dim")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(bar)
        lay.addLayout(views, 1)
        lay.addWidget(self.info)
        lay.addWidget(legend)
        lay.addWidget(self.status)

    def _shortcuts(self) -> None:
        def sc(keys, slot):
            for k in keys:
                s = QtGui.QShortcut(QtGui.QKeySequence(k), self)
                s.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
                s.activated.connect(slot)

        sc(["N", "PgDown"], self.next_pair)
        sc(["P", "PgUp"], self.prev_pair)
        sc(["Ctrl+Z"], self.undo_stack.undo)
        sc(["Ctrl+Shift+Z", "Ctrl+Y"], self.undo_stack.redo)
        sc(["T"], self.toggle_spectra)
        sc(["A", "Return", "Enter"], self.accept_pair)
        sc(["G"], lambda: self.group_box.setCurrentIndex((self.group_box.currentIndex() + 1) % self.group_box.count()))
        sc(["+", "="], lambda: self.scale_group(1.05))
        sc(["-"], lambda: self.scale_group(1 / 1.05))
        sc(["F"], lambda: [c.fit() for c in self.canvases.values()])

    # ---- opening ------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a dataset folder to annotate", self.folder or "")
        if d:
            self.open_dataset(d)

    def open_dataset(self, folder: str, calibration=None) -> WorkerHandle:
        """Read the dataset on a worker thread; the first pair is shown when it is done."""
        self.stop()
        self.folder = str(folder)
        self.aset = None
        self.index = None
        self.ann = None
        self.undo_stack.clear()
        self._update_enabled()
        self.info.setText(f"reading {self.folder} …")
        for c in self.canvases.values():
            c.set_points(None)
            c.show_message("reading…")
        self.handle = start_worker(FunctionWorker(_load_dataset, self.folder, calibration), "annotate-open",
                                   on_result=self._opened, on_error=self._open_error, parent=self)
        return self.handle

    def stop(self, timeout_ms: int = 3000) -> bool:
        h, self.handle = self.handle, None
        return True if h is None else h.stop(timeout_ms)

    @property
    def ready(self) -> bool:
        return self.aset is not None and self.index is not None

    def _opened(self, res: dict) -> None:
        self.aset = res["aset"]
        self.manifest_order = list(range(len(self.aset)))
        self.disagreement_order = res["disagreement"]
        if res.get("recovered"):
            self._say(res["recovered"], error="unreadable" in res["recovered"])
        if not len(self.aset):
            self.info.setText(f"{self.folder}: the manifest lists no pairs")
            return
        self._apply_order(keep=False)
        self.opened.emit(self.folder)

    def _open_error(self, text: str) -> None:
        self.info.setText(text)
        for c in self.canvases.values():
            c.show_message("cannot open this folder")
        self._say(text, error=True)

    def _say(self, text: str, error: bool = False) -> None:
        if error:
            self.last_error = text
        self.status.setText(("⚠ " if error else "") + text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")
        self.message.emit(text, error)

    # ---- navigation ---------------------------------------------------------------------------------
    def _order_changed(self) -> None:
        if self.aset is not None:
            self._apply_order(keep=True)

    def set_order(self, by_disagreement: bool) -> None:
        self.order_box.setCurrentIndex(1 if by_disagreement else 0)

    def _apply_order(self, keep: bool) -> None:
        self.order = self.disagreement_order if self.order_box.currentIndex() == 1 else self.manifest_order
        cur = self.index if keep else None
        if self.order_box.currentIndex() == 1 and not any(self._has_disagreement(i) for i in self.order[:1]):
            self._say("no Dlib-vs-model disagreement recorded: run `dmsl annotate --source both --overwrite` first")
        self.show_pair(self.order.index(cur) if cur is not None and cur in self.order else 0)

    def _has_disagreement(self, i: int) -> bool:
        try:
            return self.aset.load(i).disagreement is not None
        except Exception:  # noqa: BLE001 - only a hint
            return False

    def next_pair(self) -> None:
        if self.order and self.pos + 1 < len(self.order):
            self.show_pair(self.pos + 1)

    def prev_pair(self) -> None:
        if self.order and self.pos > 0:
            self.show_pair(self.pos - 1)

    def show_pair(self, pos: int) -> None:
        from dmsl_core.data.imageio import read_image
        if self.aset is None or not self.order:
            return
        self.pos = max(0, min(pos, len(self.order) - 1))
        i = self.order[self.pos]
        self.index = i
        self.undo_stack.clear()
        rec = self.aset.records[i]
        for spec, c in self.canvases.items():
            path = self.aset.image_path(i, spec)
            c.show_message("")
            if path is None:
                c.set_image(None)
                c.show_message(f"no {'visible' if spec == 'vis' else 'thermal'} image")
                continue
            try:
                c.set_image(to_rgb8(read_image(path), spec, rec.th_format, self.palette))
            except Exception as exc:  # noqa: BLE001 - a bad image file: say so, keep going
                c.set_image(None)
                c.show_message(f"cannot read {path.name}")
                self._say(str(exc), error=True)
        try:
            self.ann = self.aset.load(i)
        except Exception as exc:  # noqa: BLE001 - a bad .pts / sidecar: named, not fatal
            self.ann = PairAnnotation()
            self._say(f"{exc} - fix or remove the file; editing this pair is off", error=True)
            for c in self.canvases.values():
                c.editable = False
        else:
            for c in self.canvases.values():
                c.editable = True
        self._refresh()
        self.pos_label.setText(f"{self.pos + 1} / {len(self.order)}")
        self._update_enabled()

    # ---- drawing ----------------------------------------------------------------------------------
    def _refresh(self) -> None:
        a = self.ann
        for spec, c in self.canvases.items():
            pts = None if a is None else (a.vis if spec == "vis" else a.th)
            c.set_points(pts, a.vis_origin if spec == "vis" else a.th_origin)
            if pts is None and self.aset is not None and self.aset.image_path(self.index, spec) is not None:
                c.show_message("no landmarks yet")
        self._update_info()

    def _update_info(self) -> None:
        if self.aset is None or self.index is None or self.ann is None:
            return
        i, a = self.index, self.ann
        r = self.aset.records[i]
        bits = [f"<b>{self.aset.name(i)}</b>", f"subject {r.subject}, {r.variation}",
                "registered" if r.registered else ("homography from calibration" if self.aset.calibration
                                                  else "not registered, no calibration: spectra edited apart")]
        for spec, origins in (("visible", a.vis_origin), ("thermal", a.th_origin)):
            org: dict = {}
            for o in origins:
                org[o] = org.get(o, 0) + 1
            if org:
                bits.append(f"{spec}: " + ", ".join(f"{n} {o}" for o, n in sorted(org.items(), key=lambda t: -t[1])))
        if a.empty:
            bits.append("no landmarks yet (dmsl annotate, or Copy previous)")
        if a.disagreement is not None:
            bits.append(f"Dlib-vs-model NME {a.disagreement:.4f}")
        bits.append("<span style='color:#4cd964'>✓ checked</span>" if a.checked else "not checked yet")
        self.info.setText(" · ".join(bits))

    def _update_enabled(self) -> None:
        have = self.ready
        for w in (self.prev_btn, self.next_btn, self.accept_btn, self.copy_btn, self.order_box):
            w.setEnabled(have)
        has_pts = have and self.ann is not None and not self.ann.empty
        self.accept_btn.setEnabled(has_pts)
        self.copy_btn.setEnabled(have and self.pos > 0)
        g = self.current_group()
        self.grow_btn.setEnabled(has_pts and g is not None)
        self.shrink_btn.setEnabled(has_pts and g is not None)

    def current_group(self) -> Optional[range]:
        return GROUP_CHOICES[self.group_box.currentText()]

    def _group_changed(self) -> None:
        g = self.current_group()
        for c in self.canvases.values():
            c.set_group(g)
        self._update_enabled()

    def toggle_spectra(self) -> None:
        self.spectra = SPECTRA_CYCLE[(SPECTRA_CYCLE.index(self.spectra) + 1) % len(SPECTRA_CYCLE)]
        self.frames["vis"].setVisible(self.spectra in ("both", "vis"))
        self.frames["th"].setVisible(self.spectra in ("both", "th"))
        self.spectra_btn.setText(f"Spectra: {self.spectra}")

    # ---- editing ----------------------------------------------------------------------------------
    def _moved(self, spectrum: str, idx, new: np.ndarray) -> Optional[PairAnnotation]:
        """The annotation with points ``idx`` of ``spectrum`` at ``new``, mapped to the other image."""
        if self.ann is None or self.aset is None:
            return None
        a = self.ann.copy()
        idx = list(idx)
        new = np.asarray(new, float).reshape(-1, 2)
        other = "th" if spectrum == "vis" else "vis"
        mine = getattr(a, spectrum)
        if mine is None:
            return None
        mine[idx] = new
        getattr(a, f"{spectrum}_origin")[:] = [("hand" if k in idx else o)
                                                for k, o in enumerate(getattr(a, f"{spectrum}_origin"))]
        theirs = getattr(a, other)
        if theirs is not None:
            mapped = (self.aset.vis_to_th if spectrum == "vis" else self.aset.th_to_vis)(self.index, new)
            if mapped is not None:
                theirs[idx] = mapped
                org = getattr(a, f"{other}_origin")
                for k in idx:
                    org[k] = "hand"
        return a

    def _on_dragging(self, spectrum: str, idx, new) -> None:
        a = self._moved(spectrum, idx, new)
        if a is None:
            return
        for spec, c in self.canvases.items():
            c.set_points(a.vis if spec == "vis" else a.th, a.vis_origin if spec == "vis" else a.th_origin)

    def _on_dragged(self, spectrum: str, idx, old, new) -> None:
        a = self._moved(spectrum, idx, new)
        if a is None:
            self._refresh()
            return
        what = f"move point {idx[0]}" if len(idx) == 1 else f"move {self.group_box.currentText()}"
        self.push(a, what)

    def move_points(self, spectrum: str, idx, new) -> None:
        """Programmatic move (same path as a drag's release)."""
        self._on_dragged(spectrum, list(idx), None, np.asarray(new, float))

    def scale_group(self, factor: float) -> None:
        g = self.current_group()
        if g is None or self.ann is None or self.ann.empty:
            return
        spec = "vis" if self.ann.vis is not None else "th"
        pts = getattr(self.ann, spec)
        idx = list(g)
        c = np.nanmean(pts[idx], axis=0)
        self._on_dragged_scaled(spec, idx, c + (pts[idx] - c) * factor, factor)

    def _on_dragged_scaled(self, spec, idx, new, factor) -> None:
        a = self._moved(spec, idx, new)
        if a is not None:
            self.push(a, f"scale {self.group_box.currentText()} x{factor:.2f}")

    def copy_previous(self) -> None:
        if self.aset is None or self.pos == 0 or self.ann is None:
            return
        try:
            prev = self.aset.load(self.order[self.pos - 1])
        except Exception as exc:  # noqa: BLE001
            self._say(str(exc), error=True)
            return
        rec = self.aset.records[self.index]
        a = self.ann.copy()
        a.vis = prev.vis.copy() if prev.vis is not None and rec.vis else a.vis
        a.th = prev.th.copy() if prev.th is not None and rec.th else a.th
        a.vis_origin = ["neighbour"] * N_POINTS if a.vis is not None else []
        a.th_origin = ["neighbour"] * N_POINTS if a.th is not None else []
        if a.empty:
            self._say("the previous pair has no landmarks to copy", error=True)
            return
        self.push(a, "copy the previous pair's points")

    def accept_pair(self) -> None:
        if self.ann is None or self.ann.empty:
            return
        a = self.ann.copy()
        a.checked = True
        if not self.ann.checked:
            self.push(a, "accept pair")
        self.next_pair()

    def push(self, after: PairAnnotation, text: str) -> None:
        self.undo_stack.push(SnapshotCommand(self, self.index, self.ann, after, text))

    def _set_annotation(self, index: int, ann: PairAnnotation) -> None:
        """Apply (redo/undo) and save at once."""
        if index != self.index:   # the stack is cleared on navigation, so this does not happen
            return
        self.ann = ann
        self._refresh()
        self._update_enabled()
        self.save()

    def save(self) -> bool:
        if self.aset is None or self.index is None or self.ann is None or self.ann.empty:
            return False
        try:
            written = self.aset.save(self.index, self.ann)
        except Exception as exc:  # noqa: BLE001 - disk full, read-only, ...: say so, keep the edit
            self._say(f"could not save {self.aset.key(self.index)}: {exc} - the edit is kept in memory "
                      "(and in the autosave journal when that was written); the next change saves again", error=True)
            return False
        self.save_count += 1
        self.last_error = ""
        self._say(f"saved {written[0].relative_to(self.aset.root)} at {time.strftime('%H:%M:%S')}")
        self.saved.emit(str(written[0]))
        return True


class AnnotateWindow(QtWidgets.QMainWindow):
    """The annotation view in its own window (its keys do not clash with the live view's)."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Annotate dataset - DMSL Studio")
        self.view = AnnotateView()
        self.setCentralWidget(self.view)
        self.view.opened.connect(lambda f: self.setWindowTitle(f"Annotate {Path(f).name} - DMSL Studio"))
        self.resize(1280, 760)

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802
        self.view.stop()
        super().closeEvent(ev)
