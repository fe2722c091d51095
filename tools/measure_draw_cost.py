"""The Qt thread's cost per drawn frame, apart from everything else: the real MainWindow (offscreen)
collects ``--results`` results from the demo, pauses, and then draws them again and again
(``draw_result`` and the repaint it causes, events processed), timed per frame; the median of each
pass over them, ``--passes`` passes.

    QT_QPA_PLATFORM=offscreen python tools/measure_draw_cost.py [--code OTHER_CHECKOUT] [--profile]

``--code`` runs another checkout's app (e.g. a ``git worktree`` of an older commit) with this
script, so two versions can be measured in turn in one session.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--source", default="demo:?realtime=0")
    p.add_argument("--results", type=int, default=40)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--size", default="1360x860")
    p.add_argument("--profile", action="store_true", help="print the top functions of two more passes")
    a = p.parse_args()
    sys.path.insert(0, os.path.abspath(a.code))
    from PySide6 import QtCore, QtWidgets
    from app.main_window import MainWindow
    from app.settings import SettingsStore

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    tmp = tempfile.mkdtemp(prefix="dmsl-drawcost-")
    store = SettingsStore(QtCore.QSettings(os.path.join(tmp, "settings.ini"), QtCore.QSettings.IniFormat))
    win = MainWindow(source=None, store=store, settings=store.load(), autostart=False)
    w, h = (int(v) for v in a.size.split("x"))
    win.resize(w, h)
    win.show()
    results = []
    win.resultDrawn.connect(lambda n: results.append(win.last_result))
    win.open_source(a.source)
    loop = QtCore.QEventLoop()
    check = QtCore.QTimer()
    check.timeout.connect(lambda: (len(results) >= a.results + 20 or win.last_error) and loop.quit())
    check.start(20)
    QtCore.QTimer.singleShot(180000, loop.quit)
    loop.exec()
    check.stop()
    if win.last_error or len(results) < a.results:
        print(f"error: {win.last_error or 'too few results'}", file=sys.stderr)
        return 1
    win.toggle_play()
    end = time.monotonic() + 2
    while time.monotonic() < end:
        app.processEvents()
    rs = results[-a.results:]

    def one(r) -> None:
        win.draw_result(r)
        app.processEvents()

    def one_pass() -> float:
        ts = []
        for r in rs:
            t0 = time.perf_counter()
            one(r)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1000

    one_pass()  # warm-up
    meds = [one_pass() for _ in range(a.passes)]
    print(f"{a.code}: ms per drawn frame, median of each pass: {[round(m, 2) for m in meds]}, best {min(meds):.2f}")
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        one_pass()
        one_pass()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(30)
    win.shutdown()
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
