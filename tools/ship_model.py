"""Ship a trained run as assets/models/NAME: float16 safetensors + a model card whose figures are
measured on the very weights that ship.

    python tools/ship_model.py RUN_DIR --name dmsl-default --data DATA --fold 0 \
        --synth-subjects 50 --synth-seed 0 [--tta none] [--refine both] [--bench bench.json]

``--bench`` must have measured the shipped model with the same test-time settings (``--tta``,
``--refine``: they change the pipeline's cost); when they change, ship without it, run
``dmsl bench --json bench.json`` (it measures the shipped model), then ship again with it.

Steps: the run's weights are stored in half precision in a temporary folder; the held-out test
subjects of ``--fold`` are evaluated with those weights (``dmsl eval`` with the Dlib baselines on
the same images); the card gets the run's card (configuration, training data, subjects), the
held-out figures (NME per spectrum and per variation, AUC, failure rates, baselines), the data
recipe (so ``tests/core/test_shipped_model.py`` can re-create the test images and re-measure),
the speed figures of ``--bench`` (a ``dmsl bench --json`` report) and the weights' sha256; then the
files replace the previous ones in place (each renamed into place atomically).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.atomic import atomic_write_text  # noqa: E402
from dmsl_core.models.weights import assets_dir, load_weights, save_weights  # noqa: E402
from dmsl_core.pipeline import Predictor  # noqa: E402


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bench_summary(bench: dict, name: str) -> dict:
    """The figures of the shipped model (and Dlib, and the targets) from a dmsl bench report."""
    mine = [e for e in bench.get("pipeline", []) if e.get("model") == name]
    return {"schema": bench.get("schema"), "created": bench.get("created"), "threads": bench.get("threads"),
            "frames": bench.get("frames"), "machine": bench.get("machine"), "pipeline": mine,
            "dlib": bench.get("dlib"), "options": [o for o in bench.get("options", []) if o.get("model") == name],
            "best_option": bench.get("best_option"), "targets": bench.get("targets"),
            "contention": [c for c in bench.get("contention", []) if c.get("model") == name],
            "command": "dmsl bench --json bench.json"}


def read_bench(path: str, name: str, tta: str, refine: str) -> dict:
    """The bench summary of ``name`` from a dmsl bench report, refused unless it was measured with the card's
    test-time settings (speed depends on them)."""
    bench = bench_summary(json.loads(Path(path).read_text()), name)
    if not bench["pipeline"]:
        raise SystemExit(f"{path}: no pipeline row of {name}")
    for row in bench["pipeline"]:
        got = (row.get("tta", "none"), row.get("refine", "mb"))
        if got != (tta, refine):
            raise SystemExit(f"{path}: measured {name} with tta={got[0]}, refine={got[1]}, but this card says "
                             f"tta={tta}, refine={refine}: ship without --bench, run dmsl bench on the shipped "
                             f"model, then ship again with its report (or --bench-only)")
    return bench


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--name", default="dmsl-default")
    p.add_argument("--data", required=True, help="the dataset folder the run was trained on")
    p.add_argument("--fold", type=int, required=True, help="the fold whose test subjects are held out")
    p.add_argument("--synth-subjects", type=int, default=None, help="`dmsl synth --subjects` that made --data")
    p.add_argument("--synth-seed", type=int, default=None, help="`dmsl synth --seed` that made --data")
    p.add_argument("--bench", default=None, help="a dmsl bench --json report measured with these weights")
    p.add_argument("--baseline", default="dlib,dlib+mb")
    p.add_argument("--tta", default="none", choices=Predictor.TTA_MODES,
                   help="the test-time augmentation the model runs with by default (the card's inference.tta); "
                        "the held-out figures are measured with it, and (without baselines) with each other mode")
    p.add_argument("--refine", default="mb", choices=Predictor.REFINE_MODES,
                   help="the box refinement the model runs with by default (the card's inference.refine); the "
                        "held-out figures are measured with it, and (without baselines) with each other mode")
    p.add_argument("--refine-rough", default=None, choices=Predictor.REFINE_MODES,
                   help="the refinement of a face detector's box that is not fitted to the 68 points' box (the "
                        "HOG detectors'; the card's inference.refine_rough; default: --refine)")
    p.add_argument("--real-test", action="append", default=[], metavar="NAME=DIR",
                   help="a dataset folder of real faces never used in training or selection (e.g. "
                        "helen-test=/work/data/helen_test), evaluated whole with the Dlib baseline; repeatable")
    p.add_argument("--sources", default=None,
                   help="a JSON list of the training sources (repository@commit, folder, faces, licence) for the card")
    p.add_argument("--history", default=None,
                   help="how the weights came to be (the training rounds, in words) for the card")
    p.add_argument("--bench-only", action="store_true",
                   help="only put --bench (a dmsl bench report of the model already shipped as --name) into its card")
    args = p.parse_args()

    if args.bench_only:
        card_path = assets_dir() / "models" / args.name / "model.json"
        card = json.loads(card_path.read_text())
        card["bench"] = bench = read_bench(args.bench, args.name, card["inference"]["tta"],
                                           card["inference"]["refine"])
        atomic_write_text(card_path, json.dumps(card, indent=2))
        print(f"{card_path}: bench of {bench['created']} written")
        return 0

    bench = None
    if args.bench:
        bench = read_bench(args.bench, args.name, args.tta, args.refine)
    cfg, mb, ml, card, _ = load_weights(args.run)
    out = assets_dir() / "models" / args.name
    with tempfile.TemporaryDirectory(prefix="ship-") as tmp:
        tmp = Path(tmp)
        card = dict(card)
        card["inference"] = {"tta": args.tta, "refine": args.refine}
        if args.refine_rough and args.refine_rough != args.refine:
            card["inference"]["refine_rough"] = args.refine_rough
        w = save_weights(tmp / "model", mb, ml, cfg, card, half=True)
        report_path = tmp / "eval.json"
        cmd = [sys.executable, "-m", "dmsl_core.cli", "eval", "--data", args.data, "--weights", str(w.parent),
               "--fold", str(args.fold), "--baseline", args.baseline, "--device", "cpu", "--json", str(report_path)]
        subprocess.run(cmd, check=True)
        rep = json.loads(report_path.read_text())

        def other_setting(flag: str, value: str) -> dict:
            """The same weights with another test-time setting (no baselines), for the card."""
            path = tmp / f"eval-{flag}-{value}.json"
            subprocess.run(cmd[:cmd.index("--baseline")] + ["--device", "cpu", f"--{flag}", value, "--json",
                                                              str(path)], check=True)
            o = json.loads(path.read_text())
            return {flag: value, "nme": o["nme"], "auc_0.08": o["auc_0.08"],
                    "failure_rate_0.08": o["failure_rate_0.08"], "failure_rate_0.10": o["failure_rate_0.10"],
                    "command": f"dmsl eval --data DATA --weights {args.name} --fold {args.fold} --{flag} {value}"}
        other_tta = [other_setting("tta", m) for m in Predictor.TTA_MODES if m != args.tta]
        other_refine = [other_setting("refine", m) for m in Predictor.REFINE_MODES if m != args.refine]
        from dmsl_core.data.splits import split_subjects as _split_subjects
        _, _, test_subjects = _split_subjects(args.data, args.fold, 10)
        card = dict(card)
        card["name"] = args.name
        card["source_run"] = str(Path(args.run).resolve())
        card["heldout_eval"] = {
            "what": "the shipped (float16) weights on the held-out test subjects of the fold, lights-off visible "
                    "images excluded as in the paper; baselines on the same images",
            "data": rep.get("data"), "fold": rep.get("fold"), "test_subjects": list(test_subjects),
            "n_images": rep["n_images"], "nme": rep["nme"], "auc_0.08": rep["auc_0.08"],
            "failure_rate_0.08": rep["failure_rate_0.08"], "failure_rate_0.10": rep["failure_rate_0.10"],
            "per_variation": {k: {"th": v["th"], "vis": v["vis"]} for k, v in rep["per_variation"].items()},
            "baselines": {name: {"nme": b["nme"], "misses": {"th": b["misses"]["th"], "vis": b["misses"]["vis"]},
                                 "n_images": b["n_images"]}
                          for name, b in (rep.get("baselines") or {}).items()},
            "tta": rep.get("tta", args.tta), "refine": rep.get("refine", args.refine),
            "command": f"dmsl eval --data DATA --weights {args.name} --fold {args.fold} --baseline {args.baseline}",
        }
        card["heldout_eval"]["other_tta"] = other_tta          # each other mode, the card's refinement
        card["heldout_eval"]["other_refine"] = other_refine
        real = {}
        for spec in args.real_test:
            label, _, folder = spec.partition("=")
            path = tmp / f"real-{label}.json"
            subprocess.run([sys.executable, "-m", "dmsl_core.cli", "eval", "--data", folder, "--weights",
                            str(w.parent), "--baseline", "dlib", "--device", "cpu", "--json", str(path)], check=True)
            o = json.loads(path.read_text())
            real[label] = {
                "data": str(Path(folder).resolve()), "n_images": o["n_images"], "nme": o["nme"],
                "auc_0.08": o["auc_0.08"], "failure_rate_0.08": o["failure_rate_0.08"],
                "failure_rate_0.10": o["failure_rate_0.10"],
                "baselines": {n: {"nme": b["nme"], "misses": b["misses"], "n_images": b["n_images"]}
                              for n, b in (o.get("baselines") or {}).items()},
                "tta": o.get("tta"), "refine": o.get("refine"),
                "command": f"dmsl eval --data {folder} --weights {args.name} --baseline dlib"}
        if real:
            card["real_eval"] = real
        if args.sources:
            card["training_sources"] = json.loads(Path(args.sources).read_text())
        if args.history:
            card["history"] = args.history
        if args.synth_subjects is not None and args.synth_seed is not None:
            card["data_recipe"] = {"generator": "dmsl synth", "subjects": args.synth_subjects, "seed": args.synth_seed,
                                   "command": f"dmsl synth --out DATA --subjects {args.synth_subjects} "
                                              f"--seed {args.synth_seed}"}
        if bench is not None:
            card["bench"] = bench
        card["sha256"] = sha256(w)
        card["size_bytes"] = w.stat().st_size
        card["config"] = cfg.to_dict()
        card["weights"] = w.name
        card["dtype"] = "float16"
        atomic_write_text(w.with_name("model.json"), json.dumps(card, indent=2))
        out.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "model.json"):
            staged = out / (f + ".part")
            shutil.copyfile(w.with_name(f), staged)
            os.replace(staged, out / f)
    n = card["heldout_eval"]["nme"]
    print(f"{out / 'model.safetensors'} ({card['size_bytes'] / 1e6:.1f} MB): held-out NME TH {n['th']:.4f} "
          f"VIS {n['vis']:.4f}")
    for label, r in card.get("real_eval", {}).items():
        print(f"  real faces, {label} ({r['n_images']} images): NME " +
              ", ".join(f"{s.upper()} {v:.4f}" for s, v in r["nme"].items() if v is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
