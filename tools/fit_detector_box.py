"""Fit a face detector's box to the box the landmark stage works with (the 68 points' bounding box).

    OMP_NUM_THREADS=1 python tools/fit_detector_box.py yunet --photos /work/data/300w_train/helen

On whole *training* photos (300-W's HELEN training split: a .jpg and its .pts; never the test split),
each resized to 640 px on its longer side, the detector's box matched to the annotated face (the rule
of tools/detector_benchmark.py) gives, per face, the shift of the points' box centre (in units of the
detector box's width and height) and the ratio of their widths and heights. The medians are the
detector's ``box_map`` (``dmsl_core.detection.YuNetDetector.BOX_MAP``); the interquartile ranges say
how consistent the detector's boxes are. The raw detector box (``box_map=(0, 0, 1, 1)``) is measured.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detector_benchmark import _points, matches, resize_longer  # noqa: E402

from dmsl_core.data.imageio import read_image  # noqa: E402
from dmsl_core.detection import get_detector  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("detector")
    ap.add_argument("--photos", default="/work/data/300w_train/helen", help="training photos (.jpg + .pts)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    opts = {"box_map": (0.0, 0.0, 1.0, 1.0)} if args.detector == "yunet" else {}
    det = get_detector(args.detector, **opts)
    files = sorted(glob.glob(os.path.join(args.photos, "*.jpg")))
    if not files:
        print(f"fit_detector_box: no .jpg in {args.photos}", file=sys.stderr)
        return 2
    rows = []
    for p in files:
        img, s = resize_longer(read_image(p))
        pts = _points(os.path.splitext(p)[0] + ".pts") * s
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        gt = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
        hit = [d for d in det(img, "vis") if matches(d.box, gt)]
        if not hit:
            continue
        b = hit[0].box
        rows.append([(gt[0] + gt[2] / 2 - (b[0] + b[2] / 2)) / b[2], (gt[1] + gt[3] / 2 - (b[1] + b[3] / 2)) / b[3],
                     gt[2] / b[2], gt[3] / b[3]])
    r = np.array(rows)
    out = {"detector": args.detector, "photos": len(files), "matched": len(r),
           "box_map": [round(float(v), 4) for v in np.median(r, axis=0)],
           "iqr": [round(float(v), 4) for v in np.percentile(r, 75, axis=0) - np.percentile(r, 25, axis=0)]}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
