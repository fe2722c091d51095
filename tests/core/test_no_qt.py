"""dmsl_core must never import Qt, directly or through its imports."""
import pkgutil
import subprocess
import sys

import dmsl_core


def test_no_module_of_dmsl_core_pulls_in_qt():
    mods = [m.name for m in pkgutil.walk_packages(dmsl_core.__path__, "dmsl_core.")]
    assert "dmsl_core.pipeline" in mods and "dmsl_core.training" in mods
    code = (
        "import importlib, sys\n"
        f"mods = {mods!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "import dmsl_core.cli; dmsl_core.cli.build_parser()\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"Qt imported by dmsl_core: {r.stdout} {r.stderr[-2000:]}"
