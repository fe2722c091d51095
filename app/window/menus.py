"""The window's actions, toolbar, menus and status bar (a part of :class:`app.main_window.MainWindow`)."""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ..about import ShortcutsDialog
from ..palettes import PALETTES


class WindowActions:
    """The window's actions (each with its shortcut and tip), toolbar, menus and status bar."""

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
