"""``dmsl bench``: pipeline speed of the configurations and shipped models (:func:`dmsl_core.bench.run_bench`)."""
from __future__ import annotations

import json
import sys

from .common import positive_arg


def cmd_bench(args) -> int:
    from ..bench import OPTION_SETS, run_bench
    opts = None
    if args.options is not None:
        names = {k.split(" ")[0]: k for k in OPTION_SETS}
        opts = []
        for o in filter(None, args.options.split(",")):
            if o not in names:
                raise ValueError(f"--options: unknown option {o!r} (known: {', '.join(names)})")
            opts.append(names[o])
        if opts and opts[0] != next(iter(OPTION_SETS)):
            opts.insert(0, next(iter(OPTION_SETS)))  # ratios are against the baseline option
    report = run_bench(configs=args.configs.split(",") if args.configs else None,
                       shipped=None if args.shipped is None else [s for s in args.shipped.split(",") if s],
                       batches=[int(b) for b in args.batch.split(",")], threads=args.threads,
                       repeat=args.repeat, device=args.device, image_size=args.image_size, frames=args.frames,
                       dlib=not args.no_dlib, options=opts,
                       threads_options=[int(t) for t in args.threads_options.split(",") if t],
                       contention=not args.no_contention, detection=not args.no_detection,
                       printer=lambda s: print(s, file=sys.stderr))
    for name, t in report["targets"].items():
        print(f"target {name}: " + ", ".join(f"{k}={v}" for k, v in t.items()), file=sys.stderr)
    if args.json:
        from ..atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(report, indent=2))
        print(f"report -> {args.json}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="pipeline speed of every configuration and shipped model, Dlib on the same frames, "
                       "the ratio, peak memory and speed options")
    p.add_argument("--configs", default=None, help="comma-separated configurations (default: all registered)")
    p.add_argument("--shipped", default=None, help="comma-separated shipped models (default: dmsl-default; '' for none)")
    p.add_argument("--batch", default="1,8", help="batch sizes")
    p.add_argument("--threads", type=positive_arg, default=None,
                   help="CPU threads for torch (default: what the app and dmsl run use, see dmsl_core/threads.py)")
    p.add_argument("--repeat", type=int, default=10, help="interleaved repeats per figure (median and spread)")
    p.add_argument("--frames", type=int, default=8, help="demo frames to measure on")
    p.add_argument("--image-size", default="640x512", help="frame size WxH")
    p.add_argument("--device", default=None, help="one device (default: every device present)")
    p.add_argument("--no-dlib", action="store_true", help="skip Dlib's detector + predictor")
    p.add_argument("--options", default=None,
                   help="speed options to measure on the shipped model, comma-separated from: baseline, no_grad, "
                        "channels_last, torch.compile, onnxruntime ('' for none; default all)")
    p.add_argument("--threads-options", default="1,2,4", help="thread counts to compare for the shipped model")
    p.add_argument("--no-contention", action="store_true",
                   help="skip the rows with one busy core beside the pipeline (a busy process bench starts and kills)")
    p.add_argument("--no-detection", action="store_true",
                   help="skip the face detector stage's rows (detectors alone, detection + landmarks, the tracker)")
    p.add_argument("--json", default=None, help="write the report (schema dmsl-bench/3) here")
    p.set_defaults(func=cmd_bench)
