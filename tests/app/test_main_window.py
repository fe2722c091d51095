import subprocess
import sys
from pathlib import Path

from app.main_window import MainWindow


def test_main_window_lists_configurations(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    names = [win.table.item(r, 0).text() for r in range(win.table.rowCount())]
    assert "dmsl-paper" in names and "dmsl-compact" in names
    assert "Device" in win.statusBar().currentMessage()


def test_main_py_screenshot_exits_zero(tmp_path):
    out = tmp_path / "shot.png"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "main.py"), "--screenshot", str(out)], capture_output=True,
                       text=True, timeout=120, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    assert out.exists() and out.stat().st_size > 1000
