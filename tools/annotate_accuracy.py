"""NME of an annotated dataset folder against a reference copy (e.g. the generator's exact points).

    python tools/annotate_accuracy.py TRUTH_DIR ANNOTATED_DIR [--json OUT]

Per spectrum (vis, th), over the pairs both folders annotate: mean NME (eq. 3, normalised by the
reference's outer-eye-corner distance), the number of pairs, and the same split by the points'
origin (dlib / model / neighbour ... from the ``.origin.json`` sidecars); pairs of the reference
with no annotation in ANNOTATED_DIR are counted as missing. Visible NME leaves out black "lights
off" images' entries under ``vis`` and reports them as ``vis_dark`` (the paper drops them).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsl_core.annotate import AnnotationSet  # noqa: E402
from dmsl_core.evaluation import nme_per_image  # noqa: E402


def measure(truth_dir: str, ann_dir: str) -> dict:
    truth, ann = AnnotationSet(truth_dir), AnnotationSet(ann_dir)
    by_key = {ann.key(i): i for i in range(len(ann))}
    errs: dict = collections.defaultdict(list)
    by_origin: dict = collections.defaultdict(list)
    missing = collections.Counter()
    for i in range(len(truth)):
        t = truth.load(i)
        j = by_key.get(truth.key(i))
        a = ann.load(j) if j is not None and ann.has_annotation(j) else None
        dark = truth.records[i].variation == "dark"
        for s in ("vis", "th"):
            gt = getattr(t, s)
            if gt is None:
                continue
            name = "vis_dark" if (s == "vis" and dark) else s
            pts = getattr(a, s) if a is not None else None
            if pts is None:
                missing[name] += 1
                continue
            e = nme_per_image(pts, gt)
            errs[name].append(e)
            org = collections.Counter(getattr(a, f"{s}_origin")).most_common(1)[0][0]
            by_origin[f"{name}/{org}"].append(e)
    out = {}
    for name, v in errs.items():
        out[name] = {"nme": round(float(np.mean(v)), 4), "median": round(float(np.median(v)), 4),
                     "n": len(v), "missing": missing[name]}
    for name in missing:
        out.setdefault(name, {"nme": None, "n": 0, "missing": missing[name]})
    out["by_origin"] = {k: {"nme": round(float(np.mean(v)), 4), "n": len(v)} for k, v in sorted(by_origin.items())}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("truth")
    p.add_argument("annotated")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    res = measure(a.truth, a.annotated)
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
