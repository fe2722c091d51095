"""A grid of predictions on real test faces, visible above thermal, truth green and prediction red.

    python tools/real_face_grid.py DATA --weights dmsl-default --out docs/helen_test_grid.png [--n 8]

DATA is a dataset folder with visible and thermal images of the same faces (``dmsl thermalize``
of ``dmsl import --preset 300w``: see docs/real-data.md). Faces are taken evenly through the
manifest (no choosing); each tile's caption is that face's NME.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.data.folder import read_manifest, thermal_to_celsius  # noqa: E402
from dmsl_core.data.imageio import read_image  # noqa: E402
from dmsl_core.evaluation import nme_per_image  # noqa: E402
from dmsl_core.pipeline import Predictor  # noqa: E402
from dmsl_core.thermalize import to_u8  # noqa: E402


def _tile(img: np.ndarray, truth: np.ndarray, pred: np.ndarray, err: float, size: int) -> np.ndarray:
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    f = size / max(img.shape[:2])
    img = cv2.resize(img, (int(round(img.shape[1] * f)), int(round(img.shape[0] * f))), interpolation=cv2.INTER_AREA)
    for pts, colour in ((truth, (0, 200, 0)), (pred, (0, 0, 255))):
        for x, y in pts:
            cv2.circle(img, (int(round((x + 0.5) * f - 0.5)), int(round((y + 0.5) * f - 0.5))), 1, colour, -1,
                       cv2.LINE_AA)
    cv2.putText(img, f"NME {err:.3f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--weights", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--size", type=int, default=120)
    args = p.parse_args()
    pred = Predictor.from_weights(args.weights, device="cpu")
    recs = [r for r in read_manifest(args.data) if r.vis and r.th]
    pick = [recs[int(i)] for i in np.linspace(0, len(recs) - 1, args.n)]
    rows = []
    for spec in ("vis", "th"):
        tiles = []
        for r in pick:
            raw = read_image(r.abspath(r.vis if spec == "vis" else r.th))
            truth = r.landmarks_for(spec)
            out = pred.predict([raw])[0]
            shown = raw if spec == "vis" else to_u8(thermal_to_celsius(raw, r.th_format))
            tiles.append(_tile(shown, truth, out.landmarks, nme_per_image(out.landmarks, truth), args.size))
        h = max(t.shape[0] for t in tiles)
        tiles = [cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 2, cv2.BORDER_CONSTANT) for t in tiles]
        rows.append(np.hstack(tiles))
    grid = np.vstack([rows[0], np.zeros((2, rows[0].shape[1], 3), np.uint8), rows[1]])
    cv2.imwrite(args.out, grid)
    print(f"{args.out}: {args.n} faces, visible above thermal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
