"""DMSL Studio's desktop app (PySide6 + pyqtgraph). All Qt code of the project lives here;
:mod:`dmsl_core` never imports Qt."""
from .compat import guard_bool_refcount as _guard

_guard()  # PySide6 6.12.0 + CPython < 3.12 would otherwise crash after a few thousand signals
