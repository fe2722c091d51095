"""CPU threading for every backend, in one place (placeholder docstring, numbers follow)."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

log = logging.getLogger("dmsl.threads")

#: OpenMP's wait policy for torch's intra-op pool. libgomp reads it once, when torch loads it.
WAIT_POLICY = "PASSIVE"
#: ONNX Runtime's intra-op workers busy-wait between ops unless told not to.
ORT_SPINNING = False

_state: dict = {"wait_policy_set_by_dmsl": False, "torch_loaded_before_dmsl": None}


def set_wait_policy_env() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user set it; called when ``dmsl_core`` is imported,
    which is before torch in every dmsl entry point. Where torch was imported first the variable
    comes too late for this process (libgomp has read it) and :func:`summary` says so."""
    _state["torch_loaded_before_dmsl"] = "torch" in sys.modules
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        _state["wait_policy_set_by_dmsl"] = True


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def ort_session_options(threads: Optional[int] = None, spinning: Optional[bool] = None):
    """ONNX Runtime session options: ``threads`` intra-op threads (default: torch's count, which
    :func:`configure` set), one inter-op thread, and no spinning unless ``spinning``."""
    import onnxruntime as ort
    import torch
    spin = ORT_SPINNING if spinning is None else bool(spinning)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    return opts


#: the most intra-op threads chosen by default (the models are small; more cores than this were
#: not measured)
MAX_THREADS = 4
#: OpenCV's worker threads (pre-processing: resize / warpAffine of one frame)
CV2_THREADS = 1


def default_threads(busy_beside: int = 1) -> int:
    """Intra-op threads for the pipeline: the cores less the busy threads that run beside it (the
    window's GUI thread, or ``dmsl run``'s reader and writer), at least 1, at most MAX_THREADS."""
    return max(1, min(MAX_THREADS, cpu_count() - max(0, int(busy_beside))))


def configure(threads: Optional[int] = None, busy_beside: int = 1) -> dict:
    """Apply the pipeline's threading: torch intra-op ``threads`` (default :func:`default_threads`),
    one inter-op thread, OpenCV at CV2_THREADS (ONNX Runtime sessions made afterwards take torch's
    count, see :func:`ort_session_options`). Returns :func:`summary`."""
    import torch
    n = int(threads) if threads else default_threads(busy_beside)
    if n < 1:
        raise ValueError(f"threads must be 1 or more, got {threads!r}")
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:   # only possible before torch's inter-op pool started; it is idle anyway
        pass
    try:
        import cv2
        cv2.setNumThreads(CV2_THREADS)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    _state["configured"] = n
    s = summary()
    log.info("threads: %s", s)
    return s


def summary() -> dict:
    """What is in force (for logs, ``dmsl bench`` and the status bar)."""
    out = {"cpu_count": cpu_count(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "wait_policy_set_by_dmsl": _state["wait_policy_set_by_dmsl"],
           "wait_policy_in_force": not _state["torch_loaded_before_dmsl"] or not _state["wait_policy_set_by_dmsl"],
           "configured": _state.get("configured"), "ort_spinning": ORT_SPINNING}
    if "torch" in sys.modules:
        import torch
        out.update(torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads())
    if "cv2" in sys.modules:
        out["cv2_threads"] = sys.modules["cv2"].getNumThreads()
    return out
