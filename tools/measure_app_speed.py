"""The window's speed on a source: frames drawn per second against the pipeline's rate, what the Qt
thread spends them on (cProfile), and the CPU the app uses while paused.

Runs the real MainWindow on Qt's offscreen platform (settings in a temporary store)::

    QT_QPA_PLATFORM=offscreen python tools/measure_app_speed.py [--source demo] [--seconds 10]
        [--paused-seconds 3] [--threads N] [--profile paint.txt] [--json out.json]

Figures: ``drawn_fps`` (results drawn by the window per second), ``pipeline_fps`` (results the
live thread produced per second), their ratio, the results the window skipped, and, paused, the
CPU seconds per second of the live thread, the grabber thread and the whole process.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's code


def _thread_cpu(tid: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    try:
        with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _children_cpu() -> float:
    """CPU seconds of this process's live child processes (the paced demo's render process)."""
    me, total = os.getpid(), 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            if int(f[1]) == me:                      # the parent pid
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _tid_named(name: str) -> int | None:
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm", encoding="ascii") as fh:
                if fh.read().strip() == name:
                    return int(t)
        except OSError:
            pass
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="demo")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--paused-seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after the first frame before measuring")
    p.add_argument("--profile", default=None, help="write the Qt thread's cProfile (top functions) here")
    p.add_argument("--size", default="1360x860", help="window size")
    p.add_argument("--threads", type=int, default=0, help="Settings > CPU threads (0: the default)")
    p.add_argument("--json", default=None)
    a = p.parse_args()

    from PySide6 import QtCore, QtWidgets
    from app.main_window import MainWindow
    from app.settings import SettingsStore

    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # kept alive while measuring
    tmp = tempfile.mkdtemp(prefix="dmsl-appspeed-")
    store = SettingsStore(QtCore.QSettings(os.path.join(tmp, "settings.ini"), QtCore.QSettings.IniFormat))
    settings = store.load()
    settings.threads = a.threads
    win = MainWindow(source=None, store=store, settings=settings, autostart=False)
    w, h = (int(v) for v in a.size.split("x"))
    win.resize(w, h)
    win.show()

    def spin(seconds: float, until=None) -> None:
        """Run Qt's event loop (it sleeps when there is nothing to do) for ``seconds`` or until ``until()``."""
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        check = QtCore.QTimer()
        if until is not None:
            check.timeout.connect(lambda: until() and loop.quit())
            check.start(50)
        loop.exec()
        check.stop()

    win.open_source(a.source)
    spin(120, until=lambda: win.drawn >= 1 or bool(win.last_error))
    if win.last_error:
        print(f"error: {win.last_error}", file=sys.stderr)
        return 1
    spin(a.warmup)
    worker = win.live
    live_tid = _tid_named("live")
    grab = next((t.native_id for t in threading.enumerate() if t.name == "dmsl-grabber"), None)
    cpu0 = {"qt_main": time.thread_time(), "live": _thread_cpu(live_tid) if live_tid else float("nan"),
            "grabber": _thread_cpu(grab) if grab else float("nan"), "process": time.process_time(),
            "child_processes": _children_cpu()}
    def source_skipped() -> int:
        return int(getattr(worker.source, "skipped_frames", 0) or 0)

    d0, p0, s0, t0 = win.drawn, worker.stats.processed, worker.stats.display_dropped, time.monotonic()
    r0, k0 = worker.stats.dropped, source_skipped()
    prof = cProfile.Profile() if a.profile else None
    if prof:
        prof.enable()
    spin(a.seconds)
    if prof:
        prof.disable()
    dt = time.monotonic() - t0
    cpu1 = {"qt_main": time.thread_time(), "live": _thread_cpu(live_tid) if live_tid else float("nan"),
            "grabber": _thread_cpu(grab) if grab else float("nan"), "process": time.process_time(),
            "child_processes": _children_cpu()}
    out = {"source": a.source, "seconds": round(dt, 2), "model": win.model.name if win.model else None,
           "device": win.model.device if win.model else None,
           "drawn_fps": round((win.drawn - d0) / dt, 2), "pipeline_fps": round((worker.stats.processed - p0) / dt, 2),
           "window_skipped": worker.stats.display_dropped - s0,
           "runner_dropped": worker.stats.dropped - r0,  # frames the pipeline was too busy for (live sources)
           "source_skipped": source_skipped() - k0}      # frames a paced demo rendered too late to show
    out["drawn_over_pipeline"] = round(out["drawn_fps"] / out["pipeline_fps"], 3) if out["pipeline_fps"] else None
    out["playing_cpu_per_s"] = {k: round((cpu1[k] - cpu0[k]) / dt, 3) for k in cpu0}
    n = max(1, win.drawn - d0)
    out["qt_main_cpu_ms_per_drawn_frame"] = round((cpu1["qt_main"] - cpu0["qt_main"]) / n * 1000, 2)
    out["live_cpu_ms_per_frame"] = round((cpu1["live"] - cpu0["live"]) / max(1, worker.stats.processed - p0) * 1000, 2)

    # paused: what the live thread, the grabber and the whole process use
    win.toggle_play()
    spin(5, until=lambda: worker.paused)
    spin(0.5)
    c_live = _thread_cpu(live_tid) if live_tid else float("nan")
    c_grab = _thread_cpu(grab) if grab else 0.0
    tasks = {int(t): _thread_cpu(int(t)) for t in os.listdir("/proc/self/task")}
    c_proc, c_kids, t1 = time.process_time(), _children_cpu(), time.monotonic()
    n_paused = worker.stats.processed
    spin(a.paused_seconds)
    dtp = time.monotonic() - t1
    out["paused"] = {"seconds": round(dtp, 2), "processed": worker.stats.processed - n_paused,
                     "live_thread_cpu_per_s": round((_thread_cpu(live_tid) - c_live) / dtp, 4) if live_tid else None,
                     "grabber_cpu_per_s": round(((_thread_cpu(grab) if grab else 0.0) - c_grab) / dtp, 4),
                     "process_cpu_per_s": round((time.process_time() - c_proc) / dtp, 4),
                     "child_processes_cpu_per_s": round((_children_cpu() - c_kids) / dtp, 4)}

    def comm(t: int) -> str:
        try:
            with open(f"/proc/self/task/{t}/comm", encoding="ascii") as fh:
                return fh.read().strip() + ("" if t != threading.main_thread().native_id else " (Qt main)")
        except OSError:
            return "?"
    busiest = sorted(((_thread_cpu(t) - c) / dtp, t) for t, c in tasks.items())[::-1][:4]
    out["paused"]["busiest_threads"] = [{"thread": comm(t), "cpu_per_s": round(v, 4)} for v, t in busiest]
    win.shutdown()
    win.close()
    print(json.dumps(out, indent=2))
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
        with open(a.profile, "w", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
