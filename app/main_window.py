"""DMSL Studio's main window: live visible + thermal views with the landmarks, spectrum control,
the folder browser, recording and export.

Threads: the window only draws. The frame loop, the model and the recording writers run in a
:class:`~app.live.LiveWorker` on its own QThread; the folder browser predicts on another; PNG
export writes on a short-lived one. The worker hands results through a one-slot mailbox, so the
window draws the newest result and never works through a backlog (frames are dropped, not queued).

The window's parts are in :mod:`app.window` (actions and menus, drawing a result, recording and
export); its command line (``python -m app``, the screenshot harness) is :mod:`app.__main__`.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Optional

from PySide6 import QtCore, QtGui, QtWidgets

from dmsl_core import __version__
from dmsl_core.sources.base import SourceInfo

from .about import AboutDialog
from .folder_browser import FolderBrowser
from .live import LiveOptions, LiveWorker, LoadedModel, ModelSpec
from .palettes import PALETTES, LevelTracker
from .panel_common import MessageStrip
from .settings import AppSettings, SettingsDialog, SettingsStore
from .spectrum_panel import SelectorChart, SpectrumPanel
from .views import SpectrumView
from .window import LiveDrawing, RecordingExport, WindowActions
from .window.drawing import TEMP_LABELS
from .workers import WorkerHandle, collect_garbage_here


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


class MainWindow(WindowActions, LiveDrawing, RecordingExport, QtWidgets.QMainWindow):
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
        self.info = SourceInfo()
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
        """Train / Evaluate / Models tabs (app/training/, eval_panel.py, models_panel.py)."""
        from .eval_panel import EvalPanel
        from .models_panel import ModelsPanel
        from .training import TrainPanel

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
        self.info = SourceInfo()
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
        if self.statusBar().currentMessage().startswith("opening "):
            self.statusBar().clearMessage()      # opened: "opening …" is no longer true
        self.info = info = SourceInfo(info)
        self.store.add_recent(self.uri)
        self._refresh_recent()
        frames = info.frames
        seekable = not info.live and bool(frames) and frames > 1
        self.seek_slider.setEnabled(seekable)
        self.seek_action.setVisible(seekable)
        self.act_home.setEnabled(seekable)
        if seekable:
            self.seek_slider.setRange(0, int(frames) - 1)
        kind = info.kind
        self.st_source.setText(f"{kind}: {self.uri}" if kind else self.uri)
        self.st_source.setToolTip(f"{self.uri}\n{info.pairing}")
        spectra = info.spectra
        if "vis" not in spectra:
            self.vis_view.show_message("this source has no visible image")
        if "th" not in spectra:
            self.th_view.show_message("this source has no thermal image")
        # one spectrum: its view takes the width; the empty one would only say "no ... image"
        self.vis_view.setHidden(bool(spectra) and "vis" not in spectra)
        self.th_view.setHidden(bool(spectra) and "th" not in spectra)
        self.temp_note.setText("" if info.radiometric else
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
                                    "is known)" if forwards else "")
                                 + (f"\nboxes of the HOG detectors (not fitted to the points): {rough}"
                                    if (rough := getattr(m.predictor, "refine_rough", refine)) != refine else ""))
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

    # ---- messages ------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "error") -> None:
        self.banner.show_message(text, level)
        self.statusBar().showMessage(text, 15000)

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
