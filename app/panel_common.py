"""Small pieces shared by the Train / Evaluate / Models tabs."""
from __future__ import annotations

from typing import Optional

from PySide6 import QtCore, QtWidgets


class MessageStrip(QtWidgets.QFrame):
    """A message line (styled like the main window's banner: ``QFrame#Banner[level=...]``)."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(10, 5, 6, 5)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        close = QtWidgets.QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        self.level = level
        self.setProperty("level", level)
        self.label.setText(text)
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()

    def clear(self) -> None:
        self.level = ""
        self.label.setText("")
        self.hide()

    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""


def title(text: str) -> QtWidgets.QLabel:
    lab = QtWidgets.QLabel(text.upper())
    lab.setObjectName("PanelTitle")
    return lab


def path_row(edit: QtWidgets.QLineEdit, *buttons: QtWidgets.QAbstractButton) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(4)
    lay.addWidget(edit, 1)
    for b in buttons:
        lay.addWidget(b)
    return w


def fmt_num(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:
        return "—"
    if f == float("inf"):
        return "inf"
    return f"{f:.{digits}f}"


def fmt_eta(s) -> str:
    if s is None:
        return "--"
    try:
        s = int(round(float(s)))
    except (TypeError, ValueError):
        return "--"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
