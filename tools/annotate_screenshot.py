"""The README's picture of the annotation view: a copy of an annotated dataset, the pairs ordered by
Dlib-vs-model disagreement, the chin point corrected by hand, the mouth group chosen.

    QT_QPA_PLATFORM=offscreen python tools/annotate_screenshot.py DATASET OUT.png

DATASET should have been annotated with ``dmsl annotate --source both`` (the copy is edited, the
dataset is not).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__)
        return 2
    from PySide6 import QtCore, QtWidgets

    from app.annotate_view import AnnotateWindow
    from app.theme import apply_dark_theme

    tmp = Path(tempfile.mkdtemp()) / "data"
    shutil.copytree(argv[0], tmp)
    app = QtWidgets.QApplication([])
    apply_dark_theme(app)
    w = AnnotateWindow()
    w.resize(1280, 620)
    w.show()
    v = w.view
    v.open_dataset(str(tmp))
    t = QtCore.QElapsedTimer()
    t.start()
    while not v.ready and t.elapsed() < 20000:
        app.processEvents()
    if not v.ready:
        print(f"could not open {argv[0]}: {v.last_error}")
        return 1
    v.set_order(True)
    v.show_pair(0)
    v.move_points("vis", [8], v.ann.vis[8] + [0, 4])
    v.group_box.setCurrentText("mouth")
    for _ in range(30):
        app.processEvents()
    w.grab().save(argv[1])
    print(f"wrote {argv[1]}: {v.info.text()}")
    shutil.rmtree(tmp.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
