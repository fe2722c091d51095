"""The binding workarounds (app/compat.py): the bool refcount guard keeps signals safe."""
from __future__ import annotations

from PySide6 import QtCore


def test_bool_refcount_guard_keeps_signals_safe():
    import sys


    from app.compat import bool_refcount_leaks, guard_bool_refcount

    class O(QtCore.QObject):
        sig = QtCore.Signal()

    o = O()
    o.sig.connect(lambda: None)
    if bool_refcount_leaks():                       # the binding has the bug: the guard must be on
        assert guard_bool_refcount()
    for _ in range(5000):
        o.sig.emit()
    assert sys.getrefcount(True) > 10_000 or not bool_refcount_leaks()
