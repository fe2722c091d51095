"""The Train tab's form (the left column): the run's options, the dataset they train on, and the
job file they become.

:class:`TrainOptions` is what the form holds (the names ``AppSettings.train_form`` remembers);
:func:`job_config` turns it into the run's :class:`~dmsl_core.training.TrainConfig`, which the panel
writes as ``RUN/job.json`` (:func:`dmsl_core.training.write_job`) for ``dmsl train --job`` to read:
one spelling of the training configuration from the form to the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import CV_FILE
from dmsl_core.training import TrainConfig

from ..panel_common import path_row, title
from ..workers import FunctionWorker, WorkerHandle, start_worker

N_FOLDS = 10        # the paper's protocol, as dmsl train --fold uses it
MIN_CV_FOLDS = 4    # 1 test + 2 validation groups + 1 training group
SPECTRA_CHOICES = {"both (visible + thermal)": "both", "thermal only": "th", "visible only": "vis"}
SPECTRA = {"both": ("vis", "th"), "th": ("th",), "vis": ("vis",)}   # the form's choice -> TrainConfig.spectra


@dataclass
class TrainOptions:
    """What the form holds; :func:`job_config` makes the run's TrainConfig of it (``out``,
    ``cv_folds``, ``processes`` and ``extra`` say how the run is started, not what it trains)."""

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
    extra: list = field(default_factory=list)   # more ``dmsl train`` flags (they override the job's keys)


def job_config(o: TrainOptions) -> TrainConfig:
    """The TrainConfig a new run of the form ``o`` trains with (``RUN/job.json``): the form's fields
    under TrainConfig's names, the data folder absolute. Stage 3's epochs and rate are the form's only
    when stage 3 runs (TrainConfig's defaults otherwise), and a cross-validation has no fold of its
    own (``dmsl cv`` gives each its fold). A ValueError for spectra the form does not offer."""
    if o.spectra not in SPECTRA:
        raise ValueError(f"spectra {o.spectra!r}: use one of {', '.join(SPECTRA)}")
    default = TrainConfig()
    joint = 3 in o.stages
    return TrainConfig(model=o.config, train_models=o.models, stages=tuple(sorted({int(s) for s in o.stages})),
                       epochs=int(o.epochs), head_epochs=int(o.head_epochs), batch_size=int(o.batch_size),
                       lr=float(o.lr), head_lr=float(o.head_lr),
                       joint_epochs=int(o.joint_epochs) if joint else default.joint_epochs,
                       joint_lr=float(o.joint_lr) if joint else default.joint_lr,
                       box_jitter=float(o.box_jitter) if o.box_jitter > 0 else default.box_jitter,
                       device=o.device or "auto", augment=bool(o.augment), mirror=bool(o.mirror),
                       num_threads=int(o.threads) or None, init_weights=o.init or None,
                       data=str(Path(o.data).resolve()), spectra=SPECTRA[o.spectra],
                       fold=None if o.cv_folds else o.fold)


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


def start_problems(o: TrainOptions) -> list[str]:
    """Why a new run of ``o`` cannot start (empty: it can): no dataset, a split the dataset cannot
    make, no stage, a run folder that already holds a run."""
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
    if o.out and ((Path(o.out) / "checkpoints" / "last.pt").exists() or (Path(o.out) / "model.safetensors").exists()
                  or (Path(o.out) / CV_FILE).exists()):
        problems.append(f"{o.out} already holds a training run: Resume it, or choose another run folder")
    return problems


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


class TrainForm(QtWidgets.QFrame):
    """The form column (``QFrame#Panel``): the options, the dataset's size and splits, the run folder,
    and the Start / Stop stage early / Cancel / Resume buttons (the panel connects those).
    ``runs_dir``: where a generated dataset goes by default (beside it)."""

    notice = QtCore.Signal(str, str)   # a message for the panel's strip: text, level (info / error)
    busy = QtCore.Signal(str)          # a status line while generating; "" when done

    def __init__(self, runs_dir: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self._gen_handle: Optional[WorkerHandle] = None
        self._build()

    def _build(self) -> None:
        from dmsl_core.models import get_config, list_configs

        self.setObjectName("Panel")
        self.setMinimumWidth(400)   # the Fold box's "no fold (every 5th subject validates)" whole
        self.setMaximumWidth(440)
        ll = QtWidgets.QVBoxLayout(self)
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
        b_out = QtWidgets.QPushButton("…")
        b_out.clicked.connect(lambda: self._browse_dir(self.out_edit, "Run folder"))
        form.addRow("Run folder", path_row(self.out_edit, b_out))
        ll.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        self.start_btn = QtWidgets.QPushButton("Start")
        self.early_btn = QtWidgets.QPushButton("Stop stage early")
        self.early_btn.setToolTip("End the current stage at its best epoch so far and go on with the next")
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop now; the run can be resumed from its last finished epoch")
        self.resume_btn = QtWidgets.QPushButton("Resume")
        self.resume_btn.setToolTip("Continue the run in the run folder from its last checkpoint")
        for b in (self.start_btn, self.early_btn, self.cancel_btn, self.resume_btn):
            row.addWidget(b)
        ll.addLayout(row)
        ll.addStretch(1)

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

    # ---- remembered between sessions (AppSettings.train_form) ---------------------------------
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

    # ---- generating a dataset ----------------------------------------------------------------
    def generate_dialog(self) -> None:
        base = Path(self.runs_dir or Path.home()).parent / "dmsl-data" / "synth"
        dlg = GenerateDialog(str(base), self)
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            self.generate(dlg.folder.text().strip(), dlg.subjects.value(), dlg.seed.value())

    def generate(self, out: str, subjects: int, seed: int = 0, variations=None) -> WorkerHandle:
        """Generate a synthetic dataset on a worker thread; the dataset field is set when done."""
        self.gen_btn.setEnabled(False)
        self.notice.emit(f"Generating {subjects} subjects into {out} …", "info")

        def done(summary: dict) -> None:
            self.data_edit.setText(out)
            self.notice.emit(f"Generated {summary['pairs']} image pairs ({summary['subjects']} subjects) "
                             f"in {summary['seconds']:.1f} s: {out}", "info")

        def progress(p) -> None:
            self.busy.emit(f"generating {p[0]}/{p[1]}")

        def finished() -> None:
            self.gen_btn.setEnabled(True)
            self.busy.emit("")

        self._gen_handle = start_worker(FunctionWorker(_generate, out, subjects, seed, variations, pass_worker=True),
                                        "dmsl-synth", on_result=done, on_progress=progress,
                                        on_error=lambda m: self.notice.emit(f"Generating failed: {m}", "error"),
                                        on_finished=finished, parent=self, collect=True)
        return self._gen_handle

    def stop(self, timeout_ms: int = 10000) -> None:
        """Stop a dataset being generated (closing the app)."""
        if self._gen_handle is not None:
            self._gen_handle.stop(timeout_ms)
