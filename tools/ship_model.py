"""Copy a trained run into assets/models/NAME (float16 safetensors + model card).

    python tools/ship_model.py RUN_DIR --name dmsl-default --report eval.json [--bench bench.json]

The card keeps the run's card (configuration, training data, subjects, validation NME) and adds
the held-out evaluation report's figures (NME per spectrum and per variation, baselines) and,
when given, the speed figures. The weights replace the previous ones in place.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.models.weights import assets_dir, load_weights, save_weights  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--name", default="dmsl-default")
    p.add_argument("--report", required=True, help="dmsl eval --json report on held-out subjects")
    p.add_argument("--bench", default=None, help="dmsl run --bench / dmsl bench JSON")
    args = p.parse_args()
    cfg, mb, ml, card, path = load_weights(args.run)
    rep = json.loads(Path(args.report).read_text())
    card = dict(card)
    card["name"] = args.name
    card["source_run"] = str(Path(args.run).resolve())
    card["heldout_eval"] = {
        "data": rep.get("data"), "fold": rep.get("fold"), "n_images": rep["n_images"], "nme": rep["nme"],
        "auc_0.08": rep["auc_0.08"], "failure_rate_0.08": rep["failure_rate_0.08"],
        "failure_rate_0.10": rep["failure_rate_0.10"],
        "per_variation": {k: {"th": v["th"], "vis": v["vis"]} for k, v in rep["per_variation"].items()},
        "baselines": {name: {"nme": b["nme"], "misses": {"th": b["misses"]["th"], "vis": b["misses"]["vis"]},
                             "n_images": b["n_images"]}
                      for name, b in (rep.get("baselines") or {}).items()},
        "command": rep.get("command", ""),
    }
    if args.bench:
        card["bench"] = json.loads(Path(args.bench).read_text())
    out = assets_dir() / "models" / args.name
    w = save_weights(out, mb, ml, cfg, card, half=True)
    print(f"{w} ({w.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
