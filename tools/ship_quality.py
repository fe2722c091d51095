"""Ship a trained quality network (``dmsl quality``) beside a model, with its figures in the model card.

    python tools/ship_quality.py QUALITY.safetensors --model assets/models/dmsl-default \
        --train-report q.json --test-report q_test.json [--targets face_targets.json]

Copies QUALITY to MODEL/quality.safetensors (atomically) and writes the card's ``quality`` section:
the training report's provenance and validation figures (``dmsl quality --json``), the test-set
figures (``dmsl quality --measure --json`` on a test set), and the end-to-end targets
(``tools/face_targets.py --json``) where given. The figures are copied from those reports, which
the commands computed; nothing here measures.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dmsl_core.atomic import atomic_path, atomic_write_text  # noqa: E402
from dmsl_core.models.quality import QUALITY_NAME, load_quality  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("quality")
    ap.add_argument("--model", default="assets/models/dmsl-default")
    ap.add_argument("--train-report", required=True)
    ap.add_argument("--test-report", default=None)
    ap.add_argument("--targets", default=None)
    args = ap.parse_args(argv)
    q = load_quality(args.quality)                      # refuses a bad file before anything is copied
    model = Path(args.model)
    dest = model / QUALITY_NAME
    with atomic_path(dest) as tmp:
        shutil.copyfile(args.quality, tmp)
    card_path = model / "model.json"
    card = json.loads(card_path.read_text())
    train = json.loads(Path(args.train_report).read_text())
    sec = {"file": QUALITY_NAME, "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
           "threshold": q.threshold, "success_nme": train.get("success_nme"),
           "trained_on": train.get("trained_on"), "validated_on": train.get("validated_on"),
           "threshold_rule": train.get("threshold_rule"), "val": train.get("val"),
           "command": "dmsl quality --data /work/data/mix-r2 --out quality.safetensors --jobs 2"}
    if args.test_report:
        t = json.loads(Path(args.test_report).read_text())
        sec["test"] = {"data": t.get("data"), "images": t.get("images"), "report": t.get("report"),
                       "command": "dmsl quality --measure --data DATA --out quality.safetensors"}
    if args.targets:
        sec["face_targets"] = json.loads(Path(args.targets).read_text())
    card["quality"] = sec
    atomic_write_text(card_path, json.dumps(card, indent=2))
    print(f"{dest}: threshold {q.threshold:.3f}; card section 'quality' written to {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
