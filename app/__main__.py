"""DMSL Studio's command line: ``python -m app`` / ``python main.py`` / ``dmsl-studio``.

``python main.py --source URI --frames N --screenshot OUT.png`` runs the window until N frames
were drawn (or the source ended), saves a screenshot and exits 0 (2 when the source failed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from PySide6 import QtCore, QtWidgets

from .main_window import MainWindow
from .palettes import PALETTES
from .settings import SettingsStore


# ---- command line ----------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dmsl-studio", description="DMSL Studio desktop app")
    p.add_argument("--source", default=None, help="source URI to open (default: the built-in demo)")
    p.add_argument("--folder", default=None, help="open this image folder in the folder browser")
    p.add_argument("--sort-nme", action="store_true", help="with --folder: sort the pairs by NME, worst first")
    p.add_argument("--annotate", default=None, metavar="DIR", help="open the annotation view on this dataset folder")
    p.add_argument("--frames", type=int, default=60, help="with --screenshot: frames to draw first (default 60)")
    p.add_argument("--screenshot", default=None, help="save a screenshot of the window to this PNG and exit")
    p.add_argument("--timeout", type=float, default=300.0, help="with --screenshot: give up after this many seconds")
    p.add_argument("--mode", default=None, choices=("auto", "visible", "thermal", "both"), help="spectrum mode")
    p.add_argument("--palette", default=None, choices=PALETTES, help="thermal palette")
    p.add_argument("--weights", default=None, help="model weights (run folder, .safetensors, shipped name)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--size", default=None, help="window size WxH (e.g. 1360x860)")
    p.add_argument("--fresh", action="store_true", help="ignore saved settings (and do not save them)")
    return p.parse_args(argv)


def _screenshot_run(app: QtWidgets.QApplication, win: MainWindow, args: argparse.Namespace) -> int:
    """Run until N frames were drawn (or the source/folder finished), save the window, exit."""
    t0 = time.perf_counter()
    state = {"done": False, "rc": 0, "first": None}
    loop = QtCore.QEventLoop()
    browsing = args.folder is not None and args.source is None

    def finish(rc: int) -> None:
        if not state["done"]:
            state["done"], state["rc"] = True, rc
            QtCore.QTimer.singleShot(150, loop.quit)  # let the last frame paint

    def drawn(n: int) -> None:
        if n == 1:
            state["first"] = time.perf_counter()
        if n >= args.frames:
            finish(0)

    def live_finished() -> None:
        finish(2 if win.last_error else 0)

    if browsing:
        def check() -> None:
            if win.browser.done and not win.browser.running:
                if args.sort_nme:
                    win.browser.sort_by_nme()
                finish(0 if win.browser.entries else 2)
        timer = QtCore.QTimer()
        timer.timeout.connect(check)
        timer.start(100)
    else:
        win.resultDrawn.connect(drawn)
        win.liveFinished.connect(live_finished)
    QtCore.QTimer.singleShot(int(args.timeout * 1000), lambda: finish(1))
    loop.exec()
    live = win.live
    stats = live.stats if live is not None else None
    app.processEvents()
    ok = win.grab().save(args.screenshot)
    if not browsing and state["first"] is not None and win.drawn > 1:
        span = (win._draw_times[-1] - state["first"]) if win._draw_times else 0.0
        fps = (win.drawn - 1) / span if span > 0 else 0.0
        msg = f"dmsl-studio: drew {win.drawn} frames, {fps:.2f} fps displayed"
        if stats is not None:
            msg += f" (processed {stats.processed}, source dropped {stats.dropped}, window skipped {stats.display_dropped})"
        print(msg, file=sys.stderr)
    if win.last_error:
        print(f"dmsl-studio: {win.last_error}", file=sys.stderr)
    print(f"dmsl-studio: screenshot {args.screenshot} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    win.close()
    return state["rc"] if ok else 1


NO_DISPLAY_MESSAGE = (
    "dmsl-studio: no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set, and no "
    "QT_QPA_PLATFORM). Run it on a desktop session, or without a screen:\n"
    "  xvfb-run -a python main.py                   # on a virtual X display (apt install xvfb)\n"
    "  QT_QPA_PLATFORM=offscreen python main.py     # with no window at all (scripts, tests)\n"
    "  python main.py --screenshot shot.png         # a PNG of the window (needs no display)\n"
    "The command line needs no display: python -m dmsl_core.cli --help")


def display_missing(environ: Optional[dict] = None, platform: str = sys.platform) -> bool:
    """True on Linux / BSD when Qt has nothing to draw on: no X11 or Wayland display, no QT_QPA_PLATFORM
    (Qt would abort with its xcb plugin hint). Windows and macOS always have their own platform."""
    env = os.environ if environ is None else environ
    if platform.startswith(("win", "darwin", "cygwin")):
        return False
    return not any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if QtWidgets.QApplication.instance() is None and display_missing():
        if not args.screenshot:
            print(NO_DISPLAY_MESSAGE, file=sys.stderr)
            return 2
        os.environ["QT_QPA_PLATFORM"] = "offscreen"   # a screenshot needs no screen
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("DMSL Studio")
    app.setOrganizationName("DMSL")
    from .theme import apply_dark_theme
    apply_dark_theme(app)
    tmp_dir = None
    if args.fresh or args.screenshot:
        # screenshots and --fresh runs neither read nor change the user's saved settings
        tmp_dir = QtCore.QTemporaryDir()
        store = SettingsStore(QtCore.QSettings(tmp_dir.filePath("settings.ini"), QtCore.QSettings.IniFormat))
    else:
        store = SettingsStore()
    s = store.load()
    for key in ("mode", "palette", "weights", "device", "threads"):
        v = getattr(args, key)
        if v is not None:
            setattr(s, key, v)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    win = MainWindow(source=None, store=store, settings=s, autostart=False)
    if args.size:
        try:
            w, h = (int(x) for x in args.size.lower().split("x"))
            win.resize(w, h)
        except ValueError:
            print(f"dmsl-studio: --size {args.size!r} is not WxH", file=sys.stderr)
            return 2
    elif args.screenshot:
        win.resize(1360, 860)
    win.show()
    if args.folder:
        win.open_folder(args.folder)
        if args.sort_nme and not args.screenshot:
            win.browser.handle.on("finished", win.browser.sort_by_nme)
    if args.annotate and not args.screenshot:
        win.open_annotation(args.annotate)
    if args.source or not args.folder:
        win.open_source(args.source or "demo")
        if args.folder:
            win.tabs.setCurrentWidget(win.browser)
    rc = _screenshot_run(app, win, args) if args.screenshot else app.exec()
    from .workers import drain_parked
    if not drain_parked(5000):
        # a thread stuck in a driver call cannot be killed; leave without waiting for it
        print("dmsl-studio: a worker thread is stuck (camera driver?); exiting without it", file=sys.stderr)
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
