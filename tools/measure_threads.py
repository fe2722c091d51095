"""How the pipeline's time per frame holds up with one busy core beside it, per threading setting.

The numbers behind the defaults of ``dmsl_core/threads.py``. Each setting runs in its own process
(OpenMP reads its wait policy when torch loads it), which alternates blocks of frames *quiet* and
*busy* (a ``python -c "while True: pass"`` process beside it, started before and killed after the
block), so the ratio busy / quiet of each setting is measured in the same process, interleaved::

    python tools/measure_threads.py [--passes 2] [--rounds 2] [--frames 8] [--model dmsl-default] [--json out.json]

Settings: plain torch at 1 and 2 intra-op threads with libgomp's default wait policy, ACTIVE and
PASSIVE; ONNX Runtime at 1 and 2 threads with spinning on and off (torch PASSIVE beside it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's dmsl_core

SETTINGS = [  # (label, backend, threads, wait policy (None: libgomp's default), ORT spinning[, cv2 threads])
    ("torch t1 default-wait", "torch", 1, None, None),
    ("torch t1 PASSIVE", "torch", 1, "PASSIVE", None),
    ("torch t2 default-wait", "torch", 2, None, None),
    ("torch t2 ACTIVE", "torch", 2, "ACTIVE", None),
    ("torch t2 PASSIVE", "torch", 2, "PASSIVE", None),
    ("ort t1 spin", "ort", 1, "PASSIVE", True),
    ("ort t1 no-spin", "ort", 1, "PASSIVE", False),
    ("ort t2 spin", "ort", 2, "PASSIVE", True),
    ("ort t2 no-spin", "ort", 2, "PASSIVE", False),
    ("torch t1 PASSIVE cv2=1", "torch", 1, "PASSIVE", None, 1),
    ("torch t2 PASSIVE cv2=1", "torch", 2, "PASSIVE", None, 1),
    ("ort t1 no-spin cv2=1", "ort", 1, "PASSIVE", False, 1),
    ("ort t2 no-spin cv2=1", "ort", 2, "PASSIVE", False, 1),
]  # a 6th item: cv2.setNumThreads (absent: OpenCV's default, one per core)


def child(backend: str, threads: int, wait: str, spin: str, model: str, rounds: int, frames: int,
          cv2_threads: int) -> dict:
    policy = os.environ.get("OMP_WAIT_POLICY")
    import torch  # first: libgomp reads OMP_WAIT_POLICY (as the parent set it) now, before dmsl_core
    import cv2

    from dmsl_core import threads as th
    from dmsl_core.bench import bench_frames, contention_entry
    from dmsl_core.pipeline import Predictor

    torch.set_num_threads(threads)
    if cv2_threads >= 0:
        cv2.setNumThreads(cv2_threads)
    pred = Predictor.from_weights(model, device="cpu")
    if backend == "ort":
        th.ORT_SPINNING = spin == "1"
        pred.optimise(backend="onnxruntime")
    imgs = bench_frames(frames)
    for f in imgs[:3]:
        pred.predict([f])
    c = contention_entry(pred, backend, imgs, rounds, torch.device("cpu"))   # what dmsl bench measures
    quiet, busy = c["blocks"]["quiet_ms"], c["blocks"]["busy_ms"]
    return {"quiet_ms": quiet, "busy_ms": busy, "ratios": [b / q for q, b in zip(quiet, busy)],
            "torch_threads": torch.get_num_threads(), "omp_wait_policy": policy,
            "cv2_threads": cv2.getNumThreads()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="quiet + busy block pairs per process")
    p.add_argument("--passes", type=int, default=2, help="times every setting is run, in turn")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--model", default="dmsl-default")
    p.add_argument("--only", default=None, help="comma-separated labels (default: every setting)")
    p.add_argument("--json", default=None)
    p.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.child[2], a.child[3], a.model, a.rounds, a.frames,
                               int(a.child[4]))))
        return 0
    import statistics as st
    chosen = [s for s in SETTINGS if not a.only or s[0] in a.only.split(",")]
    got: dict = {s[0]: {"quiet_ms": [], "busy_ms": [], "ratios": []} for s in chosen}
    for _ in range(a.passes):          # the settings in turn, pass after pass: a slow minute of the
        for label, backend, threads, wait, spin, *cv in chosen:   # machine touches every setting
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if wait:
                env["OMP_WAIT_POLICY"] = wait
            cmd = [sys.executable, __file__, "--model", a.model, "--rounds", str(a.rounds), "--frames",
                   str(a.frames), "--child", backend, str(threads), wait or "-", "1" if spin else "0",
                   str(cv[0] if cv else -1)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode:
                print(f"{label}: failed\n{r.stderr[-2000:]}", file=sys.stderr)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            for k in ("quiet_ms", "busy_ms", "ratios"):
                got[label][k] += res[k]
    rows = []
    for label, res in got.items():
        if not res["ratios"]:
            continue
        row = {"setting": label, **res,
               "quiet_median_ms": round(st.median(res["quiet_ms"]), 2),
               "busy_median_ms": round(st.median(res["busy_ms"]), 2),
               "ratio_median": round(st.median(res["ratios"]), 2),
               "ratio_min": round(min(res["ratios"]), 2), "ratio_max": round(max(res["ratios"]), 2)}
        rows.append(row)
        print(f"{label:<24} quiet {row['quiet_median_ms']:8.1f} ms  busy {row['busy_median_ms']:8.1f} ms  "
              f"busy/quiet x{row['ratio_median']:.2f} (min {row['ratio_min']:.2f} max {row['ratio_max']:.2f})",
              flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
