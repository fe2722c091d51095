"""Starting, stopping and reading the training subprocess (``dmsl train`` / ``dmsl cv``).

A new run reads its training configuration from ``RUN/job.json`` (``dmsl train --job``; the form
writes the file); a resumed run from its own ``config.json`` (``--resume``). The process runs under
a :class:`QtCore.QProcess`: the Qt thread only reads one JSON :class:`~dmsl_core.training.TrainEvent`
per line from its stdout, so the window stays responsive and a crash of the training cannot take
the app down.

- **Stop stage early** writes ``RUN/STOP_EARLY``: the current stage ends at its best epoch so far
  and training goes on with the next stage.
- **Cancel** writes ``RUN/CANCEL`` and sends SIGTERM (the process stops after the current step,
  ``last.pt`` holds the last finished epoch); if the process has not ended after
  ``CANCEL_KILL_MS`` it is killed.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

from PySide6 import QtCore

from dmsl_core.training import JOB_FILE, event_from_dict, request_stop

from .form import TrainOptions

CANCEL_KILL_MS = 20000


def cli_prefix() -> list[str]:
    """How to start the ``dmsl`` command: this interpreter with ``-m dmsl_core.cli`` (works from an
    editable install and a source checkout alike, and uses the same environment as the app)."""
    return [sys.executable, "-m", "dmsl_core.cli"]


def job_path(o: TrainOptions) -> Path:
    """Where a new run of ``o`` keeps its job file: ``RUN/job.json``."""
    return Path(o.out) / JOB_FILE


def train_command(o: TrainOptions, resume: bool = False) -> list[str]:
    """``dmsl train`` (``dmsl cv`` when ``o.cv_folds``) with ``--events-jsonl``. A new run:
    ``--job RUN/job.json`` (the whole training configuration; ``o.extra`` flags after it override its
    keys). A resume: ``--resume`` on the run folder (its ``config.json``), with the form's device
    and threads."""
    cmd = cli_prefix() + ["cv" if o.cv_folds else "train"]
    if resume:
        cmd += ["--data", o.data, "--out", o.out, "--events-jsonl"]
        if o.threads:
            cmd += ["--threads", str(int(o.threads))]
        if o.device:
            cmd += ["--device", o.device]
        return _maybe_torchrun(cmd + ["--resume"], o)
    cmd += ["--job", str(job_path(o)), "--out", o.out, "--events-jsonl"]
    if o.cv_folds:
        cmd += ["--folds", str(int(o.cv_folds))]
    return _maybe_torchrun(cmd + list(o.extra), o)


def _maybe_torchrun(cmd: list[str], o: TrainOptions) -> list[str]:
    """``dmsl train`` with ``o.processes`` > 1 runs under torchrun (DDP, gloo on CPUs, NCCL on GPUs);
    only rank 0 prints the JSON events, so the panel reads them as from one process."""
    if o.processes <= 1 or o.cv_folds:
        return cmd
    from dmsl_core.distributed import torchrun_command
    n = len(cli_prefix())
    return torchrun_command(cmd[n + 1:], int(o.processes), command=cmd[n])


class TrainLauncher(QtCore.QObject):
    """One training process at a time: start, stop early, cancel (then kill), and its output as
    events and log lines."""

    eventReceived = QtCore.Signal(object)   # a TrainEvent (one JSON line of stdout)
    lineReceived = QtCore.Signal(str)       # a line for the log: the command, other output, notices
    finished = QtCore.Signal(int, object)   # exit code, QProcess.ExitStatus (the output all read)
    failedToStart = QtCore.Signal(str)      # the reason
    stateChanged = QtCore.Signal()          # the process started or ended

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.process: Optional[QtCore.QProcess] = None
        self.run_dir = ""                   # where the stop requests go (a cross-validation's root)
        self.stderr_tail: list[str] = []
        self.cancel_requested = False
        self._out_buf = b""
        self._kill_timer = QtCore.QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QtCore.QProcess.NotRunning

    def start(self, cmd: list[str], run_dir: str) -> None:
        self.run_dir = run_dir
        self.stderr_tail, self._out_buf, self.cancel_requested = [], b"", False
        self.lineReceived.emit("$ " + shlex.join(cmd))   # the exact command, to copy and run
        p = QtCore.QProcess(self)
        env = QtCore.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        p.setProcessEnvironment(env)
        p.readyReadStandardOutput.connect(self._read_stdout)
        p.readyReadStandardError.connect(self._read_stderr)
        p.finished.connect(self._on_finished)
        p.errorOccurred.connect(self._on_error)
        # the buttons follow the process (Stop early / Cancel need it started, not just requested)
        p.stateChanged.connect(lambda *_: self.stateChanged.emit())
        self.process = p
        p.start(cmd[0], cmd[1:])

    def stop_early(self) -> None:
        if self.running and self.run_dir:
            request_stop(self.run_dir, "early")
            self.lineReceived.emit("stop early requested: the current stage ends at its best epoch")

    def cancel(self) -> bool:
        """Ask the process to stop (resumable); killed after ``CANCEL_KILL_MS``. False: none runs."""
        if not self.running:
            return False
        self.cancel_requested = True
        try:
            request_stop(self.run_dir, "cancel")
        except OSError:
            pass
        self.process.terminate()  # SIGTERM -> cooperative cancel in dmsl train (same as the CANCEL file)
        self._kill_timer.start(CANCEL_KILL_MS)
        return True

    def _kill(self) -> None:
        if self.running:
            self.lineReceived.emit("the training process did not stop in time; killed")
            self.process.kill()

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Wait for the process to end (killed after ``timeout_ms``); True when it ended."""
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
                self.lineReceived.emit(line)
                continue
            self.eventReceived.emit(e)

    def _read_stderr(self) -> None:
        p = self.sender() if isinstance(self.sender(), QtCore.QProcess) else self.process
        text = bytes(p.readAllStandardError()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                self.stderr_tail = (self.stderr_tail + [line])[-40:]
                self.lineReceived.emit(line)

    def _on_error(self, err) -> None:
        if err == QtCore.QProcess.FailedToStart:
            self.failedToStart.emit(self.process.errorString())

    def _on_finished(self, code: int, status) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        self.finished.emit(code, status)
