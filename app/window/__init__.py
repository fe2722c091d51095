"""The parts of the main window (mixins of :class:`app.main_window.MainWindow`): its actions and
menus, drawing a result, recording and export."""
from .drawing import LiveDrawing
from .menus import WindowActions
from .recording import RecordingExport

__all__ = ["LiveDrawing", "RecordingExport", "WindowActions"]
