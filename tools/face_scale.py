"""How NME changes when the face fills less of the frame: each image of a fold's subjects is placed
at a random spot on a canvas ``K`` times its size (filled with the image's median), and the
pipeline runs on the canvas; NME against the shifted ground truth.

    python tools/face_scale.py --data DIR --fold 0 --role val --scale 1,1.4,1.8 \
        [--weights dmsl-default] [--refine both] [--tta flip-final] [--every 2]

The generated training images frame the face closely, so M_b has not learned to find a face
that fills a small part of the frame: this measures where that starts to fail (a known gap in
the README). Use the validation subjects for choices; the test subjects only to report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.data.splits import split_subjects as _split_subjects  # noqa: E402
from dmsl_core.data.folder import load_samples  # noqa: E402
from dmsl_core.evaluation import nme_per_image  # noqa: E402
from dmsl_core.pipeline import Predictor  # noqa: E402


def on_canvas(image: np.ndarray, points: np.ndarray, k: float, rng: np.random.Generator):
    """``image`` at a random spot of a canvas ``k`` x its size (median-filled); points shifted."""
    if k < 1.0:
        raise ValueError(f"--scale {k}: the canvas must be at least the image's size (>= 1)")
    h, w = image.shape[:2]
    H, W = int(round(h * k)), int(round(w * k))
    fill = np.median(image.reshape(h * w, -1), axis=0).astype(image.dtype)
    canvas = np.empty((H, W) + image.shape[2:], image.dtype)
    canvas[...] = fill.reshape(image.shape[2:]) if image.ndim == 3 else fill[0]
    y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    canvas[y:y + h, x:x + w] = image
    return canvas, np.asarray(points, dtype=np.float64) + [x, y]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--role", choices=["val", "test"], default="val")
    p.add_argument("--scale", default="1,1.4,1.8", help="canvas sizes, x the image (comma-separated)")
    p.add_argument("--weights", default=None, help="default: the shipped model")
    p.add_argument("--refine", default=None, choices=Predictor.REFINE_MODES)
    p.add_argument("--tta", default=None, choices=Predictor.TTA_MODES)
    p.add_argument("--every", type=int, default=1, help="use every N-th image")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    _, val, test = _split_subjects(args.data, args.fold, 10)
    samples = load_samples(args.data, ("vis", "th"), subjects=val if args.role == "val" else test)[::args.every]
    pred = Predictor.from_weights(args.weights, device="cpu", tta=args.tta, refine=args.refine)
    print(f"{pred.name} (refine {pred.refine}, tta {pred.tta}), {len(samples)} {args.role} images")
    for k in (float(v) for v in args.scale.split(",")):
        rng = np.random.default_rng(args.seed)
        nme: dict[str, list[float]] = {"vis": [], "th": []}
        for start in range(0, len(samples), 16):
            chunk = samples[start:start + 16]
            placed = [on_canvas(s.load(), s.landmarks, k, rng) for s in chunk]
            for s, (_, gt), res in zip(chunk, placed, pred.predict([c for c, _ in placed])):
                nme[s.spectrum].append(nme_per_image(res.landmarks, gt))
        print(f"canvas x{k:g}: NME " + "  ".join(f"{sp.upper()} {np.mean(v):.4f}" for sp, v in nme.items() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
