"""A dark Fusion theme and the few style rules the app's widgets use (object names)."""
from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from .views import ACCENT

BG = "#1b1d21"
PANEL = "#23262b"
BORDER = "#33373e"
TEXT = "#dfe3e8"
DIM = "#8c939d"

STYLE = f"""
QMainWindow, QDialog {{ background: {BG}; }}
QToolBar {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER}; spacing: 4px; padding: 3px 6px; }}
QToolBar QToolButton {{ padding: 4px 8px; border-radius: 4px; color: {TEXT}; }}
QToolBar QToolButton:hover {{ background: #30343a; }}
QToolBar QToolButton:checked {{ background: #3a3f47; }}
QToolButton#Record:checked {{ background: #b3261e; color: white; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {TEXT}; }}
QStatusBar QLabel {{ color: {TEXT}; padding: 0 8px; border-left: 1px solid {BORDER}; }}
QStatusBar QLabel#StatusWarn {{ color: #ffb74d; }}
QFrame#SpectrumView {{ background: {PANEL}; border: 2px solid {BORDER}; border-radius: 6px; }}
QFrame#SpectrumView[trusted="true"] {{ border: 2px solid {ACCENT}; }}
QLabel#ViewTitle {{ font-weight: 600; font-size: 13px; color: {TEXT}; }}
QLabel#ViewInfo {{ color: {DIM}; }}
QLabel#Badge {{ background: {ACCENT}; color: #1b1d21; border-radius: 8px; padding: 1px 8px; font-weight: 600; font-size: 11px; }}
QLabel#Readout {{ color: {DIM}; font-family: monospace; padding: 0 6px; }}
QFrame#Panel {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QLabel#PanelTitle {{ color: {DIM}; font-size: 10px; font-weight: 700; letter-spacing: 1px; }}
QLabel#Dim, QLabel#Hint {{ color: {DIM}; }}
QLabel#Value {{ color: {TEXT}; font-family: monospace; }}
QLabel#Reason {{ color: {TEXT}; }}
QLabel#Pill {{ border-radius: 9px; padding: 2px 10px; font-weight: 700; background: #3a3f47; color: {TEXT}; }}
QLabel#Pill[spectrum="vis"] {{ background: #4fc3f7; color: #10161c; }}
QLabel#Pill[spectrum="th"] {{ background: {ACCENT}; color: #1b1d21; }}
QFrame#Banner {{ border-radius: 6px; }}
QFrame#Banner[level="error"] {{ background: #4a1f1f; border: 1px solid #b3261e; }}
QFrame#Banner[level="warn"] {{ background: #463a1c; border: 1px solid #c99a2e; }}
QFrame#Banner[level="info"] {{ background: #1f3446; border: 1px solid #2e7bc9; }}
QFrame#Banner QLabel {{ color: {TEXT}; }}
QToolButton#Segment {{ background: #2c3036; border: 1px solid {BORDER}; padding: 4px 10px; color: {TEXT}; }}
QToolButton#Segment[pos="first"] {{ border-top-left-radius: 5px; border-bottom-left-radius: 5px; }}
QToolButton#Segment[pos="last"] {{ border-top-right-radius: 5px; border-bottom-right-radius: 5px; }}
QToolButton#Segment:checked {{ background: {ACCENT}; color: #1b1d21; font-weight: 700; border-color: {ACCENT}; }}
QToolButton#Segment:hover:!checked {{ background: #363b42; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: {PANEL}; color: {DIM}; padding: 6px 16px; border: 1px solid {BORDER}; border-bottom: none;
               border-top-left-radius: 5px; border-top-right-radius: 5px; margin-right: 2px; }}
QTabBar::tab:selected {{ color: {TEXT}; background: #2c3036; border-bottom: 2px solid {ACCENT}; }}
QTableWidget {{ background: {PANEL}; alternate-background-color: #262a30; gridline-color: {BORDER};
                selection-background-color: #3d4450; border: 1px solid {BORDER}; }}
QHeaderView::section {{ background: #2c3036; color: {DIM}; border: none; border-right: 1px solid {BORDER}; padding: 4px; }}
QSlider::groove:horizontal {{ height: 4px; background: #3a3f47; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {TEXT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QProgressBar {{ border: 1px solid {BORDER}; border-radius: 4px; text-align: center; background: {PANEL}; color: {TEXT}; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
"""


def apply_dark_theme(app: QtWidgets.QApplication) -> None:
    app.setStyle("Fusion")
    pal = QtGui.QPalette()
    c = QtGui.QColor
    pal.setColor(QtGui.QPalette.Window, c(BG))
    pal.setColor(QtGui.QPalette.WindowText, c(TEXT))
    pal.setColor(QtGui.QPalette.Base, c("#202328"))
    pal.setColor(QtGui.QPalette.AlternateBase, c("#262a30"))
    pal.setColor(QtGui.QPalette.ToolTipBase, c(PANEL))
    pal.setColor(QtGui.QPalette.ToolTipText, c(TEXT))
    pal.setColor(QtGui.QPalette.Text, c(TEXT))
    pal.setColor(QtGui.QPalette.Button, c("#2c3036"))
    pal.setColor(QtGui.QPalette.ButtonText, c(TEXT))
    pal.setColor(QtGui.QPalette.BrightText, c("#ff6b6b"))
    pal.setColor(QtGui.QPalette.Highlight, c("#3d6fa8"))
    pal.setColor(QtGui.QPalette.HighlightedText, c("#ffffff"))
    pal.setColor(QtGui.QPalette.Link, c("#4fc3f7"))
    pal.setColor(QtGui.QPalette.PlaceholderText, c(DIM))
    for role in (QtGui.QPalette.WindowText, QtGui.QPalette.Text, QtGui.QPalette.ButtonText):
        pal.setColor(QtGui.QPalette.Disabled, role, c("#666b73"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)
