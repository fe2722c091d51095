"""Work-arounds for bugs of the Qt binding that would crash the app.

PySide6 6.12.0 on CPython < 3.12 drops references it does not own: one to ``True`` on every
signal emission (connected or not), and one to ``None`` on every Python slot or virtual-method
call that returns None (timers, pyqtgraph's paint path). Measured: 200 emissions ->
``sys.getrefcount(True)`` 200 lower; 100 redraws of a pyqtgraph view -> ``None`` 3700 lower.
6.11.3 is fine. A live view does this thousands of times a minute, so within a minute CPython
aborts with "Fatal Python error: bool_dealloc: deallocating True or False" (or ``none_dealloc``).
On CPython >= 3.12 these objects are immortal and the bug is harmless.

:func:`guard_bool_refcount` detects the leak with a few probe emissions and, only when it is
there, raises the reference counts of ``True``, ``False`` and ``None`` by 2**40 (what CPython
3.12 does for immortal objects), so the leak can never reach zero. The real fix is a PySide6
release without the bug (pin ``PySide6!=6.12.0``).
"""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("dmsl.app.compat")

_GUARDED = False


def bool_refcount_leaks(probes: int = 64) -> bool:
    """True when a signal emission to a Python callable loses a reference to ``True``."""
    from PySide6 import QtCore

    class _Probe(QtCore.QObject):
        sig = QtCore.Signal()

    p = _Probe()
    p.sig.connect(_noop)
    before = sys.getrefcount(True)
    for _ in range(probes):
        p.sig.emit()
    after = sys.getrefcount(True)
    p.sig.disconnect(_noop)
    return after <= before - probes // 2


def _noop() -> None:
    pass


def guard_bool_refcount() -> bool:
    """Apply the work-around when needed (once per process); True when it was applied."""
    global _GUARDED
    if _GUARDED:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    try:
        leaks = bool_refcount_leaks()
    except Exception:  # noqa: BLE001 - never stop the app for a probe
        return False
    if not leaks:
        return False
    import ctypes

    from PySide6 import __version__ as pyside_version
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _GUARDED = True
    log.warning("PySide6 %s loses a reference to True on each signal emission; made True/False/None immortal "
                "to avoid a crash (install another PySide6 version, e.g. 6.11.3, to remove this)", pyside_version)
    return True
