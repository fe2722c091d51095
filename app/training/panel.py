"""The Train tab: runs ``dmsl train`` as a subprocess and shows its progress live.

The tab is put together from its rooms: the form (:mod:`.form`: the options, written as the run's
``RUN/job.json``), the launcher (:mod:`.launcher`: the ``dmsl train --job`` / ``--resume`` process,
stop early, cancel), the monitor (:mod:`.monitor`: progress bars and the training chart, drawn from
the process's JSON events), the validation images (:mod:`.previews`) and the cross-validation
table (:mod:`.cv`). Everything lives in the run folder (``job.json``, ``config.json``,
``metrics.jsonl``, ``checkpoints/last.pt``), so a stopped, cancelled or crashed run is resumed
from its folder: **Resume** runs ``dmsl train --resume --out RUN`` (``dmsl cv --resume`` for a
cross-validation), which continues from ``last.pt``.

No training logic here: the panel writes the job, starts the command and draws the events.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from PySide6 import QtCore, QtWidgets

from dmsl_core.runs import CV_FILE, cv_summary, is_cv_folder, read_metrics, run_status
from dmsl_core.training import TrainConfig, write_job

from ..panel_common import MessageStrip, fmt_num
from .cv import CVTable
from .form import TrainForm, TrainOptions, job_config, start_problems
from .launcher import TrainLauncher, train_command
from .monitor import MODEL_NAMES, TrainMonitor
from .previews import PreviewGrid


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


#: the rooms' widgets and state, reachable on the panel as before the split (``panel.records`` is
#: ``panel.monitor.records``; ``NAME=THERE`` where the room calls it otherwise)
ROOM_ATTRIBUTES = {
    "form": "data_edit gen_btn data_info config_box models_box stage1 stage2 stage3 epochs head_epochs "
            "joint_epochs batch lr spectra_box augment mirror box_jitter fold cv_check cv_folds device_box "
            "threads processes out_edit start_btn early_btn cancel_btn resume_btn dataset",
    "monitor": "state_label device_label speed_label eta_label bars_box loss_key log_check chart loss_plot "
               "nme_plot train_curve val_curve best_marks nme_curve best_nme_mark best_lines best_label best_epoch "
               "records events n_steps weights _phases=phases _bars curve_data _make_bars=make_bars "
               "_redraw=redraw _set_log=set_log",
    "previews": "preview_label preview_views previews_shown _preview_handle _preview_pending",
    "cv": "cv_table cv_summary=summary",
    "launcher": "process stderr_tail run_dir",
}


def _forward(room: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, room), name),
                    lambda self, value: setattr(getattr(self, room), name, value),
                    doc=f"``self.{room}.{name}``")


def _with_room_attributes(cls):
    for room, names in ROOM_ATTRIBUTES.items():
        for spec in names.split():
            name, _, there = spec.partition("=")
            setattr(cls, name, _forward(room, there or name))
    return cls


@_with_room_attributes
class TrainPanel(QtWidgets.QWidget):
    """The Train tab. ``runs_dir``: where new runs go by default."""

    runFinished = QtCore.Signal(str)      # run folder of a finished training (weights written)
    runsChanged = QtCore.Signal()         # a run was created / changed (the Models tab refreshes)
    eventReceived = QtCore.Signal(object)  # every TrainEvent (tests)

    def __init__(self, runs_dir: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.state = "idle"            # idle | running | cancelling | done | cancelled | crashed | failed
        self.error_text = ""
        self.cv_mode = False
        self.form = TrainForm(runs_dir)
        self.message = ReservedStrip(lines=2)   # a finished / cancelled banner does not move the chart
        self.cv = self.cv_frame = CVTable()
        # validation images and the log share the space beside the chart (one at a time)
        self.previews = PreviewGrid()
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.lower_tabs = QtWidgets.QTabWidget()
        self.lower_tabs.addTab(self.previews, "Validation images")
        self.lower_tabs.addTab(self.log_view, "Log")
        self.lower_tabs.setMinimumWidth(330)
        self.monitor = TrainMonitor(side=self.lower_tabs, parent=self)
        self.launcher = TrainLauncher(self)

        outer = QtWidgets.QHBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        for w in (self.message, self.monitor.progress_frame, self.cv):
            rl.addWidget(w)
        rl.addWidget(self.monitor.chart_frame, 1)
        outer.addWidget(self.form)
        outer.addWidget(right, 1)

        f, la = self.form, self.launcher
        f.start_btn.clicked.connect(lambda: self.start())
        f.early_btn.clicked.connect(self.stop_early)
        f.cancel_btn.clicked.connect(self.cancel)
        f.resume_btn.clicked.connect(lambda: self.resume())
        f.out_edit.textChanged.connect(lambda _: self._update_buttons())
        f.notice.connect(self.message.show_message)
        f.busy.connect(lambda text: self.state_label.setText(text or self.state))
        la.eventReceived.connect(self._on_event)
        la.lineReceived.connect(self.log_view.appendPlainText)
        la.finished.connect(self._on_finished)
        la.failedToStart.connect(self._on_failed_to_start)
        la.stateChanged.connect(self._update_buttons)
        self.monitor.checkpointSaved.connect(self.refresh_preview)
        self.monitor.foldStarted.connect(lambda _: self._show_cv(self.run_dir))
        self._update_buttons()

    # ---- the form ----------------------------------------------------------------------------------
    def options(self) -> TrainOptions:
        return self.form.options()

    def set_options(self, o: TrainOptions) -> None:
        self.form.set_options(o)

    def form_state(self) -> dict:
        """The form as a JSON-able dict (AppSettings.train_form; not the run folder)."""
        return self.form.form_state()

    def restore_form(self, state: Optional[dict]) -> None:
        self.form.restore_form(state)

    def generate_dialog(self) -> None:
        self.form.generate_dialog()

    def generate(self, out: str, subjects: int, seed: int = 0, variations=None):
        """Generate a synthetic dataset on a worker thread; the dataset field is set when done."""
        return self.form.generate(out, subjects, seed, variations)

    # ---- running ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.launcher.running

    @property
    def current_run(self) -> str:
        """The run folder being trained (the current fold's in a cross-validation)."""
        return self.monitor.run_dir

    @property
    def fold_dir(self) -> str:
        """A cross-validation's current fold folder ("" before the first, and outside one)."""
        return self.monitor.run_dir if self.cv_mode else ""

    def _new_run_dir(self, o: TrainOptions) -> str:
        root = Path(self.runs_dir or Path.home() / "dmsl-runs")
        name = f"{o.config}-{time.strftime('%Y%m%d-%H%M%S')}"
        return str(root / name)

    def start(self, options: Optional[TrainOptions] = None) -> bool:
        """Start a new training run: write its job file ``RUN/job.json`` and run
        ``dmsl train --job RUN/job.json``; False (with a message) when the form is not usable."""
        if self.running:
            return False
        o = options or self.options()
        if options is not None:
            self.set_options(o)
        if not o.out:
            o.out = self._new_run_dir(o)
            self.out_edit.setText(o.out)
        problems = start_problems(o)
        if problems:
            self.message.show_message("Cannot start: " + "; ".join(problems) + ".")
            return False
        try:
            cfg = job_config(o)
            write_job(o.out, cfg)
        except (OSError, ValueError) as exc:
            why = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
            self.message.show_message(f"Cannot start: {why}.")
            return False
        self._launch(train_command(o), o.out, cfg.phases(), resumed=False, cv=bool(o.cv_folds))
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
        self._launch(train_command(o, resume=True), rd, cfg.phases(), resumed=True)
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
        self._launch(train_command(o, resume=True), root, cfg.phases(), resumed=True, cv=True)
        return True

    def _launch(self, cmd: list[str], run_dir: str, phases: list, resumed: bool, cv: bool = False) -> None:
        self.cv_mode = cv
        self.cv.setVisible(cv)
        if cv and (Path(run_dir) / CV_FILE).exists():
            self._show_cv(run_dir)
        # a cross-validation shows each fold's run once its "fold" event names it
        self.monitor.reset("" if cv else run_dir, phases, read_metrics(run_dir) if resumed and not cv else [])
        self.error_text = ""
        self.message.clear()
        self.state = "running"
        self.launcher.start(cmd, run_dir)
        self._set_state("running")
        self.runsChanged.emit()

    def stop_early(self) -> None:
        self.launcher.stop_early()

    def cancel(self) -> None:
        if self.launcher.cancel():
            self._set_state("cancelling")

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel a running training (it stays resumable) and wait for the process; True when it ended."""
        self.form.stop(10000)
        self.previews.stop(10000)
        if not self.running:
            return True
        self.cancel()
        return self.launcher.wait(timeout_ms)

    # ---- what the process says ----------------------------------------------------------------------
    def _on_event(self, e) -> None:
        self.monitor.on_event(e)
        self.eventReceived.emit(e)

    def refresh_preview(self) -> None:
        """The current run's last checkpoint on a few validation images (see :class:`PreviewGrid`)."""
        self.previews.refresh(self.current_run, self.monitor.phases)

    def _show_cv(self, root: str) -> None:
        err = self.cv.show_run(root)
        if err:
            self.log_view.appendPlainText(err)

    def _on_failed_to_start(self, reason: str) -> None:
        self.error_text = f"Could not start the training process ({reason})."
        self.message.show_message(self.error_text)
        self._set_state("failed")

    def _on_finished(self, code: int, status) -> None:
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
        elif self.launcher.cancel_requested or (code == 130 and status == QtCore.QProcess.NormalExit):
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

    # ---- state and buttons --------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_label.setText(state)
        self._update_buttons()

    def _update_buttons(self) -> None:
        run = self.running
        self.start_btn.setEnabled(not run)
        self.early_btn.setEnabled(run and self.state == "running")
        self.cancel_btn.setEnabled(run and self.state == "running")
        rd = self.out_edit.text().strip()
        self.resume_btn.setEnabled(not run and bool(rd) and (
            is_cv_folder(rd) or ((Path(rd) / "config.json").exists() and run_status(rd) != "complete")))
