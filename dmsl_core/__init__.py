"""dmsl_core - the DMSL (Deep Multi-Spectral Learning) facial landmark library.

No Qt anywhere in this package (tests/core/test_no_qt.py enforces it). Layers:

- ``landmarks``  the iBUG 68-point scheme: groups, mirror permutation, boundary B
- ``masks``      face-boundary mask and the paper's Algorithm 1 glow mask
- ``losses``     eq. 1 (boundary MSE), eq. 2 (landmark loss), eq. 4 (pixel BCE)
- ``models``     U-Net, M_b / M_l, named configurations, weight files
- ``preprocess`` square views (crop/pad + resize), intensity normalisation, blackout
- ``pipeline``   Predictor: image(s) -> boundary -> blackout -> 68 landmarks (pixels)
- ``training``   two-stage trainer with events, checkpoints, resume, cancel
- ``evaluation`` NME (eq. 3), CED, AUC, failure rates, JSON reports
- ``data``       samples, the dataset folder (manifest.csv + .pts), image I/O, splits
- ``threads``    CPU threading for torch, ONNX Runtime and OpenCV (measured defaults)
- ``cli``        the ``dmsl`` command
"""

__version__ = "0.1.0"

# OpenMP's wait policy must be in the environment before torch loads libgomp (dmsl_core/threads.py)
from .threads import set_wait_policy_env as _set_wait_policy_env  # noqa: E402

_set_wait_policy_env()
