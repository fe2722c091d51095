"""File > Open: video pairs, one composite video, a single video, image folders, cameras, the demo.

Every page composes a source URI (shown, editable, at the bottom - the same syntax as
``dmsl run --source``); recent sources are offered there too.
"""
from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Optional

from PySide6 import QtCore, QtWidgets

VIDEO_FILTER = "Videos and images (*.mp4 *.avi *.mov *.mkv *.m4v *.mpg *.webm *.png *.jpg *.jpeg *.tif *.tiff *.npy);;All files (*)"


def list_cameras() -> list[tuple[str, str]]:
    """(index, description) of the cameras this machine shows, without opening them (opening can hang)."""
    out = []
    if sys.platform.startswith("linux"):
        for dev in sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)):
            idx = dev[len("/dev/video"):]
            if not idx.isdigit():
                continue
            name = ""
            try:
                name = Path(f"/sys/class/video4linux/video{idx}/name").read_text(encoding="utf-8").strip()
            except OSError:
                pass
            out.append((idx, f"{dev}" + (f" - {name}" if name else "")))
    return out


def guess_kind(description: str) -> str:
    d = description.lower()
    if "purethermal" in d or "lepton" in d:
        return "lepton"
    if "boson" in d:
        return "boson"
    if "tc001" in d or "p2 pro" in d or "infiray" in d or "topdon" in d:
        return "tc001"
    return "cam"


def _path_row(edit: QtWidgets.QLineEdit, browse) -> QtWidgets.QHBoxLayout:
    row = QtWidgets.QHBoxLayout()
    b = QtWidgets.QPushButton("Browse…")
    b.clicked.connect(browse)
    row.addWidget(edit, 1)
    row.addWidget(b)
    return row


class OpenSourceDialog(QtWidgets.QDialog):
    def __init__(self, recent: list[str], current: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open a source")
        self.setMinimumWidth(640)
        self.action = "live"   # or "browse" (image folder into the folder browser)
        self.tabs = QtWidgets.QTabWidget()

        # video pair
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.pair_vis = QtWidgets.QLineEdit()
        self.pair_th = QtWidgets.QLineEdit()
        f.addRow("Visible video", _path_row(self.pair_vis, lambda: self._file(self.pair_vis)))
        f.addRow("Thermal video or frame folder", _path_row(self.pair_th, lambda: self._file_or_dir(self.pair_th)))
        self.pair_sync = QtWidgets.QComboBox()
        self.pair_sync.addItems(["ratio", "time", "offset"])
        self.pair_sync.setToolTip("ratio: frame i <-> thermal frame scaled by the frame counts; time: nearest in "
                                  "time; offset: thermal frame i + offset")
        f.addRow("Pairing", self.pair_sync)
        self.pair_offset = QtWidgets.QLineEdit()
        self.pair_offset.setPlaceholderText("e.g. 5 (frames) or 120ms")
        f.addRow("Offset", self.pair_offset)
        self.pair_reg = QtWidgets.QCheckBox("Pixel-registered (draw each spectrum's landmarks in the other)")
        f.addRow("", self.pair_reg)
        self.tabs.addTab(w, "Video pair")

        # composite
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.sbs_file = QtWidgets.QLineEdit()
        f.addRow("Composite video", _path_row(self.sbs_file, lambda: self._file(self.sbs_file)))
        self.sbs_layout = QtWidgets.QComboBox()
        for code, text in (("lr", "visible left, thermal right"), ("rl", "thermal left, visible right"),
                           ("tb", "visible top, thermal bottom"), ("bt", "thermal top, visible bottom")):
            self.sbs_layout.addItem(text, code)
        f.addRow("Layout", self.sbs_layout)
        self.sbs_reg = QtWidgets.QCheckBox("Halves are pixel-registered")
        f.addRow("", self.sbs_reg)
        self.tabs.addTab(w, "Composite video")

        # single
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.one_file = QtWidgets.QLineEdit()
        f.addRow("Video or image", _path_row(self.one_file, lambda: self._file(self.one_file)))
        self.one_spec = QtWidgets.QComboBox()
        self.one_spec.addItem("visible", "vis")
        self.one_spec.addItem("thermal", "th")
        f.addRow("Spectrum", self.one_spec)
        self.tabs.addTab(w, "Single video")

        # folder
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.folder = QtWidgets.QLineEdit()
        f.addRow("Folder", _path_row(self.folder, lambda: self._dir(self.folder)))
        hint = QtWidgets.QLabel("A dataset folder (manifest.csv, with annotations: NME per image), a folder with "
                                "vis/ and th/ sub-folders, or one image sequence.")
        hint.setWordWrap(True)
        hint.setObjectName("Hint")
        f.addRow("", hint)
        self.folder_browse = QtWidgets.QRadioButton("Open in the folder browser (table, NME, sort by error)")
        self.folder_play = QtWidgets.QRadioButton("Play as a stream in the live view")
        self.folder_browse.setChecked(True)
        f.addRow("", self.folder_browse)
        f.addRow("", self.folder_play)
        self.tabs.addTab(w, "Image folder")

        # cameras
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.cam_list = QtWidgets.QListWidget()
        self.cam_list.setMaximumHeight(110)
        cams = list_cameras()
        for idx, desc in cams:
            it = QtWidgets.QListWidgetItem(desc)
            it.setData(QtCore.Qt.UserRole, (idx, guess_kind(desc)))
            self.cam_list.addItem(it)
        if not cams:
            it = QtWidgets.QListWidgetItem("No camera found - enter an index below, or try the fake camera")
            it.setFlags(QtCore.Qt.NoItemFlags)
            self.cam_list.addItem(it)
        self.cam_list.currentItemChanged.connect(self._cam_picked)
        f.addRow("Cameras found", self.cam_list)
        self.cam_index = QtWidgets.QSpinBox()
        self.cam_index.setRange(0, 63)
        f.addRow("Index", self.cam_index)
        self.cam_kind = QtWidgets.QComboBox()
        for code, text in (("cam", "webcam / capture card (visible)"), ("cam_th", "webcam-class thermal (8-bit)"),
                           ("lepton", "PureThermal Lepton (radiometric)"), ("boson", "FLIR Boson"),
                           ("tc001", "TOPDON TC001 / P2 Pro (radiometric)")):
            self.cam_kind.addItem(text, code)
        f.addRow("Kind", self.cam_kind)
        self.cam_second = QtWidgets.QCheckBox("Pair with a thermal camera at index")
        self.cam_second_index = QtWidgets.QSpinBox()
        self.cam_second_index.setRange(0, 63)
        self.cam_second_index.setValue(1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.cam_second)
        row.addWidget(self.cam_second_index)
        self.cam_second_kind = QtWidgets.QComboBox()
        for code in ("lepton", "boson", "tc001", "cam_th"):
            self.cam_second_kind.addItem(code, code)
        row.addWidget(self.cam_second_kind)
        row.addStretch(1)
        f.addRow("", row)
        self.cam_fake = QtWidgets.QCheckBox("Fake camera (no hardware: the demo scene, encoded like the device)")
        f.addRow("", self.cam_fake)
        self.tabs.addTab(w, "Camera")

        # demo
        w = QtWidgets.QWidget()
        f = QtWidgets.QFormLayout(w)
        self.demo_size = QtWidgets.QComboBox()
        self.demo_size.addItems(["320x256", "640x512", "160x128"])
        f.addRow("Frame size", self.demo_size)
        self.demo_fps = QtWidgets.QSpinBox()
        self.demo_fps.setRange(1, 120)
        self.demo_fps.setValue(25)
        f.addRow("Frames per second", self.demo_fps)
        self.demo_cycle = QtWidgets.QSpinBox()
        self.demo_cycle.setRange(4, 600)
        self.demo_cycle.setValue(20)
        self.demo_cycle.setSuffix(" s")
        f.addRow("Light cycle", self.demo_cycle)
        self.demo_rig = QtWidgets.QCheckBox("Side-by-side rig (thermal offset, homography known)")
        f.addRow("", self.demo_rig)
        self.tabs.addTab(w, "Demo")

        # URI + recent
        self.uri = QtWidgets.QComboBox()
        self.uri.setEditable(True)
        self.uri.addItems(recent)
        self.uri.setEditText(current)
        self.uri.setToolTip("The source URI (same syntax as `dmsl run --source`); edit it freely")
        self.uri.lineEdit().setPlaceholderText("demo, pair:VIS.mp4|TH.mp4, sbs:FILE?layout=lr, folder:DIR, cam:0 …")
        self._user_typed = False
        self.uri.lineEdit().textEdited.connect(lambda _: setattr(self, "_user_typed", True))
        self.uri.activated.connect(lambda _: setattr(self, "_user_typed", True))
        for sig in (self.tabs.currentChanged,):
            sig.connect(self._compose)
        for e in (self.pair_vis, self.pair_th, self.pair_offset, self.sbs_file, self.one_file, self.folder):
            e.textChanged.connect(self._compose)
        for c in (self.pair_sync, self.sbs_layout, self.one_spec, self.cam_kind, self.demo_size, self.cam_second_kind):
            c.currentIndexChanged.connect(self._compose)
        for s in (self.cam_index, self.cam_second_index, self.demo_fps, self.demo_cycle):
            s.valueChanged.connect(self._compose)
        for cb in (self.pair_reg, self.sbs_reg, self.cam_second, self.cam_fake, self.demo_rig, self.folder_play):
            cb.toggled.connect(self._compose)

        form = QtWidgets.QFormLayout()
        form.addRow("Source URI", self.uri)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Open | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.tabs)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self.tabs.setCurrentIndex(5)

    # ---- browsing ---------------------------------------------------------------------------
    def _file(self, edit: QtWidgets.QLineEdit) -> None:
        p, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open", edit.text(), VIDEO_FILTER)
        if p:
            edit.setText(p)

    def _dir(self, edit: QtWidgets.QLineEdit) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder", edit.text())
        if d:
            edit.setText(d)

    def _file_or_dir(self, edit: QtWidgets.QLineEdit) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setText("Thermal frames as a video file or a folder of frames?")
        fb = box.addButton("Video file", QtWidgets.QMessageBox.AcceptRole)
        box.addButton("Folder of frames", QtWidgets.QMessageBox.AcceptRole)
        box.exec()
        (self._file if box.clickedButton() is fb else self._dir)(edit)

    def _cam_picked(self, item: Optional[QtWidgets.QListWidgetItem]) -> None:
        if item is None or item.data(QtCore.Qt.UserRole) is None:
            return
        idx, kind = item.data(QtCore.Qt.UserRole)
        self.cam_index.setValue(int(idx))
        i = self.cam_kind.findData(kind)
        if i >= 0:
            self.cam_kind.setCurrentIndex(i)
        self._compose()

    # ---- the URI -------------------------------------------------------------------------------
    def composed(self) -> str:
        page = self.tabs.currentIndex()
        if page == 0:
            v, t = self.pair_vis.text().strip(), self.pair_th.text().strip()
            if not v or not t:
                return ""
            opts = [f"sync={self.pair_sync.currentText()}"] if self.pair_sync.currentText() != "ratio" else []
            if self.pair_offset.text().strip():
                opts.append(f"offset={self.pair_offset.text().strip()}")
            if self.pair_reg.isChecked():
                opts.append("registered=1")
            return f"pair:{v}|{t}" + (("?" + "&".join(opts)) if opts else "")
        if page == 1:
            p = self.sbs_file.text().strip()
            if not p:
                return ""
            opts = [f"layout={self.sbs_layout.currentData()}"] + (["registered=1"] if self.sbs_reg.isChecked() else [])
            return f"sbs:{p}?" + "&".join(opts)
        if page == 2:
            p = self.one_file.text().strip()
            return f"video:{p}?spectrum={self.one_spec.currentData()}" if p else ""
        if page == 3:
            p = self.folder.text().strip()
            return f"folder:{p}" if p else ""
        if page == 4:
            def cam(kind: str, idx: int) -> str:
                scheme = "cam" if kind in ("cam", "cam_th") else kind
                opts = ["spectrum=th"] if kind == "cam_th" else []
                if self.cam_fake.isChecked():
                    opts.append("backend=fake")
                return f"{scheme}:{idx}" + ("?" + "&".join(opts) if opts else "")
            first = cam(self.cam_kind.currentData(), self.cam_index.value())
            if self.cam_second.isChecked():
                a = first.split("?")[0]
                b = cam(self.cam_second_kind.currentData(), self.cam_second_index.value())
                b_target, _, b_opts = b.partition("?")
                opts = [o for o in b_opts.split("&") if o and o != "backend=fake"]
                b_full = b_target + ("?" + "&".join(opts) if opts else "")
                return f"cams:{a}+{b_full}" + ("?backend=fake" if self.cam_fake.isChecked() else "")
            return first
        opts = []
        if self.demo_size.currentText() != "320x256":
            opts.append(f"size={self.demo_size.currentText()}")
        if self.demo_fps.value() != 25:
            opts.append(f"fps={self.demo_fps.value()}")
        if self.demo_cycle.value() != 20:
            opts.append(f"cycle={self.demo_cycle.value()}")
        if self.demo_rig.isChecked():
            opts.append("rig=1")
        return "demo" + ("?" + "&".join(opts) if opts else "")

    def _compose(self, *_: object) -> None:
        self._user_typed = False
        self.uri.setEditText(self.composed())

    def result_uri(self) -> str:
        return self.uri.currentText().strip()

    def _accept(self) -> None:
        uri = self.result_uri()
        if not uri:
            QtWidgets.QMessageBox.warning(self, "Open a source", "Choose a file, folder or camera first.")
            return
        self.action = "browse" if (uri.startswith("folder:") and self.tabs.currentIndex() == 3
                                   and self.folder_browse.isChecked() and not self._user_typed) else "live"
        self.accept()
