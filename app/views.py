"""The image views: a frame with the 68 landmarks, their contours and the face box drawn over it.

One :class:`SpectrumView` per spectrum. The image, the points (a ``ScatterPlotItem``), the
contours (one ``PlotCurveItem`` with a ``connect`` array), the face box, the points projected
from the other spectrum and ground truth all live in the same ``ViewBox`` (image pixel
coordinates, row-major, y down), so they always line up whatever the zoom.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from dmsl_core.landmarks import CONTOURS, COARSE_GROUPS, N_POINTS

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="#15171a", foreground="#d0d4da")

ACCENT = "#f5a623"        # the trusted spectrum
GT_COLOUR = "#4cd964"
PROJ_COLOUR = "#e8e8e8"
FACE_BOX_COLOUR = "#7fb3d5"   # the boxes of the faces beside the primary one
NOTE_COLOUR = "#ffb74d"       # "no face" over the image
GROUP_COLOURS = {"jaw": "#4fc3f7", "brows": "#ffd54f", "nose": "#ff8a65", "eyes": "#81c784", "mouth": "#f06292"}


def _contour_index(contours=CONTOURS) -> tuple[np.ndarray, np.ndarray]:
    """Point indices of the polylines, closed ones repeating their first point, and the
    ``connect`` array that breaks the line between polylines."""
    idx, conn = [], []
    for points, closed in contours:
        seq = list(points) + ([points[0]] if closed else [])
        idx.extend(seq)
        conn.extend([1] * (len(seq) - 1) + [0])
    return np.array(idx, dtype=np.int64), np.array(conn, dtype=bool)


CONTOUR_IDX, CONTOUR_CONNECT = _contour_index()


def _group_of(points: tuple[int, ...]) -> str:
    return next(name for name, rng in COARSE_GROUPS.items() if points[0] in rng)


# one (indices, connect) pair per coarse group, so each group's contour gets its colour
GROUP_CONTOURS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    g: _contour_index([c for c in CONTOURS if _group_of(c[0]) == g]) for g in COARSE_GROUPS}


def _group_brushes() -> list[QtGui.QBrush]:
    colours = ["#ffffff"] * N_POINTS
    for name, rng in COARSE_GROUPS.items():
        for i in rng:
            colours[i] = GROUP_COLOURS[name]
    return [pg.mkBrush(c) for c in colours]


def faces_phrase(n: int) -> str:
    """"no face", "1 face", "3 faces"."""
    return "no face" if n == 0 else f"{n} face{'s' if n != 1 else ''}"


# An empty overlay item is also hidden: the scene then skips it when it paints and when it asks for
# bounding rects (a view holds ~20 of them, most empty on a one-face frame; painted empty, they cost
# about as much as the ones with data).
def _clear_curve(item) -> None:
    """Empty a PlotCurveItem and hide it; nothing to do (no repaint) when it is empty already."""
    if item.xData is not None and len(item.xData):
        item.setData([], [])
    if item.isVisible():
        item.setVisible(False)


def _clear_scatter(item) -> None:
    """Empty a ScatterPlotItem and hide it; nothing to do (no repaint) when it is empty already."""
    if len(item.data):
        item.setData([])
    if item.isVisible():
        item.setVisible(False)


def _set_curve(item, x, y, **kw) -> None:
    item.setData(x, y, **kw)
    if not item.isVisible():
        item.setVisible(True)


def _set_scatter(item, **kw) -> None:
    item.setData(**kw)
    if not item.isVisible():
        item.setVisible(True)


def _set_text(item, text: str) -> None:
    """A TextItem's text, set only when it changes (setting it lays the text out again every time)."""
    if item.toPlainText() != text:
        item.setText(text)


class _ImageItem(pg.ImageItem):
    """pyqtgraph's ImageItem drawing from a 32-bit RGB QImage: the raster engine scales that format
    directly, where it converts RGB888 or an indexed image again at every paint (0.12 ms against
    0.49 / 1.06 ms for a 320x256 frame drawn at 630x500; the conversion, done once per new image,
    costs 0.01 ms). Opaque images only: one with an alpha channel keeps pyqtgraph's format."""

    _DIRECT = (QtGui.QImage.Format_RGB32, QtGui.QImage.Format_ARGB32_Premultiplied)

    def render(self, *args, **kw):
        super().render(*args, **kw)
        q = self.qimage
        if q is not None and not q.hasAlphaChannel() and q.format() not in self._DIRECT:
            self.qimage = q.convertToFormat(QtGui.QImage.Format_RGB32)


@dataclass
class DrawOptions:
    points: bool = True
    contours: bool = True
    box: bool = True
    projected: bool = True
    temperatures: bool = True
    point_size: float = 5.0
    colour_groups: bool = True


def _display_image(img: np.ndarray, levels: tuple[float, float], lut: Optional[np.ndarray]):
    """``setImage`` arguments that pyqtgraph turns into a QImage without its general path (which
    rescaled both views every frame): uint8 at full range as is (RGB888 / Grayscale8); one channel
    with a palette scaled to uint8 here by OpenCV, shown as an indexed image."""
    import cv2
    lo, hi = float(levels[0]), float(levels[1])
    if img.dtype == np.uint8 and lut is None and (lo, hi) == (0.0, 255.0):
        return img, False, {"levels": None}
    if img.ndim == 2 and lut is not None and hi > lo and img.dtype in (np.uint8, np.uint16, np.float32):
        a = 255.0 / (hi - lo)
        f = img if img.dtype == np.float32 else img.astype(np.float32)
        idx = cv2.convertScaleAbs(cv2.max(f, lo), alpha=a, beta=-lo * a)   # clipped to lo..hi, rounded
        return idx, False, {"levels": None, "lut": lut}
    return img, False, {"levels": levels, "lut": lut}


class SpectrumView(QtWidgets.QFrame):
    """A titled image view with the landmark overlay and a readout line under it."""

    hovered = QtCore.Signal(float, float)  # image pixel coordinates under the cursor

    def __init__(self, title: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("SpectrumView")
        self.title = title
        self.options = DrawOptions()
        self._brushes = _group_brushes()
        self._plain_brush = pg.mkBrush("#4fc3f7")
        self._image: Optional[np.ndarray] = None
        self._shape: Optional[tuple[int, int]] = None
        self.value_at: Optional[Callable[[int, int], str]] = None
        self.trusted = False
        self._trusted_shown: Optional[tuple[bool, str]] = None   # what set_trusted last drew

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(3, 3, 3, 3)
        lay.setSpacing(2)
        head = QtWidgets.QHBoxLayout()
        head.setContentsMargins(6, 2, 6, 0)
        self.title_label = QtWidgets.QLabel(title)
        self.title_label.setObjectName("ViewTitle")
        self.badge = QtWidgets.QLabel("")
        self.badge.setObjectName("Badge")
        self.info_label = QtWidgets.QLabel("")
        self.info_label.setObjectName("ViewInfo")
        self.info_label.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
        head.addWidget(self.title_label)
        head.addWidget(self.badge)
        head.addStretch(1)
        head.addWidget(self.info_label)
        lay.addLayout(head)

        self.graphics = pg.GraphicsView()
        self.graphics.setMinimumSize(200, 160)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setDefaultPadding(0.0)
        self.graphics.setCentralItem(self.vb)
        self.image_item = _ImageItem()
        self.vb.addItem(self.image_item)

        self.contour_item = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255, 170), width=1.2))
        self.group_items = {g: pg.PlotCurveItem(pen=pg.mkPen(pg.mkColor(c), width=1.4)) for g, c in GROUP_COLOURS.items()}
        self.proj_contour_item = pg.PlotCurveItem(pen=pg.mkPen(PROJ_COLOUR, width=1.0, style=QtCore.Qt.DashLine))
        self.box_item = pg.PlotCurveItem(pen=pg.mkPen(ACCENT, width=1.5))
        self.gt_item = pg.ScatterPlotItem(size=7, symbol="x", pen=pg.mkPen(GT_COLOUR, width=1.5), brush=None)
        self.proj_item = pg.ScatterPlotItem(size=6, symbol="o", pen=pg.mkPen(PROJ_COLOUR, width=1.0), brush=None)
        self.points_item = pg.ScatterPlotItem(size=5, pen=pg.mkPen((0, 0, 0, 160), width=0.6))
        # every face but the primary (set_faces): one item of each kind for all of them
        self.faces_contour_item = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255, 170), width=1.2))
        self.faces_group_items = {g: pg.PlotCurveItem(pen=pg.mkPen(pg.mkColor(c), width=1.4))
                                  for g, c in GROUP_COLOURS.items()}
        self.faces_box_item = pg.PlotCurveItem(pen=pg.mkPen(FACE_BOX_COLOUR, width=1.2))
        self.faces_points_item = pg.ScatterPlotItem(size=5, pen=pg.mkPen((0, 0, 0, 160), width=0.6))
        for it in (self.contour_item, *self.group_items.values(), self.faces_contour_item,
                   *self.faces_group_items.values(), self.proj_contour_item, self.box_item, self.faces_box_item,
                   self.gt_item, self.proj_item, self.faces_points_item, self.points_item):
            self.vb.addItem(it)
        self.face_labels: list[pg.TextItem] = []
        self.face_ids: list[int] = []          # the faces set_faces drew (primary first)
        self.primary_id: Optional[int] = None
        self._labelled: list[tuple[int, int]] = []   # (face id, label index) of the labels shown
        self._primary_label: Optional[int] = None
        self.temp_items: list[pg.TextItem] = []
        self.message_item = pg.TextItem("", color="#8a9099", anchor=(0.5, 0.5))
        self.message_item.setFont(QtGui.QFont("Sans", 11))
        self.vb.addItem(self.message_item)
        # a short note over the picture ("no face"): the image stays
        self.note_item = pg.TextItem("", color=NOTE_COLOUR, fill=pg.mkBrush(0, 0, 0, 170), anchor=(0.5, 0.0))
        f = QtGui.QFont("Sans", 11)
        f.setBold(True)
        self.note_item.setFont(f)
        self.note_item.setZValue(20)
        self.vb.addItem(self.note_item)
        lay.addWidget(self.graphics, 1)

        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName("Readout")
        self.readout.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        lay.addWidget(self.readout)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.set_trusted(False)
        self.show_message("no frame yet")

    # ---- image ------------------------------------------------------------------------------
    def set_image(self, img: Optional[np.ndarray], levels: Optional[tuple[float, float]] = None,
                  lut: Optional[np.ndarray] = None) -> None:
        if img is None:
            self._image = None
            self.image_item.clear()
            self.clear_overlay()
            return
        shape = img.shape[:2]
        _set_text(self.message_item, "")
        if levels is None:
            levels = (0, 255) if img.dtype == np.uint8 else (float(np.nanmin(img)), float(np.nanmax(img)) + 1e-6)
        shown, auto, kw = _display_image(img, levels, lut)
        self.image_item.setImage(shown, autoLevels=auto, **kw)
        self._image = img                  # the values (hover read-outs); the item holds display bytes
        if shape != self._shape:
            self._shape = shape
            self.vb.setRange(xRange=(0, shape[1]), yRange=(0, shape[0]), padding=0.0)
            self.vb.setLimits(xMin=-shape[1], xMax=2 * shape[1], yMin=-shape[0], yMax=2 * shape[0])
            self.message_item.setPos(shape[1] / 2, shape[0] / 2)
            self.note_item.setPos(shape[1] / 2, 0.03 * shape[0])

    def show_message(self, text: str) -> None:
        """A grey line in the middle of an empty view (no frame, spectrum absent)."""
        if self._image is not None and text:
            self.image_item.clear()
            self._image = None
        self.clear_overlay()
        w, h = (self._shape[1], self._shape[0]) if self._shape else (320, 256)
        if self._shape is None:
            self.vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.0)
        self.message_item.setPos(w / 2, h / 2)
        self.message_item.setText(text)

    def reset_view(self) -> None:
        if self._shape:
            self.vb.setRange(xRange=(0, self._shape[1]), yRange=(0, self._shape[0]), padding=0.0)

    # ---- overlay ----------------------------------------------------------------------------
    def clear_overlay(self) -> None:
        for it in (self.contour_item, *self.group_items.values(), self.proj_contour_item, self.box_item):
            _clear_curve(it)
        for it in (self.points_item, self.proj_item, self.gt_item):
            _clear_scatter(it)
        self.set_temperatures(None)
        self.set_faces(None)
        self.set_note("")

    def set_note(self, text: str) -> None:
        """A short note over the top of the picture (e.g. "no face"); the image stays. "" hides it."""
        _set_text(self.note_item, f" {text} " if text else "")
        self.note_item.setVisible(bool(text))

    @property
    def note(self) -> str:
        return self.note_item.toPlainText().strip() if self.note_item.isVisible() else ""

    def set_faces(self, faces, primary_id: Optional[int] = None) -> None:
        """Every face of a frame (``TrackedFace``-like: ``id``, ``score``, ``boundary``, ``landmarks``):
        the faces other than ``primary_id`` get their points, contours and box drawn here (the primary is
        drawn by :meth:`set_landmarks`, in the trusted style), and every face a label "#id score | conf%" at its
        box. ``None`` or ``[]`` clears them."""
        faces = list(faces or [])
        o = self.options
        others = [f for f in faces if f.id != primary_id]
        self.primary_id = primary_id if any(f.id == primary_id for f in faces) else None
        self.face_ids = [f.id for f in faces if f.id == primary_id] + [f.id for f in others]
        pts_all, boxes = [], []
        for f in others:
            p = np.asarray(f.landmarks, dtype=np.float64)
            if p.shape == (N_POINTS, 2) and np.isfinite(p).all():
                pts_all.append(p)
            b = np.asarray(f.boundary, dtype=np.float64)
            if b.shape == (4,) and np.isfinite(b).all():
                boxes.append(b)
        # points
        if pts_all and o.points:
            brush = (self._brushes * len(pts_all)) if o.colour_groups else self._plain_brush
            _set_scatter(self.faces_points_item, pos=np.concatenate(pts_all), size=o.point_size, brush=brush)
        else:
            _clear_scatter(self.faces_points_item)
        # contours (one curve per colour group, the faces joined with breaks)
        drawn = set()
        if pts_all and o.contours:
            groups = GROUP_CONTOURS.items() if o.colour_groups else [(None, (CONTOUR_IDX, CONTOUR_CONNECT))]
            for g, (idx, conn) in groups:
                c = np.concatenate([p[idx] for p in pts_all])
                cn = np.concatenate([conn] * len(pts_all))
                item = self.faces_group_items[g] if g else self.faces_contour_item
                _set_curve(item, c[:, 0], c[:, 1], connect=cn)
                drawn.add(id(item))
        for it in (self.faces_contour_item, *self.faces_group_items.values()):
            if id(it) not in drawn:
                _clear_curve(it)
        # boxes
        if boxes and o.box:
            xs, ys, conn = [], [], []
            for x, y, w, h in boxes:
                xs += [x, x + w, x + w, x, x]
                ys += [y, y, y + h, y + h, y]
                conn += [1, 1, 1, 1, 0]
            _set_curve(self.faces_box_item, np.array(xs), np.array(ys), connect=np.array(conn, dtype=bool))
        else:
            _clear_curve(self.faces_box_item)
        self._set_face_labels(faces, primary_id)

    def _set_face_labels(self, faces, primary_id: Optional[int]) -> None:
        labelled = [f for f in faces if np.asarray(f.boundary, float).shape == (4,)
                    and np.isfinite(np.asarray(f.boundary, float)).all()]
        while len(self.face_labels) < len(labelled):
            it = pg.TextItem("", color="#ffffff", fill=pg.mkBrush(0, 0, 0, 160), anchor=(0.0, 1.0))
            it.setFont(QtGui.QFont("Sans", 8))
            it.setZValue(15)
            self.vb.addItem(it)
            self.face_labels.append(it)
        for k, it in enumerate(self.face_labels):
            if k >= len(labelled):
                it.setVisible(False)
                continue
            f = labelled[k]
            x, y, w, h = (float(v) for v in f.boundary)
            score = float(getattr(f, "score", float("nan")))
            conf = getattr(f, "confidence", None)
            text = f"#{f.id} {score:.2f}" if np.isfinite(score) else f"#{f.id}"
            if conf is not None:
                text += f" | {100 * float(conf):.0f}%"
            _set_text(it, text)
            it.setToolTip(f"face #{f.id}" + (" (the readouts follow this one)" if f.id == primary_id else "")
                          + (f", detector score {score:.3f}" if np.isfinite(score) else "")
                          + (f", landmark confidence {100 * float(conf):.0f} % (the landmark stage's own "
                             "estimate that its points sit on a face)" if conf is not None else ""))
            # under the box's bottom-left corner (above it, the thermal view writes the forehead's
            # temperature); over the box's top when the box reaches the bottom of the image
            H = self._shape[0] if self._shape else 256
            low = y + h > 0.95 * H
            it.setAnchor((0.0, 1.0) if low else (0.0, 0.0))
            it.setPos(x, y if low else y + h)
            it.setVisible(True)
        self._labelled = [(f.id, k) for k, f in enumerate(labelled)]
        self._primary_label = primary_id
        self._colour_face_labels()

    def _colour_face_labels(self) -> None:
        for fid, k in self._labelled:
            primary = fid == self._primary_label
            self.face_labels[k].setColor(pg.mkColor(ACCENT if (primary and self.trusted) else
                                                    ("#ffffff" if primary else "#cfe3f1")))

    def face_labels_text(self) -> list[str]:
        """The "#id score" labels shown, in the faces' order (tests, screenshots)."""
        return [it.toPlainText() for it in self.face_labels if it.isVisible()]

    def set_landmarks(self, pts: Optional[np.ndarray], box: Optional[np.ndarray] = None) -> None:
        o = self.options
        if pts is None or not np.isfinite(np.asarray(pts, float)).any():
            _clear_scatter(self.points_item)
            _clear_curve(self.contour_item)
            for it in self.group_items.values():
                _clear_curve(it)
        else:
            pts = np.asarray(pts, dtype=np.float64)
            if o.points:
                brush = self._brushes if o.colour_groups else self._plain_brush
                _set_scatter(self.points_item, pos=pts, size=o.point_size, brush=brush)
            else:
                _clear_scatter(self.points_item)
            if o.contours and o.colour_groups:
                _clear_curve(self.contour_item)
                for g, it in self.group_items.items():
                    idx, conn = GROUP_CONTOURS[g]
                    c = pts[idx]
                    _set_curve(it, c[:, 0], c[:, 1], connect=conn)
            else:
                for it in self.group_items.values():
                    _clear_curve(it)
                if o.contours:
                    c = pts[CONTOUR_IDX]
                    _set_curve(self.contour_item, c[:, 0], c[:, 1], connect=CONTOUR_CONNECT)
                else:
                    _clear_curve(self.contour_item)
        if box is not None and o.box and np.isfinite(np.asarray(box, float)).all():
            x, y, w, h = (float(v) for v in box)
            _set_curve(self.box_item, [x, x + w, x + w, x, x], [y, y, y + h, y + h, y])
        else:
            _clear_curve(self.box_item)

    def set_projected(self, pts: Optional[np.ndarray]) -> None:
        """Landmarks found in the other spectrum, mapped into this image (hollow, dashed)."""
        if pts is None or not self.options.projected:
            _clear_scatter(self.proj_item)
            _clear_curve(self.proj_contour_item)
            return
        pts = np.asarray(pts, dtype=np.float64)
        _set_scatter(self.proj_item, pos=pts, size=max(4.0, self.options.point_size + 1))
        if self.options.contours:
            c = pts[CONTOUR_IDX]
            _set_curve(self.proj_contour_item, c[:, 0], c[:, 1], connect=CONTOUR_CONNECT)
        else:
            _clear_curve(self.proj_contour_item)

    def set_ground_truth(self, pts: Optional[np.ndarray]) -> None:
        if pts is None:
            _clear_scatter(self.gt_item)
        else:
            p = np.asarray(pts, dtype=np.float64)
            p = p[np.isfinite(p).all(axis=1)]
            _set_scatter(self.gt_item, pos=p)

    def set_temperatures(self, temps: Optional[list[tuple]]) -> None:
        """Small labels ``(name, x, y, degrees[, anchor[, suffix]])`` at landmark regions."""
        temps = temps if (temps and self.options.temperatures) else []
        while len(self.temp_items) < len(temps):
            it = pg.TextItem("", color="#ffffff", fill=pg.mkBrush(0, 0, 0, 150), anchor=(0.5, 1.2))
            it.setFont(QtGui.QFont("Sans", 8))
            self.vb.addItem(it)
            self.temp_items.append(it)
        for k, it in enumerate(self.temp_items):
            if k < len(temps):
                name, x, y, deg = temps[k][:4]
                it.setAnchor(temps[k][4] if len(temps[k]) > 4 else (0.5, 1.2))
                _set_text(it, f"{deg:.1f}°" + (temps[k][5] if len(temps[k]) > 5 else ""))   # e.g. " covered"
                if it.toolTip() != name:
                    it.setToolTip(name)
                it.setPos(x, y)
                it.setVisible(True)
            else:
                it.setVisible(False)

    # ---- header / highlight ---------------------------------------------------------------------
    def set_trusted(self, trusted: bool, badge: str = "") -> None:
        if (trusted, badge) == self._trusted_shown:
            return  # every frame asks; re-polishing the style sheet costs, so only a change is drawn
        self._trusted_shown = (trusted, badge)
        self.trusted = trusted
        self.setProperty("trusted", bool(trusted))
        self.badge.setText(badge)
        self.badge.setVisible(bool(badge))
        self.style().unpolish(self)
        self.style().polish(self)
        self.box_item.setPen(pg.mkPen(ACCENT if trusted else "#9aa0a6", width=1.6 if trusted else 1.0))
        self._colour_face_labels()

    def set_info(self, text: str) -> None:
        self.info_label.setText(text)

    # ---- cursor readout ---------------------------------------------------------------------
    def _mouse_moved(self, pos: QtCore.QPointF) -> None:
        if self._image is None:
            return
        p = self.vb.mapSceneToView(pos)
        x, y = p.x(), p.y()
        h, w = self._image.shape[:2]
        if 0 <= x < w and 0 <= y < h:
            ix, iy = int(x), int(y)
            extra = self.value_at(ix, iy) if self.value_at else ""
            self.readout.setText(f"x {ix:4d}  y {iy:4d}   {extra}")
            self.hovered.emit(x, y)
        else:
            self.readout.setText(" ")

    def hover_at(self, x: float, y: float) -> str:
        """Readout for a given pixel (used by tests and by the other view's cursor)."""
        if self._image is None:
            return ""
        ix, iy = int(x), int(y)
        extra = self.value_at(ix, iy) if self.value_at else ""
        text = f"x {ix:4d}  y {iy:4d}   {extra}"
        self.readout.setText(text)
        return text
