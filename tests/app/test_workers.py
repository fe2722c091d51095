"""The worker threads (app/workers.py): results, progress and errors on the Qt thread, a cooperative
stop with a bounded wait, and the messages errors become."""
from __future__ import annotations

import threading
import time

from app.workers import FunctionWorker, Worker, explain, parked_threads, start_worker


def test_worker_result_progress_finished(qtbot):
    got = {"progress": [], "result": None, "finished": 0, "error": None}

    def work(n, worker):
        for i in range(n):
            worker.progress.emit(i)
        return n * 2

    h = start_worker(FunctionWorker(work, 3, pass_worker=True), "t",
                     on_progress=got["progress"].append, on_result=lambda r: got.__setitem__("result", r),
                     on_finished=lambda: got.__setitem__("finished", got["finished"] + 1))
    qtbot.waitUntil(lambda: got["finished"] == 1, timeout=5000)
    assert got["progress"] == [0, 1, 2] and got["result"] == 6
    assert h.wait(2000) and not h.running


def test_worker_error_still_finishes_and_explains(qtbot):
    got = {"error": "", "finished": False, "thread": None}

    def fail():
        raise FileNotFoundError("clip.mp4: no such file")

    def on_error(text):
        got["error"] = text
        got["thread"] = threading.current_thread()

    h = start_worker(FunctionWorker(fail), "t", on_error=on_error, on_finished=lambda: got.__setitem__("finished", True))
    qtbot.waitUntil(lambda: got["finished"], timeout=5000)
    assert "clip.mp4" in got["error"] and "Check the path" in got["error"]
    assert got["thread"] is threading.main_thread()   # callbacks run on the Qt thread
    h.wait(2000)


def test_cooperative_stop_and_bounded_wait(qtbot):
    class Loop(Worker):
        def work(self):
            while not self.stopping:
                time.sleep(0.01)
            return "stopped"

    h = start_worker(Loop(), "loop")
    qtbot.waitUntil(lambda: h.running, timeout=2000)
    t0 = time.perf_counter()
    assert h.stop(2000)
    assert time.perf_counter() - t0 < 1.5

    release = threading.Event()

    class Hung(Worker):   # a driver call that ignores the stop flag
        def work(self):
            release.wait(10)

    h2 = start_worker(Hung(), "hung")
    qtbot.waitUntil(lambda: h2.running, timeout=2000)
    t0 = time.perf_counter()
    assert not h2.stop(200)                      # bounded: gives up, parks the thread
    assert time.perf_counter() - t0 < 1.0
    assert parked_threads() == 1
    release.set()
    qtbot.waitUntil(lambda: parked_threads() == 0, timeout=5000)


def test_explain_messages():
    from dmsl_core.models.weights import WeightsError
    from dmsl_core.sources import SourceError

    assert "Settings" in explain(WeightsError("x.safetensors: not a DMSL model"))
    assert "Camera problem" in explain(SourceError("camera 3: no such device"))
    oom = explain(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "GPU ran out of memory" in oom and "CPU" in oom
