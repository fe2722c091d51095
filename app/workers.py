"""Worker objects on QThreads: long work never runs on the Qt thread.

A :class:`Worker` lives on its own :class:`QThread` and emits

- ``progress(object)`` - anything the work reports on the way (a fraction, a record, a message),
- ``result(object)``   - what the work returned,
- ``error(str)``       - a user-facing message when it raised (see :func:`explain`),
- ``finished()``       - always last, also after an error or a stop.

Stopping is cooperative: :meth:`Worker.stop` sets an event the work checks
(``self.stopping`` / ``self.check_stop()``); :meth:`WorkerHandle.stop` then waits a bounded
time for the thread. A thread that does not come back in time (a camera driver stuck in a read)
is parked, never destroyed while running, and reported; the window stays usable.
"""
from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any, Callable, Optional

from PySide6 import QtCore

log = logging.getLogger("dmsl.app.workers")


class Stopped(Exception):
    """Raised inside work by :meth:`Worker.check_stop` after a stop was asked for."""


def explain(exc: BaseException) -> str:
    """One message for the user: what happened and what to do about it."""
    text = str(exc).strip() or type(exc).__name__
    name = type(exc).__name__
    try:
        import torch
        oom = isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in text.lower()
    except Exception:  # noqa: BLE001 - torch always present in practice  # pragma: no cover
        oom = "out of memory" in text.lower()
    if oom:
        return (f"The GPU ran out of memory ({text.splitlines()[0][:160]}). "
                "Choose a smaller model or the CPU device in Settings, or close other GPU programs.")
    if name == "WeightsError":
        return f"Bad model weights: {text}. Choose other weights in Settings (Ctrl+,)."
    if name == "SourceError":
        low = text.lower()
        m = re.match(r"^(?P<path>.+?): no such (?P<what>file or folder|video file|file|folder)\b", text)
        if m:   # a mistyped path: say which, not "camera problem" (the message lists the camera schemes)
            what = "folder" if m.group("what") == "folder" else "file"
            return f"No such {what}: {m.group('path')}. Check the path and open it again (File > Open, Ctrl+O)."
        if any(k in low for k in ("camera", "cam:", "lepton", "boson", "tc001")):
            return f"Camera problem: {text}. Check that it is plugged in and not used by another program, " \
                   "then open it again (File > Open, Cameras)."
        return f"Cannot read the source: {text}. Check the file or URI and open it again (Ctrl+O)."
    if isinstance(exc, TimeoutError):
        return f"{text} Check the cable and that no other program holds the device, then open it again."
    if name == "DatasetError":
        return f"Cannot read the folder: {text}."
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{text}. Check the path and try again."
    if isinstance(exc, OSError):
        return f"Input/output error: {text}. Check the disk and the path, then try again."
    if isinstance(exc, MemoryError):
        return "Out of memory. Close other programs or choose a smaller model in Settings."
    return f"{name}: {text}"


class Worker(QtCore.QObject):
    """Base worker; subclasses implement :meth:`work` (runs on the worker's thread)."""

    progress = QtCore.Signal(object)
    result = QtCore.Signal(object)
    error = QtCore.Signal(str)
    finished = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.exception: Optional[BaseException] = None
        self.done = threading.Event()

    # ---- cooperative stop ------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the work to stop (thread-safe, returns at once)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def check_stop(self) -> None:
        if self._stop.is_set():
            raise Stopped()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; returns True when a stop was asked for."""
        return self._stop.wait(max(0.0, seconds))

    # ---- the run ------------------------------------------------------------------------------
    def work(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    @QtCore.Slot()
    def run(self) -> None:
        try:
            out = self.work()
            if not self.stopping or out is not None:
                self.result.emit(out)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - every error becomes a message
            self.exception = exc
            log.warning("%s failed: %s", type(self).__name__, "".join(traceback.format_exception(exc))[-3000:])
            self.error.emit(explain(exc))
        finally:
            self.done.set()
            self.finished.emit()


class FunctionWorker(Worker):
    """Runs ``fn(*args, worker=self, **kwargs)`` when ``pass_worker`` else ``fn(*args, **kwargs)``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, pass_worker: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs, self.pass_worker = fn, args, kwargs, pass_worker

    def work(self) -> Any:
        if self.pass_worker:
            return self.fn(*self.args, worker=self, **self.kwargs)
        return self.fn(*self.args, **self.kwargs)


# Threads that did not stop within their bounded wait: kept referenced (destroying a running
# QThread aborts the process) until they end by themselves.
_PARKED: list["WorkerHandle"] = []


class WorkerHandle(QtCore.QObject):
    """A worker moved onto its own QThread; start(), stop(timeout), running.

    The handle lives on the Qt thread and relays the worker's signals to plain Python callbacks
    (queued, so the callbacks always run on the Qt thread, whatever they are).
    """

    def __init__(self, worker: Worker, name: str = "", parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.name = name or type(worker).__name__
        self.callbacks: dict[str, list[Callable]] = {"result": [], "error": [], "progress": [], "finished": []}
        self.thread = QtCore.QThread()
        self.thread.setObjectName(self.name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # direct: QThread.quit is thread-safe, and a queued call would wait for the Qt thread, which
        # may be blocked in stop()'s bounded wait for this very thread
        worker.finished.connect(self.thread.quit, QtCore.Qt.DirectConnection)
        worker.result.connect(self._on_result)
        worker.error.connect(self._on_error)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        self.thread.finished.connect(self._on_thread_finished)

    def on(self, what: str, fn: Optional[Callable]) -> "WorkerHandle":
        if fn is not None:
            self.callbacks[what].append(fn)
        return self

    def _call(self, what: str, *args: Any) -> None:
        for fn in list(self.callbacks[what]):
            fn(*args)

    @QtCore.Slot(object)
    def _on_result(self, value: Any) -> None:
        self._call("result", value)

    @QtCore.Slot(str)
    def _on_error(self, msg: str) -> None:
        self._call("error", msg)

    @QtCore.Slot(object)
    def _on_progress(self, value: Any) -> None:
        self._call("progress", value)

    @QtCore.Slot()
    def _on_finished(self) -> None:
        self._call("finished")

    @QtCore.Slot()
    def _on_thread_finished(self) -> None:
        if self in _PARKED:
            _PARKED.remove(self)

    def start(self) -> "WorkerHandle":
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def stop(self, timeout_ms: int = 3000) -> bool:
        """Ask the worker to stop and wait at most ``timeout_ms``; True when the thread ended."""
        self.worker.stop()
        if not self.thread.isRunning():
            return True
        ok = self.thread.wait(QtCore.QDeadlineTimer(int(timeout_ms)))
        if not ok:
            log.warning("%s did not stop within %d ms; parked until it ends", self.name, timeout_ms)
            if self not in _PARKED:
                _PARKED.append(self)
        return bool(ok)

    def wait(self, timeout_ms: int = 3000) -> bool:
        if not self.thread.isRunning():
            return True
        return bool(self.thread.wait(QtCore.QDeadlineTimer(int(timeout_ms))))


def collect_garbage_here() -> None:
    """Run Python's cyclic garbage collector now, on the Qt thread.

    Dead Qt wrappers (closed windows, menus, actions) left in reference cycles are otherwise freed
    by whichever thread happens to trigger a collection: freed on a worker thread, a QObject's
    destructor waits for the GIL while holding a Qt lock the Qt thread needs - a deadlock seen in
    the test suite (an evaluation worker collecting a closed main window). Collecting before a
    worker starts leaves it no such garbage."""
    import gc
    gc.collect()


_GC_PAUSES = [0]


def _pause_gc() -> None:
    """Automatic cyclic collection off while a ``collect=True`` worker runs (so it never frees Qt
    wrappers on its thread); back on when the last such worker has finished."""
    import gc
    if _GC_PAUSES[0] == 0:
        gc.disable()
    _GC_PAUSES[0] += 1


def _resume_gc() -> None:
    import gc
    _GC_PAUSES[0] = max(0, _GC_PAUSES[0] - 1)
    if _GC_PAUSES[0] == 0:
        gc.enable()


def start_worker(worker: Worker, name: str = "", *, on_result: Optional[Callable] = None,
                 on_error: Optional[Callable] = None, on_progress: Optional[Callable] = None,
                 on_finished: Optional[Callable] = None, parent: Optional[QtCore.QObject] = None,
                 collect: bool = False) -> WorkerHandle:
    """Move ``worker`` to a new thread, connect the callbacks (they run on the Qt thread), start it.
    ``collect``: run :func:`collect_garbage_here` first and keep automatic garbage collection off
    until the worker has finished, so no Qt wrapper is freed on the worker's thread."""
    h = WorkerHandle(worker, name, parent)
    if collect:
        collect_garbage_here()
        _pause_gc()
        h.on("finished", _resume_gc)
    h.on("result", on_result).on("error", on_error).on("progress", on_progress).on("finished", on_finished)
    return h.start()


def parked_threads() -> int:
    return sum(1 for h in _PARKED if h.running)


def drain_parked(timeout_ms: int = 5000) -> bool:
    """Give parked threads a last chance to end (at exit); True when none is left running."""
    deadline = QtCore.QDeadlineTimer(int(timeout_ms))
    for h in list(_PARKED):
        if h.running:
            h.thread.wait(deadline)
    return parked_threads() == 0
