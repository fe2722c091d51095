"""Detection on its own thread, measured on a live source: the paced demo (25 fps) through
``StreamRunner(live=True)`` with every-face tracking, detection every 10 frames, in rounds that
alternate the detector thread on and off (``StreamConfig.async_detect``), in one process.

    OMP_NUM_THREADS=1 python tools/measure_async_detect.py [--size 640x512] [--frames 150] [--rounds 2]

Per setting: frames processed per second, frames the live source dropped (the pipeline was busy),
the per-frame time (median and 95th percentile of ``ms_total``, the frame's own processing) and the
share of processed frames with a face. The demo's frames are rendered on the grabber thread, which
shares the two cores with the pipeline and the detector.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="640x512")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from dmsl_core.pipeline import Predictor
    from dmsl_core.sources import open_source
    from dmsl_core.runner import StreamRunner
    from dmsl_core.stream import StreamConfig, StreamProcessor
    pred = Predictor.from_weights(None, device="cpu")
    out: dict = {"size": args.size, "frames": args.frames, "rounds": []}
    for r in range(args.rounds):
        for on in ((True, False) if r % 2 == 0 else (False, True)):
            src = open_source(f"demo:?fps=25&size={args.size}&seed=0", realtime=True)
            proc = StreamProcessor(pred, StreamConfig(mode="visible", detector="auto", detect_every=10))
            runner = StreamRunner(src, proc, max_frames=args.frames, live=True)
            proc.config.async_detect = on                  # the runner turned it on; the "off" rounds undo it
            ms, faces = [], 0
            for ev in runner.events():
                if ev.kind == "result":
                    ms.append(ev.result.timings_ms["total"])
                    faces += bool(ev.result.faces.get("vis"))
            src.close()
            st = runner.stats
            row = {"async_detect": on, "processed": st.processed, "dropped": st.dropped,
                   "fps": round(st.processed / st.elapsed_s, 2), "ms_median": round(float(np.median(ms)), 1),
                   "ms_p95": round(float(np.percentile(ms, 95)), 1), "with_face": round(faces / max(1, len(ms)), 3)}
            out["rounds"].append(row)
            print(row, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
