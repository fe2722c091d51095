"""dmsl_core/threads.py: the OpenMP wait policy reaches libgomp when dmsl_core is imported before
torch (checked by what an idle OpenMP worker costs: CPU time, active vs passive, in child processes),
the user's own setting wins, and the thread settings for torch, OpenCV and ONNX Runtime."""
import json
import os
import subprocess
import sys

import pytest

from dmsl_core import threads

# one parallel ATen op on 2 threads, then the CPU time the process uses while the main thread sleeps:
# an ACTIVE OpenMP worker spins through the sleep, a PASSIVE one sleeps too
IDLE_COST = """
import json, os, sys, time
before = os.environ.get("OMP_WAIT_POLICY")
import dmsl_core
import torch
torch.set_num_threads(2)
x = torch.rand(2_000_000)
for _ in range(20):
    x.exp()
t = time.process_time()
time.sleep(0.6)
print(json.dumps({"before": before, "after": os.environ.get("OMP_WAIT_POLICY"),
                  "idle_cpu_s": time.process_time() - t}))
"""


def _idle_cost(policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    r = subprocess.run([sys.executable, "-c", IDLE_COST], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="an idle OpenMP worker needs a second core to spin on")
def test_importing_dmsl_core_makes_openmp_wait_passively_unless_the_user_chose():
    mine = _idle_cost(None)
    assert mine["before"] is None and mine["after"] == "PASSIVE"
    active = _idle_cost("ACTIVE")
    assert active["before"] == active["after"] == "ACTIVE"           # the user's choice is kept
    # the variable was in place before libgomp read it: the idle worker costs (next to) nothing,
    # where an ACTIVE one spins through the sleep
    assert mine["idle_cpu_s"] < 0.25 * active["idle_cpu_s"], (mine, active)


def test_default_threads_counts_the_threads_beside_the_pipeline(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = threads.cpu_count()
    assert threads.default_threads(1) == max(1, min(threads.MAX_THREADS, n - 1))
    assert threads.default_threads(0) == max(1, min(threads.MAX_THREADS, n))
    assert threads.default_threads(n + 5) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")                       # the user's (or torchrun's) choice
    assert threads.default_threads(1) == 3


def test_configure_sets_torch_and_opencv_and_says_so(monkeypatch):
    import cv2
    import torch
    prev, prev_cv = torch.get_num_threads(), cv2.getNumThreads()
    try:
        s = threads.configure(2)
        assert torch.get_num_threads() == 2 and cv2.getNumThreads() == threads.CV2_THREADS
        assert s["torch_threads"] == 2 and s["configured"] == 2 and s["cv2_threads"] == threads.CV2_THREADS
        assert s["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY") and s["ort_spinning"] is False
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.configure()["torch_threads"] == 1
        with pytest.raises(ValueError, match="-1"):
            threads.configure(-1)
    finally:
        torch.set_num_threads(prev)
        cv2.setNumThreads(prev_cv)


def test_onnx_runtime_sessions_take_torch_threads_and_do_not_spin():
    pytest.importorskip("onnxruntime")
    import torch
    opts = threads.ort_session_options()
    assert opts.intra_op_num_threads == torch.get_num_threads() and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spin = threads.ort_session_options(threads=2, spinning=True)
    assert spin.intra_op_num_threads == 2 and spin.get_session_config_entry("session.intra_op.allow_spinning") == "1"
