"""The Train tab: runs ``dmsl train`` as a subprocess and shows its progress live.

Training runs in a child process (``python -m dmsl_core.cli train ... --events-jsonl``), driven by
a :class:`QtCore.QProcess`: the Qt thread only reads one JSON event per line from its stdout
(``TrainEvent``: start / phase_start / step / epoch / phase_end / status / done / cancelled), so
the window stays responsive, and a crash of the training (out of memory, a killed process) cannot
take the app down. Everything lives in the run folder (``config.json``, ``metrics.jsonl``,
``checkpoints/last.pt``), so a stopped, cancelled or crashed run is resumed from its folder.

- **Stop stage early** writes ``RUN/STOP_EARLY``: the current stage ends at its best epoch so far
  and training goes on with the next stage (the M_l head still gets trained, so the run ends
  with a usable model).
- **Cancel** writes ``RUN/CANCEL`` and sends SIGTERM (the process stops after the current step,
  ``last.pt`` holds the last finished epoch); if the process has not ended after
  ``CANCEL_KILL_MS`` it is killed.
- **Resume** runs ``dmsl train --resume --out RUN``: it continues from ``last.pt``.

No training logic here: the panel builds the command line and draws the events.
"""
from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import CV_FILE, cv_summary, is_cv_folder, read_metrics, run_status
from dmsl_core.training import TrainConfig, event_from_dict, request_stop

from .panel_common import MessageStrip, fmt_eta, fmt_num, path_row, title
from .views import SpectrumView
from .workers import FunctionWorker, WorkerHandle, start_worker

MODEL_NAMES = {"boundary": "M_b", "landmark": "M_l"}
CANCEL_KILL_MS = 20000
N_PREVIEW = 4
SPECTRA_CHOICES = {"both (visible + thermal)": "both", "thermal only": "th", "visible only": "vis"}


@dataclass
class TrainOptions:
    """What the form holds; :func:`train_command` turns it into a ``dmsl train`` command line."""

    data: str = ""
    out: str = ""
    config: str = "dmsl-fast"
    models: str = "both"
    stages: tuple[int, ...] = (1, 2)
    epochs: int = 30
    head_epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    head_lr: float = 1e-3
    joint_epochs: int = 20     # stage 3 (ours): U-Net + head together
    joint_lr: float = 2e-4
    box_jitter: float = 0.0
    spectra: str = "both"
    augment: bool = True
    mirror: bool = True
    fold: Optional[int] = 0
    device: str = "auto"
    threads: int = 0
    init: str = ""
    cv_folds: int = 0          # > 0: cross-validation, every fold in sequence (``dmsl cv``)
    processes: int = 1         # > 1: one run under torchrun with this many local processes (DDP)
    extra: list = field(default_factory=list)


def cli_prefix() -> list[str]:
    """How to start the ``dmsl`` command: this interpreter with ``-m dmsl_core.cli`` (works from an
    editable install and a source checkout alike, and uses the same environment as the app)."""
    return [sys.executable, "-m", "dmsl_core.cli"]


N_FOLDS = 10        # the paper's protocol, as dmsl train --fold uses it
MIN_CV_FOLDS = 4    # 1 test + 2 validation groups + 1 training group


@dataclass
class DatasetInfo:
    """What the Train tab shows of a chosen dataset folder and which splits fit it."""

    path: str
    n_subjects: int = 0
    n_vis: int = 0
    n_th: int = 0
    n_annotated: int = 0
    folds_fit: bool = False       # the 10-fold protocol can be made (--fold k)
    max_cv_folds: int = 0         # the most cross-validation folds the subjects make
    error: str = ""

    def text(self) -> str:
        if self.error:
            return self.error
        split = (f"the paper's {N_FOLDS}-fold split fits (Fold 0-{N_FOLDS - 1})" if self.folds_fit else
                 f"too few subjects for {N_FOLDS} folds: no fold (every 5th subject validates)")
        return (f"{self.n_subjects} subject{'s' if self.n_subjects != 1 else ''} · {self.n_vis} visible, "
                f"{self.n_th} thermal images · {self.n_annotated} annotated pairs\n{split}")


def dataset_info(path: str) -> DatasetInfo:
    """Subjects and images per spectrum of a dataset folder, and whether the fold split fits it (the
    library's own split functions decide: a ``splits.json`` with 10 folds, or enough subjects)."""
    from dmsl_core.data.folder import DatasetError, read_manifest
    from dmsl_core.data.splits import fold_subjects

    info = DatasetInfo(path=path)
    try:
        recs = read_manifest(path)
    except (DatasetError, OSError, ValueError) as exc:
        info.error = f"{path}: {exc}" if path not in str(exc) else str(exc)
        return info
    subjects = {r.subject for r in recs}
    info.n_subjects = len(subjects)
    info.n_vis = sum(1 for r in recs if r.vis)
    info.n_th = sum(1 for r in recs if r.th)
    info.n_annotated = sum(1 for r in recs if r.landmarks or r.th_landmarks)
    try:
        fold_subjects(path, 0, N_FOLDS)
        info.folds_fit = True
    except (ValueError, DatasetError):
        info.folds_fit = False
    info.max_cv_folds = info.n_subjects if info.n_subjects >= MIN_CV_FOLDS else 0
    return info


def train_command(o: TrainOptions, resume: bool = False) -> list[str]:
    """``dmsl train`` (or ``dmsl cv`` when ``o.cv_folds``) with ``--events-jsonl``."""
    cmd = cli_prefix() + ["cv" if o.cv_folds else "train", "--data", o.data, "--out", o.out, "--events-jsonl"]
    if o.threads:
        cmd += ["--threads", str(int(o.threads))]
    if o.device:
        cmd += ["--device", o.device]
    if resume:
        return _maybe_torchrun(cmd + ["--resume"], o)
    cmd += ["--config", o.config, "--models", o.models, "--stages", ",".join(map(str, o.stages)),
            "--epochs", str(int(o.epochs)), "--head-epochs", str(int(o.head_epochs)),
            "--batch-size", str(int(o.batch_size)), "--lr", repr(float(o.lr)), "--head-lr", repr(float(o.head_lr)),
            "--spectra", o.spectra]
    if 3 in o.stages:
        cmd += ["--joint-epochs", str(int(o.joint_epochs)), "--joint-lr", repr(float(o.joint_lr))]
    if o.box_jitter > 0:
        cmd += ["--box-jitter", repr(float(o.box_jitter))]
    if not o.augment:
        cmd.append("--no-augment")
    if not o.mirror:
        cmd.append("--no-mirror")
    if o.cv_folds:
        cmd += ["--folds", str(int(o.cv_folds))]
    elif o.fold is not None:
        cmd += ["--fold", str(int(o.fold))]
    if o.init:
        cmd += ["--init", o.init]
    return _maybe_torchrun(cmd + list(o.extra), o)


def _maybe_torchrun(cmd: list[str], o: TrainOptions) -> list[str]:
    """``dmsl train`` with ``o.processes`` > 1 runs under torchrun (DDP, gloo on CPUs, NCCL on GPUs);
    only rank 0 prints the JSON events, so the panel reads them as from one process."""
    if o.processes <= 1 or o.cv_folds:
        return cmd
    from dmsl_core.distributed import torchrun_command
    n = len(cli_prefix())
    return torchrun_command(cmd[n + 1:], int(o.processes), command=cmd[n])


def default_config_name() -> str:
    """The compact configuration with a GPU; the fast one on a CPU (``dmsl-compact`` needs minutes
    per epoch there, see the README's speed table)."""
    try:
        import torch
        if torch.cuda.is_available():
            return "dmsl-compact"
    except Exception:  # noqa: BLE001
        pass
    return "dmsl-fast"


class EpochAxis(pg.AxisItem):
    """An epoch axis: whole epochs only (no 0.5, 1.5 ...), no SI prefix."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        out = []
        for spacing, ticks in super().tickValues(minVal, maxVal, size):
            if spacing >= 1:
                out.append((spacing, [t for t in ticks if abs(t - round(t)) < 1e-6]))
        if not out or not any(t for _, t in out):
            lo, hi = math.ceil(minVal), math.floor(maxVal)
            out = [(1.0, [float(v) for v in range(lo, hi + 1)][:50])]
        return out

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [str(int(round(v))) for v in values]


class ValueAxis(pg.AxisItem):
    """A y axis that writes plain numbers (0.002, 0.05, 3) on linear and log scales: no "(x0.001)"
    SI prefix in the label, no "7·10²" tick labels."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        # log scale: 1, 2, 5 x 10^k inside the range (every 1..9 x 10^k when that gives fewer than 3)
        lo, hi = min(minVal, maxVal), max(minVal, maxVal)
        ks = range(int(math.floor(lo)) - 1, int(math.ceil(hi)) + 1)
        for mult in ((1, 2, 5), tuple(range(1, 10))):
            vals = [math.log10(m) + k for k in ks for m in mult if lo <= math.log10(m) + k <= hi]
            if len(vals) >= 3:
                break
        if len(vals) > max(3, int(size / 22)):   # about one label per 22 px
            vals = [v for v in vals if abs(v - round(v)) < 1e-9] or vals[::2]
        return [(1.0, vals)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if self.logMode:
            return self.logTickStrings(values, scale, spacing)
        return [f"{v * scale:.3g}" for v in values]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802
        return [f"{10 ** float(v):.3g}" for v in values]


class ReservedStrip(MessageStrip):
    """A message strip that keeps its height while hidden (the layout below never moves) and shows a
    long message in ``lines`` lines, the whole text in its tooltip."""

    def __init__(self, lines: int = 2, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        m = self.layout().contentsMargins()
        text_h = self.label.fontMetrics().lineSpacing() * lines
        self.label.setFixedHeight(text_h)           # more lines are cut at a line's end (whole text: tooltip)
        self.label.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        self.setFixedHeight(text_h + m.top() + m.bottom() + 2)
        sp = self.sizePolicy()
        sp.setRetainSizeWhenHidden(True)
        self.setSizePolicy(sp)

    def show_message(self, text: str, level: str = "error") -> None:
        super().show_message(text, level)
        self.setToolTip(text)


class GenerateDialog(QtWidgets.QDialog):
    """Generate a synthetic dataset (``dmsl synth``) into a folder."""

    def __init__(self, folder: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate a synthetic dataset")
        form = QtWidgets.QFormLayout(self)
        self.folder = QtWidgets.QLineEdit(folder)
        self.subjects = QtWidgets.QSpinBox()
        self.subjects.setRange(1, 1000)
        self.subjects.setValue(20)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 1_000_000)
        form.addRow("Folder", self.folder)
        form.addRow("Subjects (21 image pairs each)", self.subjects)
        form.addRow("Seed", self.seed)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)


def _generate(out: str, subjects: int, seed: int, variations=None, worker=None) -> dict:
    from dmsl_core.data.synth import generate_dataset
    out_p = Path(out)
    if out_p.exists() and any(out_p.iterdir()):
        raise ValueError(f"{out}: folder is not empty; choose a new folder for the generated dataset")

    def progress(done: int, total: int) -> None:
        worker.progress.emit((done, total))
        worker.check_stop()
    return generate_dataset(out, subjects=subjects, seed=seed, variations=variations, progress=progress)


class TrainPanel(QtWidgets.QWidget):
    """The Train tab. ``runs_dir``: where new runs go by default."""

    runFinished = QtCore.Signal(str)      # run folder of a finished training (weights written)
    runsChanged = QtCore.Signal()         # a run was created / changed (the Models tab refreshes)
    eventReceived = QtCore.Signal(object)  # every TrainEvent (tests)

    def __init__(self, runs_dir: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.process: Optional[QtCore.QProcess] = None
        self.state = "idle"            # idle | running | done | cancelled | crashed | failed
        self.run_dir = ""
        self.records: list[dict] = []   # epoch records, as in metrics.jsonl
        self.events: list = []          # recent non-step events
        self.n_steps = 0                # step events received
        self.stderr_tail: list[str] = []
        self.error_text = ""
        self.weights = ""
        self._out_buf = b""
        self._cancel_requested = False
        self._bars: dict[int, QtWidgets.QProgressBar] = {}
        self._phases: list[tuple[str, int]] = []
        self._gen_handle: Optional[WorkerHandle] = None
        self.cv_mode = False
        self.fold_dir = ""
        self.cv_summary: Optional[dict] = None
        self._preview_handle: Optional[WorkerHandle] = None
        self._preview_pending = False
        self.previews_shown = 0
        self._kill_timer = QtCore.QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self._build()
        self._update_buttons()

    # ---- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        from dmsl_core.models import get_config, list_configs

        outer = QtWidgets.QHBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        left = QtWidgets.QFrame()
        left.setObjectName("Panel")
        left.setMinimumWidth(400)   # the Fold box's "no fold (every 5th subject validates)" whole
        left.setMaximumWidth(440)
        ll = QtWidgets.QVBoxLayout(left)
        ll.addWidget(title("Training run"))
        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignRight)
        self.data_edit = QtWidgets.QLineEdit()
        self.data_edit.setPlaceholderText("dataset folder (manifest.csv)")
        b_data = QtWidgets.QPushButton("…")
        b_data.setToolTip("Choose a dataset folder")
        b_data.clicked.connect(lambda: self._browse_dir(self.data_edit, "Dataset folder"))
        self.gen_btn = QtWidgets.QPushButton("Generate…")
        self.gen_btn.setToolTip("Generate a synthetic dataset (dmsl synth) and use it")
        self.gen_btn.clicked.connect(self.generate_dialog)
        form.addRow("Dataset", path_row(self.data_edit, b_data, self.gen_btn))
        self.data_info = QtWidgets.QLabel("")
        self.data_info.setObjectName("Dim")
        self.data_info.setWordWrap(True)
        self.data_info.setMinimumHeight(self.data_info.fontMetrics().lineSpacing() * 3 + 4)   # not squeezed
        self.data_info.hide()
        form.addRow(self.data_info)   # both columns: "N subjects · images per spectrum", then the split
        self.dataset: Optional[DatasetInfo] = None
        self.config_box = QtWidgets.QComboBox()
        for name in list_configs():
            self.config_box.addItem(name)
            self.config_box.setItemData(self.config_box.count() - 1, get_config(name).description,
                                        QtCore.Qt.ToolTipRole)
        self.config_box.setCurrentText(default_config_name())
        form.addRow("Configuration", self.config_box)
        self.models_box = QtWidgets.QComboBox()
        for label, v in (("both (M_b then M_l)", "both"), ("M_b (boundary) only", "boundary"),
                         ("M_l (landmarks) only", "landmark")):
            self.models_box.addItem(label, v)
        form.addRow("Models", self.models_box)
        st, (self.stage1, self.stage2, self.stage3) = self._check_row(
            ("1: U-Net", True), ("2: head", True), ("3: joint", False))   # short: the form column is narrow
        self.stage1.setToolTip("The paper's stage 1: the U-Net alone, pixel-wise BCE on the mask (M_b: the face "
                               "box; M_l: Algorithm 1's landmark glow)")
        self.stage2.setToolTip("The paper's stage 2: the U-Net frozen, the fully connected head trained on eq. 1 / 2")
        self.stage3.setToolTip("Ours, not the paper's: U-Net and head trained together on the point / box "
                               "distance after the two paper stages (or alone, after Init from)")
        form.addRow("Stages", st)
        self.epochs = self._spin(1, 10000, 30)
        self.head_epochs = self._spin(1, 10000, 30)
        self.joint_epochs = self._spin(1, 10000, 20)
        self.batch = self._spin(1, 4096, 16)
        form.addRow("U-Net epochs", self.epochs)
        form.addRow("Head epochs", self.head_epochs)
        form.addRow("Joint epochs", self.joint_epochs)
        self.stage3.toggled.connect(self.joint_epochs.setEnabled)
        self.joint_epochs.setEnabled(False)
        form.addRow("Batch size", self.batch)
        self.lr = QtWidgets.QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-3)
        form.addRow("Learning rate", self.lr)
        self.spectra_box = QtWidgets.QComboBox()
        for label, v in SPECTRA_CHOICES.items():
            self.spectra_box.addItem(label, v)
        self.spectra_box.setToolTip("The paper found that training on both spectra helps thermal")
        form.addRow("Spectra", self.spectra_box)
        aug, (self.augment, self.mirror) = self._check_row(("augmentation", True), ("mirrored copies", True))
        form.addRow("Data", aug)
        self.box_jitter = QtWidgets.QDoubleSpinBox()
        self.box_jitter.setDecimals(3)
        self.box_jitter.setRange(0.0, 0.3)
        self.box_jitter.setSingleStep(0.01)
        self.box_jitter.setSpecialValueText("off (exact box)")
        self.box_jitter.setToolTip("M_l: std of the error of the box its training input is blacked out with, as a "
                                   "fraction of the box (M_b's boxes are not exact at inference; 0.03 suits M_b's)")
        form.addRow("Blackout box jitter", self.box_jitter)
        self.fold = QtWidgets.QSpinBox()
        self.fold.setRange(-1, N_FOLDS - 1)
        self.fold.setValue(0)
        self.fold.setSpecialValueText("no fold (every 5th subject validates)")
        self.fold.setToolTip("Fold k of the paper's 10-fold protocol: group k tests, the next two validate, "
                             "the rest train. Lowest value: no test split, every 5th subject validates.")
        form.addRow("Fold", self.fold)
        cvw = QtWidgets.QWidget()
        cvl = QtWidgets.QHBoxLayout(cvw)
        cvl.setContentsMargins(0, 0, 0, 0)
        self.cv_check = QtWidgets.QCheckBox("every fold, in sequence")
        self.cv_check.setToolTip("Cross-validation: train fold 0, 1, ... each into RUN/fold-K, with a table of "
                                 "the per-fold test NME and the mean; resumable fold by fold")
        self.cv_folds = self._spin(4, 50, 10)
        self.cv_folds.setSuffix(" folds")
        self.cv_check.toggled.connect(lambda on: self.fold.setEnabled(not on))
        cvl.addWidget(self.cv_check)
        cvl.addWidget(self.cv_folds)
        form.addRow("Cross-validation", cvw)
        self.device_box = QtWidgets.QComboBox()
        self.device_box.setEditable(True)
        self.device_box.addItems(["auto", "cpu", "cuda", "mps"])
        form.addRow("Device", self.device_box)
        self.data_edit.textChanged.connect(self._dataset_changed)
        self.threads = self._spin(0, 256, 0)
        self.threads.setSpecialValueText("torch default")
        form.addRow("CPU threads", self.threads)
        self.processes = self._spin(1, 64, 1)
        self.processes.setToolTip("local processes for one run: more than 1 runs dmsl train under torchrun "
                                  "(DistributedDataParallel; the batch size stays the global batch). "
                                  "Cross-validation runs its folds one after another in one process.")
        form.addRow("Processes", self.processes)
        self.out_edit = QtWidgets.QLineEdit()
        self.out_edit.setPlaceholderText("run folder (created; empty = a new one under the runs folder)")
        self.out_edit.textChanged.connect(lambda _: self._update_buttons())
        b_out = QtWidgets.QPushButton("…")
        b_out.clicked.connect(lambda: self._browse_dir(self.out_edit, "Run folder"))
        form.addRow("Run folder", path_row(self.out_edit, b_out))
        ll.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        self.start_btn = QtWidgets.QPushButton("Start")
        self.start_btn.clicked.connect(lambda: self.start())
        self.early_btn = QtWidgets.QPushButton("Stop stage early")
        self.early_btn.setToolTip("End the current stage at its best epoch so far and go on with the next")
        self.early_btn.clicked.connect(self.stop_early)
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop now; the run can be resumed from its last finished epoch")
        self.cancel_btn.clicked.connect(self.cancel)
        self.resume_btn = QtWidgets.QPushButton("Resume")
        self.resume_btn.setToolTip("Continue the run in the run folder from its last checkpoint")
        self.resume_btn.clicked.connect(lambda: self.resume())
        for b in (self.start_btn, self.early_btn, self.cancel_btn, self.resume_btn):
            row.addWidget(b)
        ll.addLayout(row)
        ll.addStretch(1)

        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.message = ReservedStrip(lines=2)   # a finished / cancelled banner does not move the chart
        rl.addWidget(self.message)
        info = QtWidgets.QFrame()
        info.setObjectName("Panel")
        il = QtWidgets.QVBoxLayout(info)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(title("Progress"))
        head.addStretch(1)
        self.state_label = QtWidgets.QLabel("idle")
        self.device_label = QtWidgets.QLabel("device: —")
        self.speed_label = QtWidgets.QLabel("— img/s")
        self.eta_label = QtWidgets.QLabel("ETA --")
        for w in (self.state_label, self.device_label, self.speed_label, self.eta_label):
            w.setObjectName("Dim")
            head.addSpacing(12)
            head.addWidget(w)
        il.addLayout(head)
        self.bars_box = QtWidgets.QGridLayout()
        self.bars_box.setVerticalSpacing(2)
        il.addLayout(self.bars_box)
        rl.addWidget(info)
        self.cv_frame = QtWidgets.QFrame()
        self.cv_frame.setObjectName("Panel")
        cfl = QtWidgets.QVBoxLayout(self.cv_frame)
        cfl.addWidget(title("Cross-validation: test NME per fold"))
        self.cv_table = QtWidgets.QTableWidget(0, 6)
        self.cv_table.setHorizontalHeaderLabels(["fold", "status", "NME TH", "NME VIS", "NME all", "test images"])
        self.cv_table.verticalHeader().setVisible(False)
        self.cv_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.cv_table.setMaximumHeight(200)
        cfl.addWidget(self.cv_table)
        self.cv_frame.hide()
        rl.addWidget(self.cv_frame)

        plots = QtWidgets.QFrame()
        plots.setObjectName("Panel")
        pl = QtWidgets.QVBoxLayout(plots)
        ph = QtWidgets.QHBoxLayout()
        ph.addWidget(title("Training monitor"))
        ph.addStretch(1)
        # the key sits above the chart, not in it: a legend inside covered the last stages' curves
        self.loss_key = QtWidgets.QLabel(
            "<span style='color:#f5a623'>&#9472;&#9472;</span> training loss &nbsp; "
            "<span style='color:#4fc3f7'>&#9472;&#9472;</span> validation loss &nbsp; "
            "&#9733; best epoch of each stage &nbsp; "
            "<span style='color:#81c784'>&#9472;&#9472;</span> validation NME &nbsp; "
            "<span style='color:#ffd54f'>&#9474;</span> best validation NME")
        self.loss_key.setObjectName("Dim")
        ph.addWidget(self.loss_key)
        ph.addSpacing(12)
        self.log_check = QtWidgets.QCheckBox("log scale")
        self.log_check.setChecked(True)
        self.log_check.toggled.connect(self._set_log)
        ph.addWidget(self.log_check)
        pl.addLayout(ph)
        # one chart, as SLEAP's training monitor: loss above, validation NME below, one epoch axis
        self.chart = pg.GraphicsLayoutWidget()
        self.chart.setBackground(None)
        self.chart.setMinimumHeight(320)
        self.chart.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
        self.loss_plot = self.chart.addPlot(row=0, col=0, axisItems={"bottom": EpochAxis("bottom"),
                                                                      "left": ValueAxis("left")})
        self.nme_plot = self.chart.addPlot(row=1, col=0, axisItems={"bottom": EpochAxis("bottom"),
                                                                     "left": ValueAxis("left")})
        self.chart.ci.layout.setRowStretchFactor(0, 3)
        self.chart.ci.layout.setRowStretchFactor(1, 2)
        self.nme_plot.setXLink(self.loss_plot)
        for plot, label in ((self.loss_plot, "loss"), (self.nme_plot, "val NME")):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
            plot.getAxis("left").setWidth(62)      # both y axes as wide: the epochs line up
            plot.setMenuEnabled(False)
        self.loss_plot.getAxis("bottom").setStyle(showValues=False)   # the NME plot below carries the epochs
        self.nme_plot.setLabel("bottom", "epoch (all stages in order)")
        self.train_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#f5a623", width=2), name="training loss",
                                               connect="finite")
        self.val_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="validation loss",
                                             connect="finite")
        self.best_marks = self.loss_plot.plot([], [], pen=None, symbol="star", symbolSize=14,
                                              symbolBrush=pg.mkBrush("#ffffff"), symbolPen=pg.mkPen("#1b1d21"),
                                              name="best epoch of each stage")
        self.nme_curve = self.nme_plot.plot([], [], pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=5,
                                            symbolBrush="#81c784", name="validation NME", connect="finite")
        self.best_nme_mark = self.nme_plot.plot([], [], pen=None, symbol="star", symbolSize=16,
                                                symbolBrush=pg.mkBrush("#ffd54f"), symbolPen=pg.mkPen("#1b1d21"),
                                                name="best validation NME")
        self.best_lines = []
        for plot in (self.loss_plot, self.nme_plot):   # the best epoch, through both panels
            ln = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffd54f", width=1, style=QtCore.Qt.DotLine))
            ln.setVisible(False)
            plot.addItem(ln)
            self.best_lines.append(ln)
        self.best_label = QtWidgets.QLabel("best validation NME: after the first M_l epoch")
        self.best_label.setObjectName("Dim")
        self.best_epoch: Optional[int] = None   # x (epoch over all stages) of the lowest validation NME
        self._phase_lines: list = []
        chart_col = QtWidgets.QVBoxLayout()
        chart_col.addWidget(self.chart, 1)
        chart_col.addWidget(self.best_label)
        # validation images and the log share the space beside the chart (one at a time)
        self.lower_tabs = QtWidgets.QTabWidget()
        pw = QtWidgets.QWidget()
        pwl = QtWidgets.QVBoxLayout(pw)
        pwl.setContentsMargins(0, 4, 0, 0)
        self.preview_label = QtWidgets.QLabel("after the first epoch")
        self.preview_label.setObjectName("Dim")
        self.preview_label.setWordWrap(True)
        self.preview_label.setMinimumHeight(self.preview_label.fontMetrics().lineSpacing() * 4 + 2)
        self.preview_label.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        pwl.addWidget(self.preview_label)
        grid = QtWidgets.QGridLayout()   # 2 x 2 beside the chart
        grid.setSpacing(4)
        self.preview_views = []
        for i in range(N_PREVIEW):
            v = SpectrumView(f"#{i + 1}")
            v.setMinimumSize(150, 150)   # title, image and readout line
            v.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Ignored)   # the tab never scrolls
            grid.addWidget(v, i // 2, i % 2)
            self.preview_views.append(v)
        pwl.addLayout(grid, 1)
        self.lower_tabs.addTab(pw, "Validation images")
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.lower_tabs.addTab(self.log_view, "Log")
        self.lower_tabs.setMinimumWidth(330)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(chart_col, 3)
        body.addWidget(self.lower_tabs, 2)
        pl.addLayout(body, 1)
        rl.addWidget(plots, 1)
        self._set_log(True)

        outer.addWidget(left)
        outer.addWidget(right, 1)

    @staticmethod
    def _spin(lo: int, hi: int, v: int) -> QtWidgets.QSpinBox:
        s = QtWidgets.QSpinBox()
        s.setRange(lo, hi)
        s.setValue(v)
        return s

    @staticmethod
    def _check_row(*boxes: tuple[str, bool]) -> tuple[QtWidgets.QWidget, list[QtWidgets.QCheckBox]]:
        """A row of check boxes ((label, checked), ...) for one form row."""
        row = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        out = []
        for label, checked in boxes:
            cb = QtWidgets.QCheckBox(label)
            cb.setChecked(checked)
            lay.addWidget(cb)
            out.append(cb)
        return row, out

    def _dataset_changed(self, text: str = "") -> None:
        """Show the chosen dataset's size and offer only the splits that fit it."""
        path = (text or self.data_edit.text()).strip()
        info = dataset_info(path) if path and (Path(path) / "manifest.csv").is_file() else None
        self.dataset = info
        self.data_info.setVisible(info is not None)
        if info is None:
            self.data_info.setText("")
            self.fold.setRange(-1, N_FOLDS - 1)
            self.cv_check.setEnabled(True)
            self.cv_folds.setRange(MIN_CV_FOLDS, 50)
            return
        self.data_info.setText(info.text())
        if info.folds_fit:
            self.fold.setRange(-1, N_FOLDS - 1)
            self.fold.setToolTip(f"Fold k of the paper's {N_FOLDS}-fold protocol: group k tests, the next two "
                                 "validate, the rest train. Lowest value: no test split, every 5th subject validates.")
        else:
            self.fold.setRange(-1, -1)   # only "no fold" fits
            self.fold.setToolTip(f"{info.n_subjects} subject(s) cannot make the paper's {N_FOLDS}-fold split: "
                                 "every 5th subject validates, none tests")
        ok_cv = info.max_cv_folds >= MIN_CV_FOLDS
        if not ok_cv:
            self.cv_check.setChecked(False)
        self.cv_check.setEnabled(ok_cv)
        self.cv_folds.setRange(MIN_CV_FOLDS, max(MIN_CV_FOLDS, min(50, info.max_cv_folds)))
        self.cv_check.setToolTip(("Cross-validation: train fold 0, 1, ... each into RUN/fold-K, with a table of "
                                  "the per-fold test NME and the mean; resumable fold by fold") if ok_cv else
                                 f"{info.n_subjects} subject(s): cross-validation needs at least {MIN_CV_FOLDS}")

    def _browse_dir(self, edit: QtWidgets.QLineEdit, caption: str) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, caption, edit.text() or str(Path.home()))
        if d:
            edit.setText(d)

    # ---- options ---------------------------------------------------------------------------------
    def options(self) -> TrainOptions:
        stages = tuple(s for s, c in ((1, self.stage1), (2, self.stage2), (3, self.stage3)) if c.isChecked())
        return TrainOptions(data=self.data_edit.text().strip(), out=self.out_edit.text().strip(),
                            config=self.config_box.currentText(), models=self.models_box.currentData(),
                            stages=stages, epochs=self.epochs.value(), head_epochs=self.head_epochs.value(),
                            joint_epochs=self.joint_epochs.value(), box_jitter=self.box_jitter.value(),
                            batch_size=self.batch.value(), lr=self.lr.value(), head_lr=self.lr.value(),
                            spectra=self.spectra_box.currentData(), augment=self.augment.isChecked(),
                            mirror=self.mirror.isChecked(),
                            fold=None if self.fold.value() < 0 else self.fold.value(),
                            device=self.device_box.currentText().strip() or "auto", threads=self.threads.value(),
                            cv_folds=self.cv_folds.value() if self.cv_check.isChecked() else 0,
                            processes=self.processes.value())

    def set_options(self, o: TrainOptions) -> None:
        self.data_edit.setText(o.data)
        self.out_edit.setText(o.out)
        self.config_box.setCurrentText(o.config)
        self.models_box.setCurrentIndex(max(0, self.models_box.findData(o.models)))
        self.stage1.setChecked(1 in o.stages)
        self.stage2.setChecked(2 in o.stages)
        self.stage3.setChecked(3 in o.stages)
        self.epochs.setValue(o.epochs)
        self.head_epochs.setValue(o.head_epochs)
        self.joint_epochs.setValue(o.joint_epochs)
        self.box_jitter.setValue(o.box_jitter)
        self.batch.setValue(o.batch_size)
        self.lr.setValue(o.lr)
        self.spectra_box.setCurrentIndex(max(0, self.spectra_box.findData(o.spectra)))
        self.augment.setChecked(o.augment)
        self.mirror.setChecked(o.mirror)
        self.fold.setValue(-1 if o.fold is None else o.fold)
        self.device_box.setCurrentText(o.device)
        self.threads.setValue(o.threads)
        self.cv_check.setChecked(bool(o.cv_folds))
        if o.cv_folds:
            self.cv_folds.setValue(o.cv_folds)
        self.processes.setValue(max(1, int(o.processes)))

    # ---- remembered between sessions (AppSettings.train_form) ------------------------------------
    REMEMBERED = ("data", "config", "models", "stages", "epochs", "head_epochs", "joint_epochs", "batch_size", "lr",
                  "box_jitter", "spectra", "augment", "mirror", "fold", "device", "threads", "cv_folds", "processes")

    def form_state(self) -> dict:
        """The form as a JSON-able dict (not the run folder: each Start makes a new one by default)."""
        o = self.options()
        return {k: (list(getattr(o, k)) if k == "stages" else getattr(o, k)) for k in self.REMEMBERED}

    def restore_form(self, state: Optional[dict]) -> None:
        """Fill the form from :meth:`form_state`'s dict; a value of the wrong type is ignored, a dataset
        folder that no longer exists is dropped (the field stays empty)."""
        if not isinstance(state, dict):
            return
        o = self.options()
        for k in self.REMEMBERED:
            if k not in state:
                continue
            v, cur = state[k], getattr(o, k)
            if k == "fold":
                ok = v is None or (isinstance(v, int) and not isinstance(v, bool))
            elif k == "stages":
                ok = isinstance(v, list) and all(x in (1, 2, 3) for x in v)
                v = tuple(v) if ok else v
            elif isinstance(cur, bool):
                ok = isinstance(v, bool)
            elif isinstance(cur, (int, float)):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                v = type(cur)(v) if ok else v
            else:
                ok = isinstance(v, str)
            if ok:
                setattr(o, k, v)
        if o.data and not Path(o.data).is_dir():
            o.data = ""
        if self.config_box.findText(o.config) < 0:
            o.config = self.config_box.currentText()
        o.out = self.out_edit.text().strip()
        self.set_options(o)

    # ---- generating a dataset -------------------------------------------------------------------
    def generate_dialog(self) -> None:
        base = Path(self.runs_dir or Path.home()).parent / "dmsl-data" / "synth"
        dlg = GenerateDialog(str(base), self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            self.generate(dlg.folder.text().strip(), dlg.subjects.value(), dlg.seed.value())

    def generate(self, out: str, subjects: int, seed: int = 0, variations=None) -> WorkerHandle:
        """Generate a synthetic dataset on a worker thread; the dataset field is set when done."""
        self.gen_btn.setEnabled(False)
        self.message.show_message(f"Generating {subjects} subjects into {out} …", "info")

        def done(summary: dict) -> None:
            self.data_edit.setText(out)
            self.message.show_message(f"Generated {summary['pairs']} image pairs ({summary['subjects']} subjects) "
                                      f"in {summary['seconds']:.1f} s: {out}", "info")

        def progress(p) -> None:
            self.state_label.setText(f"generating {p[0]}/{p[1]}")

        def finished() -> None:
            self.gen_btn.setEnabled(True)
            self.state_label.setText(self.state)

        self._gen_handle = start_worker(FunctionWorker(_generate, out, subjects, seed, variations, pass_worker=True),
                                        "dmsl-synth", on_result=done, on_progress=progress,
                                        on_error=lambda m: self.message.show_message(f"Generating failed: {m}"),
                                        on_finished=finished, parent=self, collect=True)
        return self._gen_handle

    # ---- running ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QtCore.QProcess.NotRunning

    def _new_run_dir(self, o: TrainOptions) -> str:
        root = Path(self.runs_dir or Path.home() / "dmsl-runs")
        name = f"{o.config}-{time.strftime('%Y%m%d-%H%M%S')}"
        return str(root / name)

    def start(self, options: Optional[TrainOptions] = None) -> bool:
        """Start a new training run; False (with a message) when the form is not usable."""
        if self.running:
            return False
        o = options or self.options()
        if options is not None:
            self.set_options(o)
        problems = []
        if not o.data:
            problems.append("choose a dataset folder (or Generate… one)")
        elif not (Path(o.data) / "manifest.csv").exists():
            problems.append(f"{o.data}: not a dataset folder (no manifest.csv)")
        else:
            info = dataset_info(o.data)
            if info.error:
                problems.append(info.error)
            elif o.cv_folds and o.cv_folds > info.max_cv_folds:
                problems.append(f"{info.n_subjects} subject(s) cannot make {o.cv_folds} cross-validation folds"
                                + (f" (at most {info.max_cv_folds})" if info.max_cv_folds else
                                   f" (at least {MIN_CV_FOLDS} subjects are needed)"))
            elif o.fold is not None and not o.cv_folds and not info.folds_fit:
                problems.append(f"{info.n_subjects} subject(s) cannot make the {N_FOLDS}-fold split "
                                f"(choose Fold: no fold)")
        if not o.stages:
            problems.append("choose at least one stage")
        if not o.out:
            o.out = self._new_run_dir(o)
            self.out_edit.setText(o.out)
        elif ((Path(o.out) / "checkpoints" / "last.pt").exists() or (Path(o.out) / "model.safetensors").exists()
              or (Path(o.out) / CV_FILE).exists()):
            problems.append(f"{o.out} already holds a training run: Resume it, or choose another run folder")
        if problems:
            self.message.show_message("Cannot start: " + "; ".join(problems) + ".")
            return False
        self._phases = TrainConfig(train_models=o.models, stages=o.stages).phases()
        self._launch(train_command(o), o.out, resumed=False, cv=bool(o.cv_folds))
        return True

    def resume(self, run_dir: Optional[str] = None) -> bool:
        """Resume the run in ``run_dir`` (default: the run folder field) from its last checkpoint."""
        if self.running:
            return False
        rd = run_dir or self.out_edit.text().strip()
        if rd and is_cv_folder(rd):
            return self._resume_cv(rd)
        cfg_path = Path(rd) / "config.json"
        if not rd or not cfg_path.exists():
            self.message.show_message(f"Cannot resume: {rd or 'no run folder'} has no config.json "
                                      f"(is it a training run folder?).")
            return False
        try:
            cfg = TrainConfig.from_dict(json.loads(cfg_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            self.message.show_message(f"Cannot resume: {cfg_path}: {exc}")
            return False
        if run_status(rd) == "complete":
            self.message.show_message(f"{rd} is already complete (model.safetensors written).", "info")
            return False
        self.out_edit.setText(rd)
        o = self.options()
        o.out, o.data = rd, cfg.data or o.data
        self._phases = cfg.phases()
        self._launch(train_command(o, resume=True), rd, resumed=True)
        return True

    def _resume_cv(self, root: str) -> bool:
        try:
            plan = json.loads((Path(root) / CV_FILE).read_text(encoding="utf-8"))
            cfg = TrainConfig.from_dict(plan["config"])
            summary = cv_summary(root)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.message.show_message(f"Cannot resume: {Path(root) / CV_FILE}: {exc}")
            return False
        if summary["complete"] == summary["n_folds"]:
            self.message.show_message(f"{root}: every fold is complete.", "info")
            self._show_cv(root)
            return False
        self.out_edit.setText(root)
        o = self.options()
        o.out, o.data, o.cv_folds = root, cfg.data, int(plan["n_folds"])
        self._phases = cfg.phases()
        self._launch(train_command(o, resume=True), root, resumed=True, cv=True)
        return True

    @property
    def current_run(self) -> str:
        """The run folder being trained (the current fold's in a cross-validation)."""
        return (self.fold_dir or "") if self.cv_mode else self.run_dir

    def _show_cv(self, root: str) -> None:
        try:
            summary = cv_summary(root)
        except (OSError, ValueError, KeyError) as exc:
            self.log_view.appendPlainText(f"cannot read {root}: {exc}")
            return
        self.cv_summary = summary
        rows = summary["folds"] + [{"fold": "mean", "status": f"{summary['complete']} of {summary['n_folds']} done",
                                    **summary["mean"], "n_images": ""}]
        self.cv_table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            vals = [str(r["fold"]), r["status"], fmt_num(r["th"]), fmt_num(r["vis"]), fmt_num(r["all"]),
                    str(r["n_images"])]
            for j, v in enumerate(vals):
                self.cv_table.setItem(i, j, QtWidgets.QTableWidgetItem(v))
        self.cv_frame.show()

    def _launch(self, cmd: list[str], run_dir: str, resumed: bool, cv: bool = False) -> None:
        self.run_dir = run_dir
        self.cv_mode, self.fold_dir = cv, ""
        self.cv_frame.setVisible(cv)
        if cv and (Path(run_dir) / CV_FILE).exists():
            self._show_cv(run_dir)
        self.records = read_metrics(run_dir) if resumed and not cv else []
        self.events, self.n_steps, self.stderr_tail, self.error_text, self.weights = [], 0, [], "", ""
        self._out_buf = b""
        self._cancel_requested = False
        self._make_bars()
        self._redraw()
        self.message.clear()
        self.log_view.appendPlainText("$ " + shlex.join(cmd))   # the exact command, to copy and run
        p = QtCore.QProcess(self)
        env = QtCore.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        p.setProcessEnvironment(env)
        p.readyReadStandardOutput.connect(self._read_stdout)
        p.readyReadStandardError.connect(self._read_stderr)
        p.finished.connect(self._on_finished)
        p.errorOccurred.connect(self._on_process_error)
        # the buttons follow the process (Stop early / Cancel need it started, not just requested)
        p.stateChanged.connect(lambda *_: self._update_buttons())
        self.process = p
        self.state = "running"
        p.start(cmd[0], cmd[1:])
        self._set_state("running")
        self.runsChanged.emit()

    def stop_early(self) -> None:
        if self.running and self.run_dir:
            request_stop(self.run_dir, "early")
            self.log_view.appendPlainText("stop early requested: the current stage ends at its best epoch")

    def cancel(self) -> None:
        if not self.running:
            return
        self._cancel_requested = True
        try:
            request_stop(self.run_dir, "cancel")
        except OSError:
            pass
        self.process.terminate()  # SIGTERM -> cooperative cancel in dmsl train (same as the CANCEL file)
        self._kill_timer.start(CANCEL_KILL_MS)
        self._set_state("cancelling")

    def _kill(self) -> None:
        if self.running:
            self.log_view.appendPlainText("the training process did not stop in time; killed")
            self.process.kill()

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel a running training (it stays resumable) and wait for the process; True when it ended."""
        for h in (self._gen_handle, self._preview_handle):
            if h is not None:
                h.stop(10000)
        if not self.running:
            return True
        self.cancel()
        ok = self.process.waitForFinished(timeout_ms)
        if not ok:
            self.process.kill()
            ok = self.process.waitForFinished(3000)
        return ok

    # ---- the process's output ---------------------------------------------------------------------
    def _read_stdout(self) -> None:
        p = self.sender() if isinstance(self.sender(), QtCore.QProcess) else self.process
        self._out_buf += bytes(p.readAllStandardOutput())
        *lines, self._out_buf = self._out_buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                d = json.loads(line)
                e = event_from_dict(d)
            except (ValueError, TypeError):
                self.log_view.appendPlainText(line)
                continue
            self._on_event(e)

    def _read_stderr(self) -> None:
        p = self.sender() if isinstance(self.sender(), QtCore.QProcess) else self.process
        text = bytes(p.readAllStandardError()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                self.stderr_tail = (self.stderr_tail + [line])[-40:]
                self.log_view.appendPlainText(line)

    def _on_event(self, e) -> None:
        if e.kind != "step":
            self.events = (self.events + [e])[-200:]
        else:
            self.n_steps += 1
        if e.kind == "start":
            self.device_label.setText(f"device: {e.extra.get('device', '?')} ({e.extra.get('device_name', '')})")
            if e.extra.get("resumed"):
                self.records = read_metrics(self.current_run)
                self._make_bars()
                self._redraw()
        elif e.kind == "fold":
            self.fold_dir = e.extra.get("run_dir", "")
            self.records = []
            self._make_bars()
            self._redraw()
            self._show_cv(self.run_dir)
            self.state_label.setText(e.message)
        elif e.kind == "phase_start":
            self._bar_update(e.phase, (e.epoch or 0) / max(e.epochs, 1), e, None)
            if 0 <= e.phase < len(self._phases):   # a stage's own status replaces the last stage's
                kind, stage = self._phases[e.phase]
                self.state_label.setText(f"running {MODEL_NAMES.get(kind, kind)} stage {stage}")
        elif e.kind == "step":
            frac = ((e.epoch - 1) * max(e.steps, 1) + e.step) / max(e.epochs * max(e.steps, 1), 1)
            self._bar_update(e.phase, frac, e, e.eta_s)
            if e.images_per_s:
                self.speed_label.setText(f"{e.images_per_s:.0f} img/s")
            self.eta_label.setText(f"stage ETA {fmt_eta(e.eta_s)}")
        elif e.kind == "epoch":
            self.records.append({"phase": e.phase, "model": e.model, "stage": e.stage, "epoch": e.epoch,
                                 "epochs": e.epochs, "train_loss": e.loss, "val_loss": e.val_loss,
                                 "val_nme": e.val_nme, "best": e.best})
            self._bar_update(e.phase, e.epoch / max(e.epochs, 1), e, e.eta_s)
            self._redraw()
            self.refresh_preview()
        elif e.kind == "phase_end":
            self._bar_update(e.phase, 1.0, e, 0.0)
        elif e.kind == "status":
            self.state_label.setText(e.message)
        elif e.kind == "done":
            self.weights = e.extra.get("weights", "")
            for i in self._bars:
                self._bar_update(i, 1.0, None, 0.0)
            self.refresh_preview()
        self.eventReceived.emit(e)

    def refresh_preview(self) -> None:
        """Predict a few validation images with the run's last checkpoint, on a worker thread (at
        most one at a time; an epoch that ends meanwhile is previewed when it is done)."""
        if not self.current_run:
            return
        if self._preview_handle is not None and self._preview_handle.running:
            self._preview_pending = True
            return
        from dmsl_core.runs import preview_predictions
        self._preview_pending = False

        def finished() -> None:
            if self._preview_pending:
                QtCore.QTimer.singleShot(0, self.refresh_preview)

        self._preview_handle = start_worker(
            FunctionWorker(preview_predictions, self.current_run, N_PREVIEW), "dmsl-preview",
            on_result=self._show_preview, on_error=lambda m: self.preview_label.setText(f"preview failed: {m}"),
            on_finished=finished, parent=self, collect=True)

    def _show_preview(self, items: list) -> None:
        """The checkpoint on a few validation images. While M_b trains, M_l is not trained yet (its
        points would mean nothing): the views show M_b's box only. Afterwards the points of the whole
        pipeline (M_b's box, then M_l) - a different figure from the chart's validation NME, which is
        M_l alone on the true face box over every validation image; the label says so."""
        from .palettes import lut
        ph = items[0]["phase"] if items else -1
        kind, stage = self._phases[ph] if 0 <= ph < len(self._phases) else ("landmark", 0)
        box_only = kind == "boundary"
        for v, it in zip(self.preview_views, items):
            img = it["image"]
            if img.dtype != np.uint8:
                from dmsl_core.preprocess import display_uint8
                img = display_uint8(img)
            v.set_image(img, lut=lut("iron") if it["spectrum"] == "th" and img.ndim == 2 else None)
            if box_only:
                v.set_landmarks(None, it.get("box"))
                v.set_info(f"{it['spectrum']} · {it['variation']} · M_b box")
            else:
                v.set_landmarks(it["pred"], it.get("box"))
                v.set_info(f"{it['spectrum']} · {it['variation']} · NME {fmt_num(it['nme'], 3)}")
            v.set_ground_truth(it["gt"])
        if items:
            name = (f"{MODEL_NAMES.get(kind, '')} stage {stage} epoch {items[0]['epoch']}" if ph < len(self._phases)
                    else "end of training")
            if box_only:
                what = "M_b's face box (M_l is not trained yet) · crosses ground truth"
            else:
                nmes = [it["nme"] for it in items if it["nme"] is not None and math.isfinite(it["nme"])]
                what = (f"dots: the whole pipeline (M_b's box, then M_l), NME {fmt_num(np.mean(nmes) if nmes else None, 3)}"
                        f" on these {len(items)} · the chart's NME: M_l on the true box, every validation image")
            self.preview_label.setText(f"checkpoint: {name} · {what}")
        self.previews_shown += 1

    def _on_process_error(self, err) -> None:
        if err == QtCore.QProcess.FailedToStart:
            self.error_text = f"Could not start the training process ({self.process.errorString()})."
            self.message.show_message(self.error_text)
            self._set_state("failed")

    def _on_finished(self, code: int, status) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        last = self._last_epoch_text()
        resume_hint = (f" Resume continues from the last checkpoint ({last})." if last else
                       " Resume starts it again from the beginning.")
        if code == 0 and status == QtCore.QProcess.NormalExit:
            self._set_state("done")
            if self.cv_mode:
                self._show_cv(self.run_dir)
                m = (self.cv_summary or {}).get("mean") or {}
                self.message.show_message(f"Cross-validation finished: mean test NME TH {fmt_num(m.get('th'))}, "
                                          f"VIS {fmt_num(m.get('vis'))} ({self.run_dir})", "info")
                self.runFinished.emit(self.current_run)
            else:
                self.message.show_message(f"Training finished: {self.weights or self.run_dir}", "info")
                self.runFinished.emit(self.run_dir)
        elif self._cancel_requested or (code == 130 and status == QtCore.QProcess.NormalExit):
            self._set_state("cancelled")
            self.message.show_message("Training cancelled." + resume_hint, "warn")
        elif status == QtCore.QProcess.CrashExit:
            self._set_state("crashed")
            self.error_text = ("The training process crashed (killed or aborted)." + resume_hint +
                               (f" Last output: {self.stderr_tail[-1]}" if self.stderr_tail else ""))
            self.message.show_message(self.error_text)
        else:
            self._set_state("failed")
            errs = [ln for ln in self.stderr_tail if "error" in ln.lower()] or self.stderr_tail[-3:]
            self.error_text = (f"Training failed (exit status {code}): " + " ".join(errs[-3:]) +
                               (resume_hint if self.current_run and run_status(self.current_run) == "resumable"
                                else ""))
            self.message.show_message(self.error_text)
        self.runsChanged.emit()

    def _last_epoch_text(self) -> str:
        rd = self.current_run
        if not rd or run_status(rd) != "resumable":
            return ""
        recs = read_metrics(rd)
        if not recs:
            return "the last finished stage"
        r = recs[-1]
        return f"{MODEL_NAMES.get(r['model'], r['model'])} stage {r['stage']}, after epoch {r['epoch']}"

    # ---- drawing --------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_label.setText(state)
        self._update_buttons()

    def _update_buttons(self) -> None:
        run = self.running
        self.start_btn.setEnabled(not run)
        self.early_btn.setEnabled(run and self.state == "running")
        self.cancel_btn.setEnabled(run and self.state == "running")
        rd = self.out_edit.text().strip() if hasattr(self, "out_edit") else ""
        self.resume_btn.setEnabled(not run and bool(rd) and (
            is_cv_folder(rd) or ((Path(rd) / "config.json").exists() and run_status(rd) != "complete")))

    def _make_bars(self) -> None:
        while self.bars_box.count():
            w = self.bars_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self._bars = {}
        for i, (kind, stage) in enumerate(self._phases):
            lab = QtWidgets.QLabel(f"{MODEL_NAMES[kind]} stage {stage}")
            bar = QtWidgets.QProgressBar()
            bar.setMaximumHeight(bar.fontMetrics().height() + 4)   # six stages fit without squeezing the chart
            bar.setRange(0, 1000)
            bar.setValue(0)
            bar.setFormat("waiting")
            done = [r for r in self.records if r["phase"] == i]
            if done:
                bar.setValue(int(1000 * done[-1]["epoch"] / max(done[-1]["epochs"], 1)))
                bar.setFormat(f"epoch {done[-1]['epoch']}/{done[-1]['epochs']} (before resume)")
            self.bars_box.addWidget(lab, i, 0)
            self.bars_box.addWidget(bar, i, 1)
            self._bars[i] = bar

    def _bar_update(self, phase: int, frac: float, e, eta) -> None:
        bar = self._bars.get(phase)
        if bar is None:
            return
        bar.setValue(int(round(1000 * min(max(frac, 0.0), 1.0))))
        if frac >= 1.0 and (e is None or e.kind in ("phase_end", "done")):
            bar.setFormat("done")
        elif e is not None:
            bar.setFormat(f"epoch {max(e.epoch, 1)}/{e.epochs} · %p% · ETA {fmt_eta(eta)}")

    def _set_log(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=bool(on))
        self.loss_plot.setLabel("left", "loss" + (" (log)" if on else ""))
        self._redraw()

    def curve_data(self) -> dict:
        """x / train / val arrays of the loss plot (NaN between stages) and the best epochs."""
        xs, tr, va, best_x, best_y = [], [], [], [], []
        last_phase = None
        for i, r in enumerate(self.records):
            if last_phase is not None and r["phase"] != last_phase:
                xs.append(np.nan)
                tr.append(np.nan)
                va.append(np.nan)
            last_phase = r["phase"]
            xs.append(i + 1)
            tr.append(np.nan if r.get("train_loss") is None else r["train_loss"])
            va.append(np.nan if r.get("val_loss") is None else r["val_loss"])
        by_phase: dict[int, tuple[int, dict]] = {}
        for i, r in enumerate(self.records):
            if r.get("best"):
                by_phase[r["phase"]] = (i, r)
        for i, r in by_phase.values():
            y = r.get("val_loss") if r.get("val_loss") is not None else r.get("train_loss")
            if y is not None:
                best_x.append(i + 1)
                best_y.append(y)
        return {"x": np.array(xs, float), "train": np.array(tr, float), "val": np.array(va, float),
                "best_x": np.array(best_x, float), "best_y": np.array(best_y, float)}

    def _redraw(self) -> None:
        d = self.curve_data()
        log = self.log_check.isChecked()
        safe = (lambda a: np.where(a > 0, a, np.nan)) if log else (lambda a: a)
        self.train_curve.setData(d["x"], safe(d["train"]), connect="finite")
        self.val_curve.setData(d["x"], safe(d["val"]), connect="finite")
        by = d["best_y"]
        ok = by > 0 if log else np.isfinite(by)
        self.best_marks.setData(d["best_x"][ok], by[ok])
        for ln in self._phase_lines:
            self.loss_plot.removeItem(ln)
        self._phase_lines = []
        prev = None
        for i, r in enumerate(self.records):
            if r["phase"] != prev:   # every second stage's name a line higher: short stages' names do not overlap
                ln = pg.InfiniteLine(pos=i + 0.5, angle=90, pen=pg.mkPen("#666b73", style=QtCore.Qt.DashLine),
                                     label=f"{MODEL_NAMES.get(r['model'], r['model'])} s{r['stage']}",
                                     labelOpts={"position": 0.06 + 0.09 * (len(self._phase_lines) % 2),
                                                "color": "#969fa9"})
                self.loss_plot.addItem(ln)
                self._phase_lines.append(ln)
                prev = r["phase"]
        # the same x as the loss plot (epochs of all stages in order), broken between stages
        nx, ny, prev = [], [], None
        for i, r in enumerate(self.records):
            if r.get("val_nme") is None:
                continue
            if prev is not None and r["phase"] != prev:
                nx.append(np.nan)
                ny.append(np.nan)
            nx.append(i + 1)
            ny.append(r["val_nme"])
            prev = r["phase"]
        self.nme_curve.setData(np.array(nx, float), np.array(ny, float), connect="finite")
        # the best epoch: the lowest validation NME of the run so far, marked through both panels
        scored = [(r["val_nme"], i + 1, r) for i, r in enumerate(self.records)
                  if r.get("val_nme") is not None and math.isfinite(r["val_nme"])]
        if scored:
            best, x, r = min(scored, key=lambda t: (t[0], t[1]))
            self.best_epoch = x
            self.best_nme_mark.setData([x], [best])
            for ln in self.best_lines:
                ln.setPos(x)
                ln.setVisible(True)
            self.best_label.setText(f"best validation NME {fmt_num(best)} at epoch {x} "
                                    f"({MODEL_NAMES.get(r['model'], r['model'])} stage {r['stage']}, "
                                    f"its epoch {r['epoch']})")
        else:
            self.best_epoch = None
            self.best_nme_mark.setData([], [])
            for ln in self.best_lines:
                ln.setVisible(False)
            self.best_label.setText("best validation NME: after the first M_l epoch")
        self.loss_plot.setXRange(0.5, max(len(self.records), 1) + 0.5, padding=0.02)
