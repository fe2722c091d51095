"""``dmsl eval``: NME / CED / AUC / failure rates of a model on a dataset folder (under torchrun the
images are sharded over the ranks, :func:`dmsl_core.evaluation.evaluate_folder`)."""
from __future__ import annotations

import sys
import time

from .common import add_inference_args, fmt_nme, parse_spectra, positive_arg


def cmd_eval(args) -> int:
    """``dmsl eval``; under torchrun the images are sharded over the ranks and rank 0 writes the
    same report as one process would."""
    from ..distributed import init_from_env, shutdown
    from ..evaluation import evaluate_folder, write_report
    ctx = init_from_env(args.device)
    if args.threads:
        import torch
        torch.set_num_threads(int(args.threads))
    spectra = parse_spectra(args.spectra)
    names = [b.strip() for b in (args.baseline or "").split(",") if b.strip()]
    if args.json and ctx.is_main:  # before the work: a report that cannot be written fails now
        from ..atomic import check_writable
        check_writable(args.json)

    def progress(method, i, n):
        if ctx.is_main:
            print(f"\r{method}: {i}/{n} images", end="" if i < n else "\n", file=sys.stderr)
    t0 = time.perf_counter()
    report = evaluate_folder(args.data, args.weights, fold=args.fold, folds=args.folds, spectra=spectra,
                             baselines=names, device=args.device or "auto", batch_size=args.batch_size,
                             progress=progress, compare=[c for c in (args.compare or "").split(",") if c.strip()],
                             dist=ctx, tta=args.tta, refine=args.refine, true_box=args.true_box,
                             detector=args.detector)
    seconds = time.perf_counter() - t0
    if not ctx.is_main:
        shutdown(ctx)
        return 0
    # no timing in the report: the same data give the same JSON, whatever the number of processes
    print(f"{report['n_images']} images in {seconds:.2f} s ({ctx.world_size} "
          f"process{'es' if ctx.world_size > 1 else ''})", file=sys.stderr)
    baselines = report.get("baselines") or {}
    if args.json:
        write_report(report, args.json)
    n = report["nme"]
    fmt = fmt_nme
    print(f"NME  TH {fmt(n['th'])}  VIS {fmt(n['vis'])}  all {fmt(n['all'])}   ({report['n_images']} images"
          + (", M_l at the ground truth's box" if args.true_box else "")
          + (f", faces found by the {args.detector} detector (misses {report['misses']['count']})"
             if args.detector else "")
          + ({"flip": ", test-time flip", "flip-final": ", test-time flip in the final pass"}.get(report.get("tta"), ""))
          + (f", --refine {report['refine']}" if report.get("refine") not in (None, "mb") else "") + ")")
    if baselines:
        print(f"\n{'method':<12} {'TH':>8} {'VIS':>8} {'misses TH':>10} {'misses VIS':>11}   (NME over detected images)")
        for name, r in [(report.get("model") or "dmsl", report), *baselines.items()]:
            print(f"{name:<12} {fmt(r['nme']['th']):>8} {fmt(r['nme']['vis']):>8} {r['misses']['th']:>10} "
                  f"{r['misses']['vis']:>11}")
    print(f"AUC@0.08 {fmt(report['auc_0.08'])}  failure@0.08 {fmt(report['failure_rate_0.08'])}  "
          f"failure@0.10 {fmt(report['failure_rate_0.10'])}")
    for var, v in report["per_variation"].items():
        print(f"  {var:<18} TH {fmt(v['th'])}  VIS {fmt(v['vis'])}")
    shutdown(ctx)
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="NME / CED / AUC / failure rates of a model on a dataset folder")
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--spectra", default="both")
    p.add_argument("--fold", type=int, default=None, help="evaluate fold k's test subjects only")
    p.add_argument("--folds", type=positive_arg, default=10)
    p.add_argument("--batch-size", type=positive_arg, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=positive_arg, default=None,
                   help="CPU threads for torch (torchrun sets 1 per process by default; the report is the "
                        "same byte for byte for the same data and the same threads per process)")
    p.add_argument("--baseline", default=None,
                   help="also evaluate baselines on the same images: dlib (its own detector; misses counted), "
                        "dlib+mb (face box from DMSL's M_b); comma-separated")
    p.add_argument("--compare", default=None,
                   help="also evaluate these other trained models on the same images (weights specs, comma-separated)")
    add_inference_args(p)
    p.add_argument("--true-box", action="store_true",
                   help="give M_l the ground truth's face box instead of M_b's: M_l's error with a perfect M_b "
                        "(a diagnosis of where the error comes from)")
    p.add_argument("--detector", default=None, metavar="NAME",
                   help="find the faces with this face detector first (e.g. auto), as dmsl predict and the app "
                        "do: the detector, the box refinement, the landmark confidence; the annotated face "
                        "missing from the reported faces is a miss (the paper's path, M_b on the whole image, "
                        "without it)")
    p.set_defaults(func=cmd_eval)
