"""``dmsl quality``: train the landmark stage's confidence network, or measure one."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quality", help="train (or measure) the landmark stage's own confidence: a small network that says "
                        "whether M_l's points sit on a face",
        description="Train: the pipeline runs on the training subjects of --data from boxes of every kind "
                    "(tracked, detected, wild, background, no-face textures; dmsl_core/quality.py), each result "
                    "scored against the truth (success: NME < 0.08); the network is fitted to that, its threshold "
                    "chosen on the validation subjects (the trainer's split: every 5th subject) so that --keep of "
                    "the successes there stay faces. Writes FILE (put it beside a model's weights as "
                    "quality.safetensors to use it). Measure (--measure): the confidence of an existing FILE on "
                    "every image of --data (e.g. a test set), nothing trained or chosen.")
    p.add_argument("--data", required=True, help="a dataset folder (manifest.csv) with 68-point truth")
    p.add_argument("--weights", default=None, help="the model whose results are judged (default: the shipped one)")
    p.add_argument("--out", required=True, help="the quality network file to write (train) or read (--measure)")
    p.add_argument("--measure", action="store_true", help="measure --out on all of --data; train nothing")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--keep", type=float, default=0.99, help="share of validation successes kept (threshold)")
    p.add_argument("--per-image", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="processes that run the pipeline (one thread each)")
    p.add_argument("--cache", default=None, help="folder for the built sets (.npz), reused when present")
    p.add_argument("--json", default=None, help="write the report here")
    p.set_defaults(func=cmd_quality)


def _progress(label: str):
    def f(i, n):
        print(f"\r{label}: {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
    return f


def _set(weights, samples, cfg, jobs, cache, name):
    import numpy as np
    from ..quality import build_quality_set_parallel
    path = Path(cache) / f"{name}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    d = build_quality_set_parallel(weights, samples, cfg, jobs=jobs, progress=_progress(f"{name} set (chunks)"))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".part.npz")
        np.savez(tmp, **d)
        os.replace(tmp, path)
    return d


def cmd_quality(args) -> int:
    import torch

    from ..data.folder import load_samples
    from ..data.splits import split_subjects
    from ..models.quality import QualityModel, load_quality
    from ..models.weights import resolve_weights
    from ..quality import QualitySetConfig, choose_threshold, quality_report, train_quality

    cfg = QualitySetConfig(per_image=args.per_image, seed=args.seed)
    weights = str(resolve_weights(args.weights))
    t0 = time.time()
    if args.measure:
        q = load_quality(args.out)
        samples = load_samples(args.data, ("vis", "th"))
        d = _set(weights, samples, QualitySetConfig(per_image=args.per_image, seed=args.seed + 7919), args.jobs,
                 args.cache, "measure")
        conf = q(d["img"], d["vec"])[0]
        report = {"data": str(args.data), "images": len(samples), "quality": str(args.out),
                  "report": quality_report(conf, d["nme"], d["kind"], q.threshold, d["spectrum"])}
    else:
        train_s, val_s, _ = split_subjects(args.data, None)
        tr = load_samples(args.data, ("vis", "th"), subjects=train_s)
        va = load_samples(args.data, ("vis", "th"), subjects=val_s)
        if not tr or not va:
            raise ValueError(f"{args.data}: needs training and validation subjects with landmarks "
                             f"({len(tr)} training, {len(va)} validation images)")
        train = _set(weights, tr, cfg, args.jobs, args.cache, "train")
        val = _set(weights, va, QualitySetConfig(per_image=args.per_image, seed=args.seed + 1), args.jobs,
                   args.cache, "val")
        torch.set_num_threads(max(1, args.jobs))

        def ep(i, loss):
            print(f"epoch {i}/{args.epochs}: loss {loss:.4f}", file=sys.stderr, flush=True)
        net = train_quality(train, epochs=args.epochs, lr=args.lr, seed=args.seed, progress=ep)
        conf = QualityModel(net)(val["img"], val["vec"])[0]
        thr = choose_threshold(conf, val["nme"], args.keep)
        rep = quality_report(conf, val["nme"], val["kind"], thr, val["spectrum"])
        card = {"trained_on": {"data": str(Path(args.data).resolve()), "subjects": len(train_s),
                               "images": len(tr), "results": int(len(train["nme"]))},
                "validated_on": {"subjects": len(val_s), "images": len(va), "results": int(len(val["nme"]))},
                "judges": weights, "threshold_rule": f"keeps {args.keep:.0%} of the validation successes",
                "success_nme": rep["success_nme"], "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
                "val": rep, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        QualityModel(net, thr, card).save(args.out)
        report = {"out": str(args.out), **card}
    report["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(report, indent=2)
    if args.json:
        from ..atomic import atomic_write_text
        atomic_write_text(args.json, text + "\n")
    print(text)
    return 0
