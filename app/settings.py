"""The app's settings: a dataclass saved in QSettings, and the Settings dialog that edits it.

Stored as one JSON value (``app/settings``) so an old or hand-edited store never breaks the app:
unknown keys are ignored and bad values fall back to the defaults. Window geometry/state and the
recent sources live beside it (``window/geometry``, ``window/state``, ``sources/recent``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core import configio

from .palettes import PALETTES

MODES = ("auto", "visible", "thermal", "both")
TTA_CHOICES = (("as the model card says", ""), ("off (fastest)", "none"),
               ("final M_l pass only (one mirrored crop more)", "flip-final"), ("every pass (slowest)", "flip"))
REFINE_CHOICES = (("as the model card says", ""), ("M_b twice", "mb"),
                  ("M_l again on its own landmarks' box (close-up faces)", "landmarks"),
                  ("both (most accurate, one forward more)", "both"))
FACES_CHOICES = (("every face (face detector + tracking)", "every"),
                 ("one face (M_b on the whole frame, faster)", "one"))
DETECT_EVERY_RANGE = (1, 120)
MAX_RECENT = 10


def default_record_dir() -> str:
    return str(Path.home() / "dmsl-recordings")


def default_runs_dir() -> str:
    return str(Path.home() / "dmsl-runs")


@dataclass
class AppSettings:
    weights: str = ""                 # "" = the shipped default model
    fallback_config: str = "dmsl-compact"  # untrained stand-in while no model is shipped
    device: str = "auto"
    threads: int = 0                  # torch CPU threads (0 = torch's default)
    tta: str = ""                     # test-time augmentation: "" = the model card's, "none", "flip-final", "flip"
    refine: str = ""                  # box refinement: "" = the model card's, "mb", "landmarks", "both"
    smoothing: bool = True
    reuse_box: bool = False           # face box from the previous frame's landmarks (skips M_b while tracking)
    faces: str = "every"              # "every": face detector + tracking; "one": M_b's single face per frame
    detect_every: int = 10            # with faces="every": frames between face detections
    mode: str = "auto"                # spectrum mode
    palette: str = "iron"
    points: bool = True
    contours: bool = True
    box: bool = True
    projected: bool = True
    temperatures: bool = True
    point_size: float = 5.0
    colour_groups: bool = True
    selector: dict = field(default_factory=dict)   # SpectrumSelector parameters (name -> value)
    record_dir: str = field(default_factory=default_record_dir)
    record_csv: bool = True
    record_json: bool = False
    record_video: bool = True
    runs_dir: str = field(default_factory=default_runs_dir)   # training runs (Train / Models tabs)
    train_form: dict = field(default_factory=dict)   # the Train tab's form (TrainPanel.form_state)

    def to_json(self) -> str:
        return json.dumps(configio.to_dict(self))

    @classmethod
    def from_json(cls, text: Optional[str]) -> "AppSettings":
        s = cls()
        if not text:
            return s
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            return s
        if not isinstance(data, dict):
            return s
        # saved by this or another version: what is not understood is dropped, the default stays
        s = configio.from_dict(cls, data, strict=False, where="settings")
        if s.mode not in MODES:
            s.mode = "auto"
        if s.palette not in PALETTES:
            s.palette = "iron"
        if s.tta not in (v for _, v in TTA_CHOICES):
            s.tta = ""
        if s.refine not in (v for _, v in REFINE_CHOICES):
            s.refine = ""
        if s.faces not in (v for _, v in FACES_CHOICES):
            s.faces = "every"
        s.detect_every = min(DETECT_EVERY_RANGE[1], max(DETECT_EVERY_RANGE[0], int(s.detect_every)))
        return s


class SettingsStore:
    """QSettings access: the app settings, recent sources, window geometry."""

    def __init__(self, qsettings: Optional[QtCore.QSettings] = None) -> None:
        self.q = qsettings if qsettings is not None else QtCore.QSettings("DMSL", "DMSL Studio")

    def load(self) -> AppSettings:
        return AppSettings.from_json(self.q.value("app/settings", "", type=str))

    def save(self, s: AppSettings) -> None:
        self.q.setValue("app/settings", s.to_json())
        self.q.sync()

    def recent(self) -> list[str]:
        try:
            v = json.loads(self.q.value("sources/recent", "[]", type=str) or "[]")
        except ValueError:
            return []
        return [str(x) for x in v if isinstance(x, str) and x.strip()][:MAX_RECENT] if isinstance(v, list) else []

    def add_recent(self, uri: str) -> list[str]:
        items = [uri] + [u for u in self.recent() if u != uri]
        items = items[:MAX_RECENT]
        self.q.setValue("sources/recent", json.dumps(items))
        self.q.sync()
        return items

    def clear_recent(self) -> None:
        self.q.setValue("sources/recent", "[]")

    def value(self, key: str, default: Any = None) -> Any:
        return self.q.value(key, default)

    def set_value(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)


def selector_parameters() -> dict[str, float]:
    """The spectrum selector's tunable thresholds and their defaults (empty if the module is absent)."""
    try:
        from dmsl_core import spectrum
    except ImportError:
        return {}
    cfg_cls = None
    for name in ("SelectorConfig", "SpectrumConfig", "SelectorParams", "Thresholds"):
        cfg_cls = getattr(spectrum, name, None)
        if cfg_cls is not None:
            break
    if cfg_cls is None or not dataclasses.is_dataclass(cfg_cls):
        return {}
    out = {}
    for f in dataclasses.fields(cfg_cls):
        try:
            v = getattr(cfg_cls(), f.name)
        except TypeError:
            return {}
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f.name] = v
    return out


class SettingsDialog(QtWidgets.QDialog):
    """Model/weights, device, smoothing, drawing options, selector thresholds, recording."""

    def __init__(self, s: AppSettings, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._orig = s
        tabs = QtWidgets.QTabWidget()

        # --- model
        w = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(w)
        self.weights = QtWidgets.QComboBox()
        self.weights.setEditable(True)
        self.weights.addItem("(shipped default model)", "")
        try:
            from dmsl_core.models.weights import shipped_models
            for name in shipped_models():
                self.weights.addItem(name, name)
        except Exception:  # noqa: BLE001 - no shipped list: the box keeps "default" and browsing  # pragma: no cover
            pass
        self._set_combo(self.weights, s.weights)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse_weights)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.weights, 1)
        row.addWidget(browse)
        form.addRow("Weights", row)
        hint = QtWidgets.QLabel("A run folder (model.safetensors), a .safetensors file or a shipped model name.")
        hint.setObjectName("Hint")
        hint.setWordWrap(True)
        form.addRow("", hint)
        self.fallback = QtWidgets.QComboBox()
        from dmsl_core.models import list_configs
        self.fallback.addItems(list_configs())
        self.fallback.setCurrentText(s.fallback_config)
        self.fallback.setToolTip("Used with random weights while no trained model is available")
        form.addRow("Untrained stand-in", self.fallback)
        self.device = QtWidgets.QComboBox()
        self.device.setEditable(True)
        for d in self._devices():
            self.device.addItem(d)
        self.device.setCurrentText(s.device)
        form.addRow("Device", self.device)
        self.threads = QtWidgets.QSpinBox()
        self.threads.setRange(0, os.cpu_count() or 64)
        self.threads.setSpecialValueText("default")
        self.threads.setValue(s.threads)
        form.addRow("CPU threads", self.threads)
        self.tta = self._choice_combo(
            TTA_CHOICES, s.tta,
            "The mirrored face is run too and the results are averaged. Final M_l pass only: one mirrored crop "
            "more per face, nearly all of the gain. Every pass: M_b's second pass and each M_l pass, 1.4-1.6x "
            "the time per frame (dmsl bench).")
        form.addRow("Test-time flip", self.tta)
        self.refine = self._choice_combo(
            REFINE_CHOICES, s.refine,
            "How the face box is refined before M_l's final pass. M_b twice: M_b again on a crop around its "
            "first box. M_l again: M_l on M_b's first box, then once more on the box of its own landmarks (same "
            "cost; worse when the face is small in the frame). Both: M_b twice, then M_l twice (the shipped "
            "model's default: held-out thermal NME 0.027 -> 0.024 against M_b twice; one forward more per "
            "frame, dmsl bench).")
        form.addRow("Box refinement", self.refine)
        self.smoothing = QtWidgets.QCheckBox("Smooth landmarks over time (live sources)")
        self.smoothing.setChecked(s.smoothing)
        form.addRow("", self.smoothing)
        self.faces = self._choice_combo(
            FACES_CHOICES, s.faces,
            "Every face: a face detector finds the faces (none is a result: the view says \"no face\"), "
            "tracking keeps each one's id from frame to frame and M_l places its 68 points; the readouts "
            "(temperatures, spectrum choice) follow the first face found. One face: M_b finds exactly one face "
            "in the whole frame, as before (faster; on a frame without a face it still places one).")
        form.addRow("Faces", self.faces)
        self.detect_every = QtWidgets.QSpinBox()
        self.detect_every.setRange(*DETECT_EVERY_RANGE)
        self.detect_every.setValue(s.detect_every)
        self.detect_every.setSuffix(" frames")
        self.detect_every.setToolTip("Between detections the faces are tracked (no detector runs); a lost face "
                                     "makes the next frame detect again. Fewer frames: new faces appear sooner, "
                                     "more time per frame.")
        form.addRow("Detect faces every", self.detect_every)
        # the explanation wraps in its own label: a checkbox's text never wraps, and a long one is cut off
        # when the dialog is narrower than its text (a small screen caps a dialog at 2/3 of its width)
        self.reuse_box = QtWidgets.QCheckBox("Track the face box between frames")
        self.reuse_box.setChecked(s.reuse_box)
        form.addRow("", self.reuse_box)
        self.reuse_hint = QtWidgets.QLabel("Faster: M_b is skipped while the face is tracked. One face only "
                                           "(every face is tracked anyway).")
        self.reuse_hint.setObjectName("Hint")
        self.reuse_hint.setWordWrap(True)
        form.addRow("", self.reuse_hint)
        self.faces.currentIndexChanged.connect(self._faces_changed)
        self._faces_changed()
        tabs.addTab(w, "Model")

        # --- drawing
        w = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(w)
        self.points = QtWidgets.QCheckBox("Points")
        self.contours = QtWidgets.QCheckBox("Contours (jaw, brows, nose, eyes, lips)")
        self.box = QtWidgets.QCheckBox("Face box")
        self.projected = QtWidgets.QCheckBox("Landmarks from the other spectrum (when registered)")
        self.temperatures = QtWidgets.QCheckBox("Temperatures at landmark regions (radiometric thermal)")
        self.colour_groups = QtWidgets.QCheckBox("Colour points by region")
        for cb, val in ((self.points, s.points), (self.contours, s.contours), (self.box, s.box),
                        (self.projected, s.projected), (self.temperatures, s.temperatures),
                        (self.colour_groups, s.colour_groups)):
            cb.setChecked(val)
            form.addRow("", cb)
        self.point_size = QtWidgets.QDoubleSpinBox()
        self.point_size.setRange(1.0, 20.0)
        self.point_size.setSingleStep(0.5)
        self.point_size.setValue(s.point_size)
        form.addRow("Point size", self.point_size)
        self.palette = QtWidgets.QComboBox()
        self.palette.addItems(PALETTES)
        self.palette.setCurrentText(s.palette)
        form.addRow("Thermal palette", self.palette)
        tabs.addTab(w, "Drawing")

        # --- spectrum selector
        w = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(w)
        self.selector_fields: dict[str, QtWidgets.QDoubleSpinBox] = {}
        params = selector_parameters()
        if not params:
            form.addRow(QtWidgets.QLabel("The spectrum selector has no tunable thresholds in this build."))
        for name, default in params.items():
            sb = QtWidgets.QDoubleSpinBox()
            sb.setDecimals(3 if isinstance(default, float) else 0)
            sb.setRange(-1e6, 1e6)
            sb.setSingleStep(0.01 if isinstance(default, float) and abs(default) < 2 else 1.0)
            sb.setValue(float(s.selector.get(name, default)))
            sb.setProperty("default", default)
            self.selector_fields[name] = sb
            form.addRow(name.replace("_", " "), sb)
        if params:
            reset = QtWidgets.QPushButton("Reset to defaults")
            reset.clicked.connect(lambda: [sb.setValue(float(sb.property("default")))
                                           for sb in self.selector_fields.values()])
            form.addRow("", reset)
        tabs.addTab(w, "Spectrum selector")

        # --- recording
        w = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(w)
        self.record_dir = QtWidgets.QLineEdit(s.record_dir)
        b = QtWidgets.QPushButton("Browse…")
        b.clicked.connect(self._browse_dir)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.record_dir, 1)
        row.addWidget(b)
        form.addRow("Output folder", row)
        self.record_csv = QtWidgets.QCheckBox("Landmarks as CSV")
        self.record_json = QtWidgets.QCheckBox("Landmarks as JSON lines")
        self.record_video = QtWidgets.QCheckBox("Overlay video (MP4)")
        for cb, val in ((self.record_csv, s.record_csv), (self.record_json, s.record_json),
                        (self.record_video, s.record_video)):
            cb.setChecked(val)
            form.addRow("", cb)
        tabs.addTab(w, "Recording")

        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(tabs)
        lay.addWidget(buttons)

    def _faces_changed(self, *_: object) -> None:
        every = self.faces.currentData() == "every"
        self.detect_every.setEnabled(every)
        # every face: the tracker places each face's box itself; the one-face box reuse does not apply
        self.reuse_box.setEnabled(not every)
        self.reuse_hint.setEnabled(not every)
        self.reuse_box.setToolTip("Only with one face (every face is tracked anyway)" if every else "")

    @staticmethod
    def _devices() -> list[str]:
        out = ["auto", "cpu"]
        try:
            import torch
            if torch.cuda.is_available():
                out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                out.append("mps")
        except Exception:  # noqa: BLE001 - a broken torch: the CPU is still offered  # pragma: no cover
            pass
        return out

    @staticmethod
    def _choice_combo(choices, value: str, tooltip: str) -> QtWidgets.QComboBox:
        """A combo of ``(label, value)`` choices with ``value`` selected (the first choice when it is
        not one of them)."""
        combo = QtWidgets.QComboBox()
        for label, data in choices:
            combo.addItem(label, data)
        combo.setCurrentIndex(max(0, combo.findData(value)))
        combo.setToolTip(tooltip)
        return combo

    @staticmethod
    def _set_combo(combo: QtWidgets.QComboBox, value: str) -> None:
        i = combo.findData(value)
        if i >= 0:
            combo.setCurrentIndex(i)
        else:
            combo.setEditText(value)

    def _browse_weights(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Model weights", "", "Weights (*.safetensors);;All files (*)")
        if path:
            self.weights.setEditText(path)

    def _browse_dir(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Recording folder", self.record_dir.text())
        if d:
            self.record_dir.setText(d)

    def result_settings(self) -> AppSettings:
        s = dataclasses.replace(self._orig)
        i = self.weights.currentIndex()
        text = self.weights.currentText().strip()
        s.weights = "" if (i >= 0 and self.weights.itemText(i) == text and self.weights.itemData(i) == "") else (
            self.weights.itemData(i) if i >= 0 and self.weights.itemText(i) == text else text)
        s.fallback_config = self.fallback.currentText()
        s.device = self.device.currentText().strip() or "auto"
        s.threads = self.threads.value()
        s.tta = self.tta.currentData() or ""
        s.refine = self.refine.currentData() or ""
        s.smoothing = self.smoothing.isChecked()
        s.reuse_box = self.reuse_box.isChecked()
        s.faces = self.faces.currentData() or "every"
        s.detect_every = self.detect_every.value()
        s.points, s.contours, s.box = self.points.isChecked(), self.contours.isChecked(), self.box.isChecked()
        s.projected, s.temperatures = self.projected.isChecked(), self.temperatures.isChecked()
        s.colour_groups = self.colour_groups.isChecked()
        s.point_size = self.point_size.value()
        s.palette = self.palette.currentText()
        s.selector = {name: (sb.value() if isinstance(sb.property("default"), float) else int(sb.value()))
                      for name, sb in self.selector_fields.items()}
        s.record_dir = self.record_dir.text().strip() or default_record_dir()
        s.record_csv, s.record_json = self.record_csv.isChecked(), self.record_json.isChecked()
        s.record_video = self.record_video.isChecked()
        return s
