"""CPU threading for every backend of the pipeline, chosen by measurement and applied in one place.

What is set, and where:

- **OpenMP wait policy** (torch's intra-op pool, libgomp): ``OMP_WAIT_POLICY=PASSIVE`` is put in the
  environment when ``dmsl_core`` is imported, unless the user set it. libgomp reads it once, when
  torch loads it, so this works wherever dmsl_core comes before torch (every dmsl entry point, the
  app; ``tests/core/test_threads.py`` checks that an idle OpenMP worker then costs no CPU). Where
  torch was imported first it comes too late for that process; :func:`summary` says so.
- **torch intra-op threads**: :func:`default_threads` = the cores less the busy threads beside the
  pipeline (the app's GUI thread; ``dmsl run``'s reader), 1..MAX_THREADS; ``OMP_NUM_THREADS`` (the
  user's or torchrun's choice) wins; ``--threads`` / Settings > CPU threads win over both.
  **Inter-op**: 1 (the pipeline never forks ops). Applied by :func:`configure`, called by the app
  (``app/live.py: load_model``), ``dmsl run`` / ``dmsl predict`` (``cli.py``) and ``dmsl bench``.
- **ONNX Runtime**: :func:`ort_session_options`: torch's intra-op count, 1 inter-op thread,
  ``session.intra_op.allow_spinning=0`` (and inter-op).
- **OpenCV**: ``cv2.setNumThreads(1)`` (the pre-processing of one frame is small; fewer workers to
  be descheduled).
- **dlib**: the HOG detector and the shape predictor run on the calling thread; nothing to set.

The app's own threads, counted in: the GUI thread (draws every result), the grabber (reads the
source; on-demand sources such as the demo render only when asked) and the live thread (the
pipeline). On 2 cores this gives the pipeline 1 intra-op thread and leaves a core to the GUI.

Measured on the 2-core development machine (2026-12-02), ``dmsl-default`` (tta flip-final, refine
both: 4 model forwards per face), one 640x512 demo frame per call, median time per frame of
alternating blocks quiet / with one busy core beside (``python -c "while True: pass"``), each setting
in its own process (the wait policy is read at load)::

    OMP_NUM_THREADS=1 python tools/measure_threads.py --passes 2 --rounds 2 --json out.json

The lead's model training (two 1-thread processes) ran on the same 2 cores throughout, so "quiet"
is not quiet and milliseconds move between runs; compare settings within one run, and the ratio
busy / quiet (same process, interleaved)::

    setting (run of 18:33)     quiet ms   busy ms   busy/quiet
    torch 1 thread, default       43.5       97.6      x2.23
    torch 1 thread, PASSIVE       52.0      114.8      x2.26
    torch 2 threads, default     668.1     1606.8      x2.83   (the collapse: x15 the 1-thread time)
    torch 2 threads, ACTIVE      279.7      536.9      x2.16
    torch 2 threads, PASSIVE      99.4       94.0      x1.05   (spread 0.61-4.09)
    ORT 1 thread, spinning        53.5       79.9      x2.09
    ORT 1 thread, no spinning     55.5      137.9      x2.03
    ORT 2 threads, spinning      120.0      154.5      x1.25
    ORT 2 threads, no spinning    23.2       47.9      x2.08
    torch 1 thread PASSIVE, cv2=1 40.6       96.2      x2.34

    three passes, cv2=1 (run of 18:38)
    torch 1 thread PASSIVE        42.5       94.7      x2.20
    torch 2 threads PASSIVE       49.5      120.9      x2.35
    ORT 1 thread, no spinning     25.5       58.6      x2.16
    ORT 2 threads, no spinning    32.2       57.9      x1.70

Read: two torch threads collapse when a core is taken (libgomp's default and ACTIVE spin at every
barrier while a thread of theirs waits for a core) - PASSIVE removes the collapse, and one thread is
then as fast or faster, quiet and busy; ORT's spinning costs 3-5x at two threads; ORT at 1 or 2
threads without spinning is a wash, and 1 leaves the GUI its core. With two trainers beside, one
more busy process takes our thread from about 2/3 of a core to 1/2 or less, so ~x2 busy / quiet is
the share lost, not a collapse (plain torch at 2 threads, default wait, was x40 in issue 18).
"""
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
    """Intra-op threads for the pipeline: ``OMP_NUM_THREADS`` when the environment sets it (the
    user's or torchrun's choice: one per process), else the cores less the busy threads that run
    beside it (the window's GUI thread; ``dmsl run``'s reader), at least 1, at most MAX_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
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
