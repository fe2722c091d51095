"""DMSL Studio's main window: live visible + thermal views with the landmarks, spectrum control,
the folder browser, recording and export.

Threads: the window only draws. The frame loop, the model and the recording writers run in a
:class:`~app.live.LiveWorker` on its own QThread; the folder browser predicts on another; PNG
export writes on a short-lived one. The worker hands results through a one-slot mailbox, so the
window draws the newest result and never works through a backlog (frames are dropped, not queued).

``python main.py --source URI --frames N --screenshot OUT.png`` runs the window until N frames
were drawn (or the source ended), saves a screenshot and exits 0 (2 when the source failed).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from dmsl_core import __version__

from .about import AboutDialog, ShortcutsDialog
from .folder_browser import FolderBrowser
from .live import LiveOptions, LiveWorker, LoadedModel, ModelSpec, RecordSpec, recording_stem
from .palettes import PALETTES, LevelTracker, lut
from .panel_common import MessageStrip
from .settings import AppSettings, SettingsDialog, SettingsStore
from .spectrum_panel import SelectorChart, SpectrumPanel
from .views import SpectrumView, faces_phrase
from .workers import FunctionWorker, WorkerHandle, collect_garbage_here, start_worker

TEMP_LABELS = {"inner_eye_r": "inner eye (right)", "inner_eye_l": "inner eye (left)", "forehead": "forehead",
               "nose_tip": "nose tip"}
# where each label sits relative to its point (pyqtgraph TextItem anchors): eyes outwards, forehead
# above, nose below - so the four never overlap on a small face
TEMP_ANCHORS = {"inner_eye_r": (1.15, 0.5), "inner_eye_l": (-0.15, 0.5), "forehead": (0.5, 1.15),
                "nose_tip": (0.5, -0.2)}


def temperature_anchors(pts: np.ndarray) -> dict[str, tuple[float, float]]:
    """Where to write each region's temperature on the thermal view (thermal pixels)."""
    p = np.asarray(pts, dtype=np.float64)
    eye_r, eye_l = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    iod = float(np.linalg.norm(eye_l - eye_r)) or 1.0
    d = (eye_l - eye_r) / iod
    up = np.array([d[1], -d[0]])
    fh = p[17:27].mean(axis=0) + up * 0.35 * iod
    return {"inner_eye_r": tuple(p[39]), "inner_eye_l": tuple(p[42]), "nose_tip": tuple(p[30]), "forehead": tuple(fh)}


class Banner(MessageStrip):
    """A message strip above the views (errors and warnings stay until closed or replaced), with
    an icon for the level."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.icon = QtWidgets.QLabel()
        self.layout().insertWidget(0, self.icon)

    def show_message(self, text: str, level: str = "error") -> None:
        sp = {"error": QtWidgets.QStyle.SP_MessageBoxCritical, "warn": QtWidgets.QStyle.SP_MessageBoxWarning}.get(
            level, QtWidgets.QStyle.SP_MessageBoxInformation)
        self.icon.setPixmap(self.style().standardIcon(sp).pixmap(18, 18))
        super().show_message(text, level)

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MainWindow(QtWidgets.QMainWindow):
    """The application window. ``source``: URI to open at start (default: the built-in demo)."""

    resultDrawn = QtCore.Signal(int)   # frames drawn so far (tests, --screenshot)
    liveFinished = QtCore.Signal()

    def __init__(self, source: Optional[str] = None, store: Optional[SettingsStore] = None,
                 settings: Optional[AppSettings] = None, autostart: bool = True,
                 live_options: Optional[LiveOptions] = None) -> None:
        super().__init__()
        self.store = store if store is not None else SettingsStore()
        self.settings = settings if settings is not None else self.store.load()
        self.live_defaults = live_options or LiveOptions()
        self.setWindowTitle(f"DMSL Studio {__version__}")
        self.setWindowIcon(self._make_icon())
        self.live: Optional[LiveWorker] = None
        self.live_handle: Optional[WorkerHandle] = None
        self._old_handles: list[WorkerHandle] = []
        self.export_handles: list[WorkerHandle] = []
        self.model: Optional[LoadedModel] = None
        self.uri = ""
        self.info: dict = {}
        self.last_result = None
        self.drawn = 0
        self._draw_times: collections.deque = collections.deque(maxlen=200)
        self.recording = False
        self.record_paths: list[str] = []
        self.last_error = ""
        self._th_levels = LevelTracker()
        self._seeking = False
        self.playing = False
        self._tab_paused = False      # the source was paused because the Live tab was hidden
        self.last_recording: list[str] = []
        self.annotate_windows: list = []

        self._build_views()
        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status()
        self.apply_settings(self.settings, restart=False)

        geom = self.store.value("window/geometry")
        if isinstance(geom, (QtCore.QByteArray, bytes)) and geom:
            self.restoreGeometry(geom)
        else:
            self.resize(1360, 860)
        state = self.store.value("window/state")
        if isinstance(state, (QtCore.QByteArray, bytes)) and state:
            self.restoreState(state)

        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setInterval(250)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()
        self._chart_timer = QtCore.QTimer(self)
        self._chart_timer.setInterval(100)
        self._chart_timer.timeout.connect(self.chart.redraw)
        self._chart_timer.start()
        self.tabs.currentChanged.connect(self._tab_changed)
        self._set_playing(False)
        self._update_actions()
        if autostart:
            self.open_source(source or "demo")  # recent sources are one click away in the URI box

    # ---- construction -----------------------------------------------------------------------------
    @staticmethod
    def _make_icon() -> QtGui.QIcon:
        pm = QtGui.QPixmap(64, 64)
        pm.fill(QtCore.Qt.transparent)
        p = QtGui.QPainter(pm)
        p.setRenderHint(QtGui.QPainter.Antialiasing)
        p.setBrush(QtGui.QColor("#23262b"))
        p.setPen(QtCore.Qt.NoPen)
        p.drawRoundedRect(2, 2, 60, 60, 12, 12)
        grad = QtGui.QLinearGradient(0, 0, 64, 0)
        grad.setColorAt(0, QtGui.QColor("#4fc3f7"))
        grad.setColorAt(1, QtGui.QColor("#f5a623"))
        p.setPen(QtGui.QPen(QtGui.QBrush(grad), 4))
        p.setBrush(QtCore.Qt.NoBrush)
        p.drawEllipse(16, 10, 32, 42)
        p.setBrush(QtGui.QBrush(grad))
        for x, y in ((25, 27), (39, 27), (32, 36), (27, 44), (37, 44)):
            p.drawEllipse(QtCore.QPointF(x, y), 2.5, 2.5)
        p.end()
        return QtGui.QIcon(pm)

    def _build_views(self) -> None:
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        live = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(live)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(6)
        self.banner = Banner()
        lay.addWidget(self.banner)
        self.views_box = QtWidgets.QWidget()
        vl = QtWidgets.QHBoxLayout(self.views_box)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.setSpacing(8)
        self.vis_view = SpectrumView("Visible")
        self.th_view = SpectrumView("Thermal")
        vl.addWidget(self.vis_view)
        vl.addWidget(self.th_view)
        self.vis_view.value_at = self._vis_value
        self.th_view.value_at = self._th_value
        self.vis_view.hovered.connect(lambda x, y: self._cross_hover("vis", x, y))
        self.th_view.hovered.connect(lambda x, y: self._cross_hover("th", x, y))

        bottom = QtWidgets.QWidget()
        bl = QtWidgets.QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(8)
        chart_frame = QtWidgets.QFrame()
        chart_frame.setObjectName("Panel")
        cl = QtWidgets.QVBoxLayout(chart_frame)
        cl.setContentsMargins(8, 6, 8, 6)
        head = QtWidgets.QHBoxLayout()
        t = QtWidgets.QLabel("VISIBLE ILLUMINATION · LAST 20 S")
        t.setObjectName("PanelTitle")
        legend = QtWidgets.QLabel("<span style='color:#ffffff'>━</span> smoothed &nbsp;"
                                  "<span style='color:#969fa9'>━</span> raw &nbsp;"
                                  "<span style='color:#f06292'>┅</span> saturated &nbsp;"
                                  "<span style='color:#f5a623'>█</span> thermal trusted")
        legend.setObjectName("Dim")
        head.addWidget(t)
        head.addStretch(1)
        head.addWidget(legend)
        cl.addLayout(head)
        self.chart = SelectorChart()
        cl.addWidget(self.chart, 1)
        self.spectrum_panel = SpectrumPanel()
        self.spectrum_panel.setMinimumWidth(330)
        self.spectrum_panel.setMaximumWidth(420)
        self.spectrum_panel.modeChanged.connect(self.set_mode)
        side = QtWidgets.QFrame()
        side.setObjectName("Panel")
        side.setMinimumWidth(250)
        side.setMaximumWidth(330)
        sl = QtWidgets.QVBoxLayout(side)
        sl.setContentsMargins(10, 8, 10, 8)
        h = QtWidgets.QLabel("TEMPERATURES")
        h.setObjectName("PanelTitle")
        sl.addWidget(h)
        self.temp_grid = QtWidgets.QGridLayout()
        self.temp_grid.setVerticalSpacing(2)
        self.temp_labels: dict[str, QtWidgets.QLabel] = {}
        for r, (k, name) in enumerate(TEMP_LABELS.items()):
            a = QtWidgets.QLabel(name)
            a.setObjectName("Dim")
            b = QtWidgets.QLabel("—")
            b.setObjectName("Value")
            b.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
            self.temp_grid.addWidget(a, r, 0)
            self.temp_grid.addWidget(b, r, 1)
            self.temp_labels[k] = b
        sl.addLayout(self.temp_grid)
        self.temp_note = QtWidgets.QLabel("")
        self.temp_note.setObjectName("Dim")
        self.temp_note.setWordWrap(True)
        sl.addWidget(self.temp_note)
        sl.addSpacing(6)
        h = QtWidgets.QLabel("RECORDING")
        h.setObjectName("PanelTitle")
        sl.addWidget(h)
        self.record_label = QtWidgets.QLabel("Not recording · Ctrl+R starts")
        self.record_label.setWordWrap(True)
        self.record_label.setObjectName("Dim")
        self.record_label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        sl.addWidget(self.record_label)
        sl.addStretch(1)
        bl.addWidget(chart_frame, 1)
        bl.addWidget(self.spectrum_panel)
        bl.addWidget(side)

        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        split.addWidget(self.views_box)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 220])
        split.setChildrenCollapsible(False)
        bottom.setMinimumHeight(190)
        self.live_split = split
        lay.addWidget(split, 1)

        self.browser = FolderBrowser()
        self.browser.playRequested.connect(lambda uri: (self.tabs.setCurrentIndex(0), self.open_source(uri)))
        self.browser.openRequested.connect(self.open_folder_dialog)
        self.browser.message.connect(lambda text, err: self.show_message(text, "error" if err else "warn"))
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.browser, "Folder browser")
        self._build_training_tabs()
        self.setCentralWidget(self.tabs)

    def _build_training_tabs(self) -> None:
        """Train / Evaluate / Models tabs (app/train_panel.py, eval_panel.py, models_panel.py)."""
        from .eval_panel import EvalPanel
        from .models_panel import ModelsPanel
        from .train_panel import TrainPanel

        runs = self.settings.runs_dir
        self.train_panel = TrainPanel(runs)
        self.train_panel.restore_form(self.settings.train_form)   # the form as the last session left it
        self.eval_panel = EvalPanel(runs)
        self.models_panel = ModelsPanel(runs)
        # each in a scroll area: the window keeps a small minimum size (the panels scroll instead)
        self._tab_pages: dict = {}
        for panel, name in ((self.train_panel, "Train"), (self.eval_panel, "Evaluate"),
                            (self.models_panel, "Models")):
            area = QtWidgets.QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QtWidgets.QFrame.NoFrame)
            area.setWidget(panel)
            self._tab_pages[panel] = area
            self.tabs.addTab(area, name)

        def trained(run_dir: str) -> None:
            self.models_panel.refresh()
            self.eval_panel.refresh_models()
            self.eval_panel.weights_box.setCurrentText(run_dir)
            if not self.eval_panel.data_edit.text():
                self.eval_panel.data_edit.setText(self.train_panel.data_edit.text())
        self.train_panel.runFinished.connect(trained)
        self.train_panel.runsChanged.connect(self.models_panel.refresh)

        def use(spec: str) -> None:
            self.apply_settings(dataclasses.replace(self.settings, weights=spec))
            self.statusBar().showMessage(f"Live model: {spec}", 5000)
        self.models_panel.useModel.connect(use)

        def evaluate(path: str) -> None:
            self.eval_panel.weights_box.setCurrentText(path)
            self.show_tab(self.eval_panel)
        self.models_panel.evaluateModel.connect(evaluate)

        def resume(path: str) -> None:
            self.show_tab(self.train_panel)
            self.train_panel.resume(path)
        self.models_panel.resumeRun.connect(resume)

    def show_tab(self, panel: QtWidgets.QWidget) -> None:
        """Bring a tab to the front (the Train / Evaluate / Models panels sit in scroll areas)."""
        self.tabs.setCurrentWidget(getattr(self, "_tab_pages", {}).get(panel, panel))

    def _action(self, text: str, slot, shortcut=None, checkable: bool = False, tip: str = "") -> QtGui.QAction:
        a = QtGui.QAction(text, self)
        if shortcut:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QtGui.QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QtGui.QKeySequence(shortcut))
        a.setCheckable(checkable)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        st = self.style()
        self.act_open = self._action("&Open…", self.open_dialog, QtGui.QKeySequence.Open, tip="Open a source (Ctrl+O)")
        self.act_open.setIcon(st.standardIcon(QtWidgets.QStyle.SP_DialogOpenButton))
        self.act_folder = self._action("Open image &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                       tip="Open an image folder in the folder browser")
        self.act_play = self._action("Pause", self.toggle_play, "Space", tip="Play / pause (Space)")
        self.act_play.setIcon(st.standardIcon(QtWidgets.QStyle.SP_MediaPause))
        self.act_step = self._action("Step", self.step, ["Right", "."], tip="Step one frame (Right)")
        self.act_step.setIcon(st.standardIcon(QtWidgets.QStyle.SP_MediaSkipForward))
        self.act_home = self._action("First frame", lambda: self.seek(0), "Home", tip="Back to the first frame")
        self.act_close = self._action("&Close source", self.close_source, "Ctrl+W",
                                      tip="Stop the source and clear the views (Ctrl+W)")
        self.act_pin = self._action("Keep playing on other tabs", lambda _=False: self._tab_changed(
            self.tabs.currentIndex()), checkable=True, tip="Off: the source pauses while the Live tab is hidden")
        self.act_record = self._action("● Record", self.toggle_record, "Ctrl+R", checkable=True,
                                       tip="Start / stop recording landmarks (CSV/JSON) and the overlay video (Ctrl+R)")
        self.act_snapshot = self._action("Export PNG…", self.export_png_dialog, "Ctrl+E",
                                         tip="Export the current frame as PNG (Ctrl+E)")
        self.act_snapshot.setIcon(st.standardIcon(QtWidgets.QStyle.SP_DialogSaveButton))
        self.act_settings = self._action("&Settings…", self.settings_dialog, "Ctrl+,", tip="Settings (Ctrl+,)")
        self.act_annotate = self._action("&Annotate dataset…", self.annotate_dialog,
                                         tip="Correct a dataset's landmarks by hand, both spectra side by side")
        self.act_about = self._action("&About DMSL Studio", self.about_dialog, "F1")
        self.act_keys = self._action("&Keyboard shortcuts", lambda: ShortcutsDialog(self).exec())
        self.act_quit = self._action("&Quit", self.close, QtGui.QKeySequence.Quit)
        self.act_reset_zoom = self._action("Reset zoom", self.reset_zoom, "0")
        self.act_uri = self._action("Source URI", lambda: (self.uri_box.setFocus(), self.uri_box.lineEdit().selectAll()),
                                    "Ctrl+L")
        self.act_palette = self._action("Next palette", self.next_palette, "P")
        self.mode_actions: dict[str, QtGui.QAction] = {}
        group = QtGui.QActionGroup(self)
        for mode, key in (("auto", "A"), ("visible", "V"), ("thermal", "T"), ("both", "B")):
            a = self._action(mode.capitalize(), lambda _=False, m=mode: self.set_mode(m), key, checkable=True,
                             tip=f"Spectrum mode {mode} ({key})")
            group.addAction(a)
            self.mode_actions[mode] = a

    def _build_toolbar(self) -> None:
        tb = QtWidgets.QToolBar("Main")
        tb.setObjectName("MainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QtCore.QSize(18, 18))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonTextBesideIcon)
        tb.addAction(self.act_open)
        self.uri_box = QtWidgets.QComboBox()
        self.uri_box.setEditable(True)
        self.uri_box.setMinimumWidth(260)
        self.uri_box.setMaximumWidth(420)
        self.uri_box.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        self.uri_box.setToolTip("Source URI (Enter opens it): demo, pair:VIS|TH, sbs:FILE, video:FILE, folder:DIR, "
                                "cam:0, lepton:0, cams:0+lepton:1 … (Ctrl+L)")
        self.uri_box.lineEdit().returnPressed.connect(lambda: self.open_source(self.uri_box.currentText().strip()))
        self.uri_box.activated.connect(lambda i: self.open_source(self.uri_box.itemText(i)))
        tb.addWidget(self.uri_box)
        tb.addSeparator()
        tb.addAction(self.act_play)
        tb.addAction(self.act_step)
        self.seek_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.seek_slider.setMinimumWidth(160)
        self.seek_slider.setMaximumWidth(360)
        self.seek_slider.setEnabled(False)
        self.seek_slider.setToolTip("Seek (files)")
        self.seek_slider.sliderPressed.connect(lambda: setattr(self, "_seeking", True))
        self.seek_slider.sliderReleased.connect(self._seek_released)
        self.seek_action = tb.addWidget(self.seek_slider)
        self.seek_action.setVisible(False)
        self.pos_label = QtWidgets.QLabel("")
        self.pos_label.setMinimumWidth(110)
        self.pos_label.setStyleSheet("color:#8c939d; padding: 0 6px;")
        tb.addWidget(self.pos_label)
        tb.addSeparator()
        pl = QtWidgets.QLabel("Palette ")
        pl.setStyleSheet("color:#8c939d; padding-left: 4px;")
        tb.addWidget(pl)
        self.palette_box = QtWidgets.QComboBox()
        self.palette_box.addItems(PALETTES)
        self.palette_box.setToolTip("Thermal palette (P cycles)")
        self.palette_box.currentTextChanged.connect(self.set_palette)
        tb.addWidget(self.palette_box)
        tb.addSeparator()
        self.record_button = QtWidgets.QToolButton()
        self.record_button.setDefaultAction(self.act_record)
        self.record_button.setObjectName("Record")
        self.record_button.setToolButtonStyle(QtCore.Qt.ToolButtonTextOnly)
        tb.addWidget(self.record_button)
        tb.addAction(self.act_snapshot)
        spacer = QtWidgets.QWidget()
        spacer.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Preferred)
        tb.addWidget(spacer)
        tb.addAction(self.act_settings)
        self.addToolBar(tb)
        self.toolbar = tb
        self._refresh_recent()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        m.addAction(self.act_folder)
        self.recent_menu = m.addMenu("Open &recent")
        m.addAction("Open the &demo", lambda: self.open_source("demo"))
        m.addAction(self.act_close)
        m.addSeparator()
        m.addAction(self.act_snapshot)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Playback")
        for a in (self.act_play, self.act_step, self.act_home, self.act_pin):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_reset_zoom)
        m = mb.addMenu("&Spectrum")
        for a in self.mode_actions.values():
            m.addAction(a)
        m.addSeparator()
        pm = m.addMenu("Thermal &palette")
        for name in PALETTES:
            pm.addAction(name, lambda n=name: self.palette_box.setCurrentText(n))
        pm.addAction(self.act_palette)
        m = mb.addMenu("&Record")
        m.addAction(self.act_record)
        m.addAction("Open the recordings folder", self._open_record_dir)
        m = mb.addMenu("&Tools")
        m.addAction(self.act_annotate)
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction("&Train a model", lambda: self.show_tab(self.train_panel))
        m.addAction("&Evaluate a model", lambda: self.show_tab(self.eval_panel))
        m.addAction("&Models", lambda: self.show_tab(self.models_panel))
        m = mb.addMenu("&Help")
        m.addAction(self.act_keys)
        m.addAction(self.act_about)
        self._refresh_recent()

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.st_source = QtWidgets.QLabel("no source")
        self.st_frame = QtWidgets.QLabel("")
        self.st_faces = QtWidgets.QLabel("")     # "3 faces in the visible image"; both run: "visible: 3 faces · thermal: no face"
        self.st_fps = QtWidgets.QLabel("")
        self.st_device = QtWidgets.QLabel("")
        self.st_model = QtWidgets.QLabel("")
        self.st_source.setMaximumWidth(360)
        for w in (self.st_source, self.st_frame, self.st_faces, self.st_fps, self.st_device, self.st_model):
            sb.addPermanentWidget(w)

    # ---- settings ------------------------------------------------------------------------------------
    def model_spec(self) -> ModelSpec:
        s = self.settings
        return ModelSpec(weights=s.weights, fallback_config=s.fallback_config, device=s.device, threads=s.threads,
                         tta=s.tta, refine=s.refine)

    def apply_settings(self, s: AppSettings, restart: bool = True) -> None:
        old_spec = self.model_spec()
        old_faces = getattr(self, "settings", s).faces
        self.settings = s
        self.browser.faces = s.faces
        for v in (self.vis_view, self.th_view, self.browser.vis_view, self.browser.th_view):
            o = v.options
            o.points, o.contours, o.box, o.projected = s.points, s.contours, s.box, s.projected
            o.temperatures = s.temperatures and v in (self.vis_view, self.th_view)
            o.point_size, o.colour_groups = s.point_size, s.colour_groups
        self.palette_box.blockSignals(True)
        self.palette_box.setCurrentText(s.palette)
        self.palette_box.blockSignals(False)
        self.set_palette(s.palette)
        self._show_mode(s.mode)
        if self.live is not None:
            self.live.command("selector", dict(s.selector))
            self.live.command("smoothing", s.smoothing)
            self.live.command("reuse_box", s.reuse_box)
            self.live.command("faces", s.faces)
            self.live.command("detect_every", s.detect_every)
        if self.last_result is not None:
            self.draw_result(self.last_result, count=False)
        if restart and old_spec is not None and old_spec != self.model_spec() and self.uri:
            self.open_source(self.uri)
        elif restart and old_faces != s.faces and self.browser.folder and not self.browser.running:
            self.open_folder(self.browser.folder, show=False)   # the folder's faces found the new way
        self.store.save(s)

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            self.apply_settings(dlg.result_settings())
            self.statusBar().showMessage("Settings saved", 3000)

    def about_dialog(self) -> None:
        AboutDialog(self.model, self).exec()

    # ---- sources ------------------------------------------------------------------------------------
    def _refresh_recent(self) -> None:
        recent = self.store.recent()
        if hasattr(self, "uri_box"):
            cur = self.uri_box.currentText()
            self.uri_box.blockSignals(True)
            self.uri_box.clear()
            self.uri_box.addItems(recent or ["demo"])
            self.uri_box.setEditText(self.uri or cur)
            self.uri_box.blockSignals(False)
        if hasattr(self, "recent_menu"):
            self.recent_menu.clear()
            for u in recent:
                self.recent_menu.addAction(u, lambda uu=u: self.open_source(uu))
            if recent:
                self.recent_menu.addSeparator()
                self.recent_menu.addAction("Clear", lambda: (self.store.clear_recent(), self._refresh_recent()))
            else:
                self.recent_menu.addAction("(none yet)").setEnabled(False)

    def open_dialog(self) -> None:
        from .source_dialog import OpenSourceDialog
        dlg = OpenSourceDialog(self.store.recent(), self.uri, self)
        if dlg.exec() != QtWidgets.QDialog.Accepted:
            return
        uri = dlg.result_uri()
        if dlg.action == "browse":
            self.open_folder(uri)
        else:
            self.open_source(uri)

    def annotate_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a dataset folder to annotate",
                                                       self.browser.folder or "")
        if d:
            self.open_annotation(d)

    def open_annotation(self, folder: str):
        """The annotation view on a dataset folder, in its own window (its keys are its own)."""
        from .annotate_view import AnnotateWindow

        w = AnnotateWindow()
        w.setAttribute(QtCore.Qt.WA_DeleteOnClose, False)
        w.view.message.connect(lambda text, err: err and self.show_message(text, "error"))
        self.annotate_windows.append(w)
        w.show()
        w.view.open_dataset(folder)
        return w

    def open_folder_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Open an image folder", self.browser.folder or "")
        if d:
            self.open_folder(d)

    def open_folder(self, folder: str, show: bool = True) -> None:
        """Show a folder's pairs in the folder browser (predictions, ground truth, NME)."""
        if show:
            self.tabs.setCurrentWidget(self.browser)
        path = folder[len("folder:"):] if folder.startswith("folder:") else folder
        self.browser.palette = self.settings.palette
        self.browser.faces = self.settings.faces
        self.browser.open_folder(path, self.model_spec())
        self.store.add_recent(f"folder:{path}")
        self._refresh_recent()

    def open_source(self, uri: str, options: Optional[LiveOptions] = None) -> None:
        """Stop the current stream (bounded wait) and start ``uri`` on a new worker."""
        uri = (uri or "").strip()
        if not uri:
            self.show_message("Type a source URI or use File > Open (Ctrl+O).", "warn")
            return
        self.stop_live(1500)   # short: a hung camera must not freeze the window; it is parked instead
        self.uri = uri
        self._clear_display("opening…")
        self._start_live(uri, options)

    def close_source(self) -> None:
        """File > Close source: the worker stops (its recording is finished), the views are cleared."""
        self.stop_live(1500)
        self.uri = ""
        self._clear_display("no source - File > Open (Ctrl+O)")
        self.st_source.setText("no source")
        self.st_source.setToolTip("")
        self._set_playing(False)
        self._update_actions()

    def _clear_display(self, message: str) -> None:
        """Nothing of the previous source stays on screen (picture, temperatures, switch count, frame counter)."""
        self.seek_slider.setEnabled(False)
        self.seek_action.setVisible(False)
        self._tab_paused = False
        self.info = {}
        self.last_result = None
        self.last_error = ""
        self.banner.hide()
        self.statusBar().clearMessage()   # the previous source's "opening …" / notices
        self._th_levels.reset()
        self.chart.clear_data()
        self.spectrum_panel.reset()
        self._draw_times.clear()
        # nothing of the previous source stays on screen: temperatures, switch count, frame counter
        for lab in self.temp_labels.values():
            lab.setText("—")
        self.pos_label.setText("")
        self.st_frame.setText("")
        self.st_faces.setText("")
        self.st_faces.setToolTip("")
        self.st_fps.setText("")
        self.temp_note.setText("")
        for v in (self.vis_view, self.th_view):
            v.set_trusted(False)
            v.set_info("")
            v.set_temperatures(None)
            v.show()
            v.show_message(message)

    def _start_live(self, uri: str, options: Optional[LiveOptions]) -> None:
        o = dataclasses.replace(options or self.live_defaults, mode=self.settings.mode,
                                smoothing=self.settings.smoothing, reuse_box=self.settings.reuse_box,
                                faces=self.settings.faces, detect_every=self.settings.detect_every,
                                selector=dict(self.settings.selector))
        w = LiveWorker(uri, self.model_spec(), o)
        w.frame_ready.connect(self._on_frame_ready)
        h = WorkerHandle(w, "live", self)
        h.on("error", self._on_live_error).on("finished", lambda hh=h: self._on_live_finished(hh))
        w.opened.connect(self._on_opened)
        w.model_ready.connect(self._on_model)
        w.recording.connect(self._on_recording)
        w.notice.connect(self._on_notice)
        w.state.connect(self._on_state)
        self.live, self.live_handle = w, h
        self.st_source.setText(f"⏵ {uri}")
        self.st_source.setToolTip(uri)
        self.uri_box.setEditText(uri)
        self._set_playing(not o.start_paused)
        collect_garbage_here()  # leave the worker no dead Qt wrappers to free on its thread (see workers.py)
        h.start()
        self._update_actions()

    def _tab_changed(self, index: int) -> None:
        """The Live tab hidden: its source pauses unless pinned (Playback > Keep playing on other tabs);
        shown again (or pinned): what this paused plays on."""
        if self.live is None:
            self._tab_paused = False
        elif index != 0 and self.playing and not self.act_pin.isChecked():
            self._tab_paused = True
            self._set_playing(False)
            self.live.set_paused(True)
        elif self._tab_paused and (index == 0 or self.act_pin.isChecked()):
            self._tab_paused = False
            self._set_playing(True)
            self.live.set_paused(False)

    def stop_live(self, timeout_ms: int = 3000) -> bool:
        """Stop the stream; the recording is closed (files renamed into place) by the worker."""
        h, self.live_handle = self.live_handle, None
        w, self.live = self.live, None
        if h is None:
            return True
        try:
            w.frame_ready.disconnect(self._on_frame_ready)
        except (RuntimeError, TypeError):
            pass
        ok = h.stop(timeout_ms)
        if not ok:
            self._old_handles.append(h)
            self.show_message("The previous source did not stop in time (a camera driver may hang); it was left "
                              "to finish in the background.", "warn")
        if self.recording:
            self._set_recording(False)
        return ok

    def _on_opened(self, info: dict) -> None:
        if self.sender() is not self.live:
            return
        self.info = dict(info)
        self.store.add_recent(self.uri)
        self._refresh_recent()
        frames = info.get("frames")
        seekable = not info.get("live") and bool(frames) and frames > 1
        self.seek_slider.setEnabled(seekable)
        self.seek_action.setVisible(seekable)
        self.act_home.setEnabled(seekable)
        if seekable:
            self.seek_slider.setRange(0, int(frames) - 1)
        kind = info.get("kind", "")
        self.st_source.setText(f"{kind}: {self.uri}" if kind else self.uri)
        self.st_source.setToolTip(f"{self.uri}\n{info.get('pairing', '')}")
        spectra = tuple(info.get("spectra") or ())
        if "vis" not in spectra:
            self.vis_view.show_message("this source has no visible image")
        if "th" not in spectra:
            self.th_view.show_message("this source has no thermal image")
        # one spectrum: its view takes the width; the empty one would only say "no ... image"
        self.vis_view.setHidden(bool(spectra) and "vis" not in spectra)
        self.th_view.setHidden(bool(spectra) and "th" not in spectra)
        self.temp_note.setText("" if info.get("radiometric") else
                               "thermal is not radiometric here: no degrees (raw values under the cursor)")

    def _on_model(self, m: LoadedModel) -> None:
        self.model = m
        tta = getattr(m.predictor, "tta", "none")
        refine = getattr(m.predictor, "refine", "mb")
        tta_text = {"flip": "flip TTA", "flip-final": "final-pass flip"}.get(tta)
        self.st_model.setText(f"model {m.name}" + (f" · {tta_text}" if tta_text else "")
                              + (f" · refine {refine}" if refine != "mb" else ""))
        forwards = getattr(m.predictor, "forwards_per_face", None)
        self.st_model.setToolTip((m.source or "")
                                 + (f"\ntest-time augmentation: {tta} (mirrored crop too, averaged"
                                    + (" - in the final M_l pass only)" if tta == "flip-final" else ")")
                                    if tta_text else "")
                                 + (f"\nbox refinement: {refine} ({forwards} model forwards per face when no box "
                                    "is known)" if forwards else ""))
        self.st_device.setText(m.device)
        if m.note:
            self.show_message(m.note, "warn")
            self.st_model.setObjectName("StatusWarn")
        else:
            self.st_model.setObjectName("")
        self.st_model.style().unpolish(self.st_model)
        self.st_model.style().polish(self.st_model)

    def _on_notice(self, text: str) -> None:
        if self.sender() is not None and self.sender() is not self.live:
            return   # a source closed or replaced since: its "opening …" is no longer true
        self.statusBar().showMessage(text, 4000)

    def _on_state(self, state: dict) -> None:
        if self.sender() is not self.live:
            return
        if "paused" in state:
            self._set_playing(not state["paused"])

    def _on_live_error(self, text: str) -> None:
        self.last_error = text
        self.show_message(text, "error")
        if self.last_result is None:
            for v in (self.vis_view, self.th_view):
                v.show_message("no picture - see the message above")
        self.st_source.setText(f"stopped: {self.uri}")

    def _on_live_finished(self, h: WorkerHandle) -> None:
        if h is self.live_handle:
            self._set_playing(False)
            if self.recording:
                self._set_recording(False)
            self.live, self.live_handle = None, None
            self._old_handles = [x for x in self._old_handles if x.running] + [h]  # until its thread ends
            self._update_actions()
            self.liveFinished.emit()

    def _update_actions(self) -> None:
        running = self.live is not None
        self.act_play.setEnabled(bool(self.uri))
        self.act_step.setEnabled(running)
        self.act_close.setEnabled(running or bool(self.uri))
        self.act_record.setEnabled(running or self.recording)
        if not running:
            self.st_fps.setText("")

    # ---- playback -----------------------------------------------------------------------------------
    def _set_playing(self, playing: bool) -> None:
        self.playing = playing
        self.act_play.setText("Pause" if playing else "Play")
        self.act_play.setIcon(self.style().standardIcon(
            QtWidgets.QStyle.SP_MediaPause if playing else QtWidgets.QStyle.SP_MediaPlay))

    def toggle_play(self) -> None:
        if self.live is None:
            if self.uri:
                self.open_source(self.uri)
            return
        self._tab_paused = False
        self._set_playing(not self.playing)
        self.live.set_paused(not self.playing)

    def step(self) -> None:
        if self.live is not None:
            self._set_playing(False)
            self.live.step()

    def seek(self, index: int) -> None:
        if self.live is not None and self.seek_slider.isEnabled():
            self.live.seek(index)

    def _seek_released(self) -> None:
        self._seeking = False
        self.seek(self.seek_slider.value())

    def set_mode(self, mode: str) -> None:
        if mode not in self.mode_actions:
            return
        self.settings.mode = mode
        self._show_mode(mode)
        if self.live is not None:
            self.live.set_mode(mode)
        self.store.save(self.settings)

    def _show_mode(self, mode: str) -> None:
        self.spectrum_panel.set_mode(mode)
        if mode in self.mode_actions:
            self.mode_actions[mode].setChecked(True)

    def set_palette(self, name: str) -> None:
        if name not in PALETTES:
            return
        self.settings.palette = name
        self.browser.set_palette(name)
        if self.palette_box.currentText() != name:
            self.palette_box.setCurrentText(name)
        if self.last_result is not None:
            self.draw_result(self.last_result, count=False)

    def next_palette(self) -> None:
        i = PALETTES.index(self.settings.palette) if self.settings.palette in PALETTES else 0
        self.palette_box.setCurrentText(PALETTES[(i + 1) % len(PALETTES)])

    def reset_zoom(self) -> None:
        for v in (self.vis_view, self.th_view):
            v.reset_view()

    # ---- drawing ----------------------------------------------------------------------------------------
    def _on_frame_ready(self) -> None:
        w = self.live
        if w is None or self.sender() is not w:
            return
        r = w.take_latest()
        if r is not None:
            self.draw_result(r)

    def draw_result(self, r, count: bool = True) -> None:
        """Draw one FrameResult on both views and the panels."""
        self.last_result = r
        pair = r.pair
        s = self.settings
        for img, view in ((None if pair is None else pair.vis, self.vis_view),
                          (None if pair is None else pair.th, self.th_view)):
            if img is not None and view.isHidden():   # a folder whose later images are of the other spectrum
                view.show()
        # visible
        if pair is not None and pair.vis is not None:
            self.vis_view.set_image(pair.vis)
        elif pair is not None:
            self.vis_view.show_message("no visible image in this source")
        # thermal
        if pair is not None and pair.th is not None:
            disp = pair.th_celsius if pair.th_celsius is not None else pair.th
            levels = self._th_levels.update(disp) if count or self._th_levels.levels is None else self._th_levels.levels
            self.th_view.set_image(disp, levels=levels, lut=lut(s.palette))
            unit = "°C" if pair.th_celsius is not None else ""
            if pair.th_celsius is not None and self.temp_note.text():
                self.temp_note.setText("")   # a source that knows it is radiometric only once it read a frame
            self.th_view.set_info(f"{levels[0]:.1f} – {levels[1]:.1f}{unit} · {s.palette}")
        elif pair is not None:
            self.th_view.show_message("no thermal image in this source")
        for spec, view in (("vis", self.vis_view), ("th", self.th_view)):
            if pair is not None and (pair.vis if spec == "vis" else pair.th) is None:
                continue
            other = "th" if spec == "vis" else "vis"
            view.set_landmarks(r.landmarks.get(spec), r.boundary.get(spec))
            # every face the detector + tracker found (the primary one is drawn by set_landmarks)
            tracked = r.tracked
            view.set_faces(r.faces.get(spec, []) if tracked else None,
                           r.primary_ids.get(spec) if tracked else None)
            no_face = tracked and r.no_face(spec)
            view.set_note("no face" if no_face else "")
            # the other spectrum's landmarks mapped here (registered pair or known homography)
            view.set_projected(r.mapped.get(other) if other in r.landmarks else None)
            trusted = spec == r.chosen
            if trusted:
                badge = "trusted"
            else:
                badge = ""
            view.set_trusted(trusted, badge)
            faces_text = faces_phrase(len(r.faces[spec])) if tracked and spec in r.faces else ""
            if spec == "vis":
                m = r.measures.get("vis") or {}
                info = f"luminance {m['mean']:.2f}" if "mean" in m else ""
                if faces_text:
                    info = (info + " · " if info else "") + faces_text
                if spec not in r.landmarks:
                    info = (info + " · " if info else "") + (
                        "landmarks from thermal" if other in r.mapped else ("" if no_face else "not run"))
                view.set_info(info.rstrip(" ·"))
            else:
                cur = view.info_label.text()
                if faces_text:
                    cur += " · " + faces_text
                if spec not in r.landmarks:
                    cur += (" · landmarks from visible" if other in r.mapped else ("" if no_face else " · not run"))
                view.set_info(cur)
        self._show_faces_status(r)
        # temperatures
        temps, covered = [], {}
        th_pts = r.points_in("th") if (pair is not None and pair.th is not None) else None
        if r.temperatures and th_pts is not None and np.isfinite(th_pts).all():
            anchors = temperature_anchors(th_pts)
            # an eye region colder than the face: glasses (dmsl_core/covered.py; the processor judged it)
            covered = getattr(r, "temperatures_covered", None) or {}
            temps = [(TEMP_LABELS[k], anchors[k][0], anchors[k][1], v, TEMP_ANCHORS[k], " covered" * (k in covered))
                     for k, v in r.temperatures.items() if k in anchors and v is not None and math.isfinite(v)]
        self.th_view.set_temperatures(temps)
        self.vis_view.set_temperatures(None)
        for k, lab in self.temp_labels.items():
            v = r.temperatures.get(k)
            lab.setText((f"{v:.1f} °C" + (" covered" if k in covered else "")) if v is not None and math.isfinite(v)
                        else "—")
            lab.setToolTip(covered.get(k, ""))
        # selector
        self.spectrum_panel.update_decision(r)
        d = r.decision
        if d.measures is not None:
            self.chart.add(r.t, d.measures.mean, (d.smoothed or {}).get("mean", d.measures.mean),
                           (d.smoothed or {}).get("sat_frac", d.measures.sat_frac), r.chosen == "th")
        thr = d.thresholds or {}
        self.chart.set_thresholds(thr.get("low"), thr.get("high"))
        # position
        if self.seek_slider.isEnabled() and not self._seeking:
            self.seek_slider.blockSignals(True)
            self.seek_slider.setValue(int(r.index))
            self.seek_slider.blockSignals(False)
        frames = self.info.get("frames")
        self.pos_label.setText(f"#{r.index}" + (f" / {frames - 1}" if frames else "") + f" · {r.t:.2f} s")
        if count:
            self.drawn += 1
            self._draw_times.append(time.perf_counter())
            self.resultDrawn.emit(self.drawn)

    def _show_faces_status(self, r) -> None:
        """The status bar's faces field: "3 faces in the visible image" (one spectrum run), "visible: 3 faces ·
        thermal: no face" (both); empty when the face detector is off."""
        warn = False
        if not r.tracked or not r.faces:
            self.st_faces.setText("")
            self.st_faces.setToolTip("")
        else:
            names = {"vis": "visible", "th": "thermal"}
            run = [s for s in ("vis", "th") if s in r.faces]
            if len(run) == 1:
                self.st_faces.setText(f"{faces_phrase(len(r.faces[run[0]]))} in the {names[run[0]]} image")
            else:   # short: the status bar is shared
                self.st_faces.setText(" · ".join(f"{names[s]}: {faces_phrase(len(r.faces[s]))}" for s in run))
            tips = []
            for s in ("vis", "th"):
                for f in r.faces.get(s, []):
                    conf = getattr(f, "confidence", None)
                    tips.append(f"{names[s]} #{f.id}: score {f.score:.2f}"
                                + (f", landmark confidence {100 * conf:.0f} %" if conf is not None else "")
                                + f", box {int(f.boundary[2])}x"
                                f"{int(f.boundary[3])} px" + (" - the readouts follow it"
                                                               if r.primary_ids.get(s) == f.id else ""))
            self.st_faces.setToolTip("\n".join(tips) or "the face detector found no face")
            warn = any(r.no_face(s) for s in r.faces)
        name = "StatusWarn" if warn else ""
        if self.st_faces.objectName() != name:          # restyled only when it changes (not every frame)
            self.st_faces.setObjectName(name)
            self.st_faces.style().unpolish(self.st_faces)
            self.st_faces.style().polish(self.st_faces)

    def displayed_fps(self) -> float:
        t = self._draw_times
        if len(t) < 2:
            return 0.0
        now = time.perf_counter()
        recent = [x for x in t if now - x <= 3.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def _refresh_status(self) -> None:
        w = self.live
        if w is None:
            self.st_fps.setText("")
            return
        st = w.stats
        self.st_fps.setText(f"processing {st.fps:4.1f} fps · shown {self.displayed_fps():4.1f} fps · "
                            f"dropped {st.dropped + st.display_dropped}")
        self.st_fps.setToolTip(f"frames dropped by the source reader: {st.dropped}\n"
                               f"results the window skipped (busy): {st.display_dropped}")
        r = self.last_result
        if r is not None:
            self.st_frame.setText(f"frame {r.index} · {r.t:.2f} s")
        if self.recording:
            drop = f" · {st.recording_dropped} dropped (disk too slow)" if getattr(st, "recording_dropped", 0) else ""
            self.record_label.setText(f"● REC {st.recording_rows} frames{drop}\n" + "\n".join(self.record_paths))

    def _vis_value(self, x: int, y: int) -> str:
        r = self.last_result
        if r is None or r.pair is None or r.pair.vis is None:
            return ""
        v = r.pair.vis[y, x]
        return "RGB " + " ".join(str(int(c)) for c in np.atleast_1d(v)[:3])

    def _th_value(self, x: int, y: int) -> str:
        r = self.last_result
        if r is None or r.pair is None or r.pair.th is None:
            return ""
        if r.pair.th_celsius is not None:
            return f"{float(r.pair.th_celsius[y, x]):.2f} °C"
        return f"value {r.pair.th[y, x]} (not radiometric)"

    def _cross_hover(self, spec: str, x: float, y: float) -> None:
        """The cursor over one view: show the other spectrum's readout at the same place when registered."""
        r = self.last_result
        if r is None or r.pair is None:
            return
        from dmsl_core.registration import homography_for_pair, map_points
        H = homography_for_pair(r.pair)
        if H is None:
            return
        p = np.array([[x, y]], float)
        q = map_points(p, np.linalg.inv(H) if spec == "vis" else H)[0]
        other = self.th_view if spec == "vis" else self.vis_view
        img = r.pair.th if spec == "vis" else r.pair.vis
        if img is not None and 0 <= q[0] < img.shape[1] and 0 <= q[1] < img.shape[0]:
            other.hover_at(q[0], q[1])

    # ---- messages ------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "error") -> None:
        self.banner.show_message(text, level)
        self.statusBar().showMessage(text, 15000)

    # ---- recording / export ------------------------------------------------------------------------------
    def toggle_record(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self, folder: Optional[str] = None, csv: Optional[bool] = None,
                        jsonl: Optional[bool] = None, video: Optional[bool] = None) -> None:
        s = self.settings
        if self.live is None:
            self.act_record.setChecked(False)
            self.show_message("Nothing to record: open a source first (Ctrl+O).", "warn")
            return
        spec = RecordSpec(folder=folder or s.record_dir, stem=recording_stem(self.uri),
                          csv=s.record_csv if csv is None else csv, jsonl=s.record_json if jsonl is None else jsonl,
                          video=s.record_video if video is None else video)
        self.live.start_recording(spec)
        self.record_paths = [str(p) for p in spec.paths().values()]
        self._set_recording(True)
        self.record_label.setText("● REC starting…\n" + "\n".join(self.record_paths))

    def stop_recording(self) -> None:
        if self.live is not None:
            self.live.stop_recording()
        self._set_recording(False)

    def _set_recording(self, on: bool) -> None:
        self.recording = on
        self.act_record.setChecked(on)
        self.act_record.setText("■ Stop" if on else "● Record")

    def _on_recording(self, state: dict) -> None:
        if "error" in state:
            self._set_recording(False)
            self.show_message(state["error"] + " - check the folder in Settings > Recording.", "error")
            self.record_label.setText("Not recording (failed) · Ctrl+R starts")
            return
        if state.get("active"):
            self.record_paths = list(state.get("paths", []))
            self.record_label.setText("● REC 0 frames\n" + "\n".join(self.record_paths))
        else:
            paths = state.get("paths", [])
            dropped = state.get("dropped") or 0
            saved = f"Saved {state.get('rows', 0)} frames" + (f" ({dropped} dropped: the disk was too slow)"
                                                                if dropped else "")
            self.record_label.setText(saved + ":\n" + "\n".join(paths) if paths else "Not recording · Ctrl+R starts")
            self.statusBar().showMessage("Recording saved: " + ", ".join(paths), 8000)
            self.last_recording = paths

    def _open_record_dir(self) -> None:
        d = Path(self.settings.record_dir)
        d.mkdir(parents=True, exist_ok=True)
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(d)))

    def grab_frame(self) -> QtGui.QImage:
        """The two views as they are on screen."""
        widget = self.views_box if self.tabs.currentIndex() == 0 else self.browser
        return widget.grab().toImage()

    def export_png(self, path: str) -> WorkerHandle:
        """Save the current views as PNG; the file is written on a worker thread."""
        img = self.grab_frame()

        def save(p: str, image: QtGui.QImage) -> str:
            out = Path(p)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".part.png")
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"{out}: could not write the PNG (disk full or no permission?)")
            os.replace(tmp, out)
            return str(out)

        h = start_worker(FunctionWorker(save, path, img), "export-png",
                         on_result=lambda p: self.statusBar().showMessage(f"Saved {p}", 6000),
                         on_error=lambda t: self.show_message(f"Export failed: {t}", "error"), parent=self)
        self.export_handles = [x for x in self.export_handles if x.running] + [h]
        return h

    def export_png_dialog(self) -> None:
        d = Path(self.settings.record_dir)
        default = str(d / f"{recording_stem(self.uri or 'frame')}.png")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the current frame", default, "PNG (*.png)")
        if path:
            self.export_png(path if path.lower().endswith(".png") else path + ".png")

    # ---- closing --------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Stop every worker (bounded waits); True when all threads ended."""
        ok = self.stop_live(timeout_ms)
        ok = self.browser.stop(timeout_ms) and ok
        for w in self.annotate_windows:
            ok = w.view.stop(timeout_ms) and ok
        ok = self.eval_panel.stop(timeout_ms) and ok
        ok = self.models_panel.stop(timeout_ms) and ok
        ok = self.train_panel.shutdown() and ok  # a running training is cancelled; it stays resumable
        for h in self.export_handles + self._old_handles:
            ok = h.wait(timeout_ms) and ok
        return ok

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt name
        self._status_timer.stop()
        self._chart_timer.stop()
        self.shutdown()
        for w in self.annotate_windows:
            w.close()
        try:
            self.store.set_value("window/geometry", self.saveGeometry())
            self.store.set_value("window/state", self.saveState())
            self.settings.train_form = self.train_panel.form_state()
            self.store.save(self.settings)
        except Exception:  # noqa: BLE001 - a read-only settings store must not block closing
            pass
        super().closeEvent(ev)


# ---- command line ----------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dmsl-studio", description="DMSL Studio desktop app")
    p.add_argument("--source", default=None, help="source URI to open (default: the built-in demo)")
    p.add_argument("--folder", default=None, help="open this image folder in the folder browser")
    p.add_argument("--sort-nme", action="store_true", help="with --folder: sort the pairs by NME, worst first")
    p.add_argument("--annotate", default=None, metavar="DIR", help="open the annotation view on this dataset folder")
    p.add_argument("--frames", type=int, default=60, help="with --screenshot: frames to draw first (default 60)")
    p.add_argument("--screenshot", default=None, help="save a screenshot of the window to this PNG and exit")
    p.add_argument("--timeout", type=float, default=300.0, help="with --screenshot: give up after this many seconds")
    p.add_argument("--mode", default=None, choices=("auto", "visible", "thermal", "both"), help="spectrum mode")
    p.add_argument("--palette", default=None, choices=PALETTES, help="thermal palette")
    p.add_argument("--weights", default=None, help="model weights (run folder, .safetensors, shipped name)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--size", default=None, help="window size WxH (e.g. 1360x860)")
    p.add_argument("--fresh", action="store_true", help="ignore saved settings (and do not save them)")
    return p.parse_args(argv)


def _screenshot_run(app: QtWidgets.QApplication, win: MainWindow, args: argparse.Namespace) -> int:
    """Run until N frames were drawn (or the source/folder finished), save the window, exit."""
    t0 = time.perf_counter()
    state = {"done": False, "rc": 0, "first": None}
    loop = QtCore.QEventLoop()
    browsing = args.folder is not None and args.source is None

    def finish(rc: int) -> None:
        if not state["done"]:
            state["done"], state["rc"] = True, rc
            QtCore.QTimer.singleShot(150, loop.quit)  # let the last frame paint

    def drawn(n: int) -> None:
        if n == 1:
            state["first"] = time.perf_counter()
        if n >= args.frames:
            finish(0)

    def live_finished() -> None:
        finish(2 if win.last_error else 0)

    if browsing:
        def check() -> None:
            if win.browser.done and not win.browser.running:
                if args.sort_nme:
                    win.browser.sort_by_nme()
                finish(0 if win.browser.entries else 2)
        timer = QtCore.QTimer()
        timer.timeout.connect(check)
        timer.start(100)
    else:
        win.resultDrawn.connect(drawn)
        win.liveFinished.connect(live_finished)
    QtCore.QTimer.singleShot(int(args.timeout * 1000), lambda: finish(1))
    loop.exec()
    live = win.live
    stats = live.stats if live is not None else None
    app.processEvents()
    ok = win.grab().save(args.screenshot)
    if not browsing and state["first"] is not None and win.drawn > 1:
        span = (win._draw_times[-1] - state["first"]) if win._draw_times else 0.0
        fps = (win.drawn - 1) / span if span > 0 else 0.0
        msg = f"dmsl-studio: drew {win.drawn} frames, {fps:.2f} fps displayed"
        if stats is not None:
            msg += f" (processed {stats.processed}, source dropped {stats.dropped}, window skipped {stats.display_dropped})"
        print(msg, file=sys.stderr)
    if win.last_error:
        print(f"dmsl-studio: {win.last_error}", file=sys.stderr)
    print(f"dmsl-studio: screenshot {args.screenshot} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    win.close()
    return state["rc"] if ok else 1


NO_DISPLAY_MESSAGE = (
    "dmsl-studio: no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set, and no "
    "QT_QPA_PLATFORM). Run it on a desktop session, or without a screen:\n"
    "  xvfb-run -a python main.py                   # on a virtual X display (apt install xvfb)\n"
    "  QT_QPA_PLATFORM=offscreen python main.py     # with no window at all (scripts, tests)\n"
    "  python main.py --screenshot shot.png         # a PNG of the window (needs no display)\n"
    "The command line needs no display: python -m dmsl_core.cli --help")


def display_missing(environ: Optional[dict] = None, platform: str = sys.platform) -> bool:
    """True on Linux / BSD when Qt has nothing to draw on: no X11 or Wayland display, no QT_QPA_PLATFORM
    (Qt would abort with its xcb plugin hint). Windows and macOS always have their own platform."""
    env = os.environ if environ is None else environ
    if platform.startswith(("win", "darwin", "cygwin")):
        return False
    return not any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if QtWidgets.QApplication.instance() is None and display_missing():
        if not args.screenshot:
            print(NO_DISPLAY_MESSAGE, file=sys.stderr)
            return 2
        os.environ["QT_QPA_PLATFORM"] = "offscreen"   # a screenshot needs no screen
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("DMSL Studio")
    app.setOrganizationName("DMSL")
    from .theme import apply_dark_theme
    apply_dark_theme(app)
    tmp_dir = None
    if args.fresh or args.screenshot:
        # screenshots and --fresh runs neither read nor change the user's saved settings
        tmp_dir = QtCore.QTemporaryDir()
        store = SettingsStore(QtCore.QSettings(tmp_dir.filePath("settings.ini"), QtCore.QSettings.IniFormat))
    else:
        store = SettingsStore()
    s = store.load()
    for key in ("mode", "palette", "weights", "device", "threads"):
        v = getattr(args, key)
        if v is not None:
            setattr(s, key, v)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    win = MainWindow(source=None, store=store, settings=s, autostart=False)
    if args.size:
        try:
            w, h = (int(x) for x in args.size.lower().split("x"))
            win.resize(w, h)
        except ValueError:
            print(f"dmsl-studio: --size {args.size!r} is not WxH", file=sys.stderr)
            return 2
    elif args.screenshot:
        win.resize(1360, 860)
    win.show()
    if args.folder:
        win.open_folder(args.folder)
        if args.sort_nme and not args.screenshot:
            win.browser.handle.on("finished", win.browser.sort_by_nme)
    if args.annotate and not args.screenshot:
        win.open_annotation(args.annotate)
    if args.source or not args.folder:
        win.open_source(args.source or "demo")
        if args.folder:
            win.tabs.setCurrentWidget(win.browser)
    rc = _screenshot_run(app, win, args) if args.screenshot else app.exec()
    from .workers import drain_parked
    if not drain_parked(5000):
        # a thread stuck in a driver call cannot be killed; leave without waiting for it
        print("dmsl-studio: a worker thread is stuck (camera driver?); exiting without it", file=sys.stderr)
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
