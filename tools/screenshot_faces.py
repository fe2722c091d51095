"""The picture of every face in the live view (docs/screenshot_faces.png): the main window with the
shipped model and Faces = every face, on a scene with three faces.

    QT_QPA_PLATFORM=offscreen python tools/screenshot_faces.py [--out docs/screenshot_faces.png]

The scene is the three-astronaut canvas of tests/core/test_detection.py (scikit-image's astronaut head
pasted three times, faces of about 100, 60 and 34 px on a 640 x 512 frame) as the visible image, and
the same canvas made thermal by ``dmsl thermalize``'s converter (16-bit centi-kelvin, so the thermal
view has degrees; the canvas around the heads set to 20 C) as the thermal one; both are written to a temporary folder and opened as one pair
(``pair:VIS|TH?th_format=u16_ck&registered=1``: the converter keeps the pixel grid) in spectrum mode
"both", so each view shows its own detections, under one id per person.
``--grey`` adds a second shot with a plain grey visible image instead (the "no face" look).

The window runs with fresh settings (the user's saved settings are neither read nor written) and is
shot with ``win.grab()`` once the first frame is drawn. A few seconds on a CPU. Exit status 0 when the
PNG was written, 1 when the window did not draw a frame in ``--timeout`` seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshot_faces.png"), help="PNG to write")
    p.add_argument("--grey", default="", help="also shoot a plain grey visible image (no face) into this PNG")
    p.add_argument("--weights", default="dmsl-default", help="model weights (default: the shipped model)")
    p.add_argument("--size", default="1360x860", help="window size WxH (default 1360x860)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the first frame")
    return p.parse_args(argv)


def write_scene(d: Path) -> tuple[Path, Path, Path]:
    import numpy as np

    from dmsl_core.data.imageio import write_image
    from tests.core.test_detection import thermal_astronauts, three_astronauts

    vis, _ = three_astronauts()
    th, _ = thermal_astronauts()
    # the canvas around the heads is 29315 + 2000 cK = 40 C there, hotter than the faces: a room at 20 C
    th[th == 29315 + 2000] = 29315
    paths = d / "three_vis.png", d / "three_th.png", d / "grey_vis.png"
    write_image(paths[0], vis)
    write_image(paths[1], th)
    write_image(paths[2], np.full_like(vis, 128))
    return paths


def shoot(app, win, uri: str, out: str, timeout: float) -> bool:
    from PySide6 import QtCore

    start = win.drawn
    win.open_source(uri)
    t0 = time.monotonic()
    while win.drawn <= start and not win.last_error and time.monotonic() - t0 < timeout:
        app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        time.sleep(0.01)
    if win.drawn <= start:
        print(f"screenshot_faces: no frame drawn from {uri} ({win.last_error or 'timeout'})", file=sys.stderr)
        return False
    for _ in range(20):                      # the status bar's timer and the last paint
        app.processEvents(QtCore.QEventLoop.AllEvents, 20)
        time.sleep(0.02)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ok = win.grab().save(out)
    r = win.last_result
    faces = {s: [f"#{f.id} {f.score:.2f} box {[round(float(v)) for v in f.boundary]}" for f in fs]
             for s, fs in (r.faces.items() if r is not None else [])}
    print(f"screenshot_faces: {out}: {win.st_faces.text() or 'faces not tracked'}; {faces}", file=sys.stderr)
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from app.settings import AppSettings, SettingsStore
    from app.theme import apply_dark_theme

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    apply_dark_theme(app)
    with tempfile.TemporaryDirectory(prefix="dmsl-faces-") as tmp:
        vis, th, grey = write_scene(Path(tmp))
        store = SettingsStore(QtCore.QSettings(str(Path(tmp) / "settings.ini"), QtCore.QSettings.IniFormat))
        s = AppSettings(weights=args.weights, device="cpu", mode="both", faces="every",
                        record_dir=str(Path(tmp) / "rec"))
        win = MainWindow(store=store, settings=s, autostart=False)
        w, h = (int(x) for x in args.size.lower().split("x"))
        win.resize(w, h)
        win.show()
        ok = shoot(app, win, f"pair:{vis}|{th}?th_format=u16_ck&registered=1", args.out, args.timeout)
        if ok and args.grey:
            ok = shoot(app, win, f"pair:{grey}|{th}?th_format=u16_ck&registered=1", args.grey, args.timeout)
        win.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
