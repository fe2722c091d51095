"""DMSL Studio's main window.

This first version is a minimal window: the model configurations, shipped models and the
compute device. The live dual-spectrum view, folders, recording, training and evaluation
panels are built on top of it by the desktop-app issues.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from PySide6 import QtCore, QtWidgets

from dmsl_core import __version__


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        from dmsl_core.device import describe_device, resolve_device
        from dmsl_core.models import get_config, list_configs
        from dmsl_core.models.weights import shipped_models

        self.setWindowTitle(f"DMSL Studio {__version__}")
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        title = QtWidgets.QLabel(f"<h2>DMSL Studio {__version__}</h2>"
                                 "<p>Multi-spectral (visible + thermal) facial landmark detection.</p>")
        lay.addWidget(title)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["configuration", "U-Net widths", "hidden", "input"])
        for name in list_configs():
            c = get_config(name)
            r = self.table.rowCount()
            self.table.insertRow(r)
            for col, val in enumerate([name, "-".join(map(str, c.widths)), str(c.hidden), f"{c.input_size}"]):
                self.table.setItem(r, col, QtWidgets.QTableWidgetItem(val))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        lay.addWidget(self.table)
        shipped = shipped_models()
        dev = resolve_device("auto")
        lay.addWidget(QtWidgets.QLabel(f"Shipped models: {', '.join(shipped) if shipped else 'none yet'}"))
        self.statusBar().showMessage(f"Device: {describe_device(dev)}")
        self.setCentralWidget(central)
        self.resize(720, 420)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dmsl-studio", description="DMSL Studio desktop app")
    p.add_argument("--screenshot", default=None, help="save a screenshot of the window to this PNG and exit")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    win = MainWindow()
    win.show()
    if args.screenshot:
        app.processEvents()
        ok = win.grab().save(args.screenshot)
        win.close()
        return 0 if ok else 1
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
