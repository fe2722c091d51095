"""Make docs/synth_grid.png: synthetic visible/thermal pairs with their exact landmarks.

Usage: python tools/make_synth_grid.py [--out docs/synth_grid.png] [--seed 0] [--subjects 0,3,5,6]
Each cell is one pair of the synthetic database (same framing and noise as ``dmsl synth``):
visible on top, thermal (inferno palette on the white-hot display image) below, landmarks in green.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsl_core.data.synth import FaceRenderer  # noqa: E402
from dmsl_core.data.synth.dataset import pair_state  # noqa: E402
from dmsl_core.landmarks import CONTOURS  # noqa: E402

COLUMNS = ["neutral", "smile", "surprise", "yaw_left", "pitch_up", "glasses", "sunglasses",
           "hand_mouth", "hat", "scarf", "light_left", "dark"]


def draw_landmarks(img: np.ndarray, pts: np.ndarray, scale: float) -> np.ndarray:
    out = img.copy()
    s = 16
    for idx, closed in CONTOURS:
        poly = np.round(pts[list(idx)] * scale * s).astype(np.int32)
        cv2.polylines(out, [poly], closed, (60, 200, 80), 1, cv2.LINE_AA, 4)
    for p in pts:
        cv2.circle(out, tuple(np.round(p * scale * s).astype(int)), int(1.6 * s), (40, 255, 60), -1, cv2.LINE_AA, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/synth_grid.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subjects", default="0,3,6")
    ap.add_argument("--scale", type=float, default=0.55, help="cell scale relative to the 320x256 frames")
    args = ap.parse_args(argv)
    renderer = FaceRenderer(size=(320, 256), camera_seed=args.seed)
    subjects = [int(s) for s in args.subjects.split(",")]
    k = args.scale
    cw, ch = int(320 * k), int(256 * k)
    rows = []
    header = np.full((22, cw * len(COLUMNS), 3), 255, np.uint8)
    for j, name in enumerate(COLUMNS):
        cv2.putText(header, name, (j * cw + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    rows.append(header)
    for s in subjects:
        top, bottom = [], []
        for name in COLUMNS:
            ident, state, rng = pair_state(args.seed, s, name, renderer)
            f = renderer.render(ident, state, rng)
            vis = cv2.resize(f.vis, (cw, ch), interpolation=cv2.INTER_AREA)
            th = cv2.applyColorMap(f.th_u8, cv2.COLORMAP_INFERNO)[..., ::-1]
            th = cv2.resize(th, (cw, ch), interpolation=cv2.INTER_AREA)
            top.append(draw_landmarks(vis, f.landmarks, k))
            bottom.append(draw_landmarks(th, f.landmarks, k))
        rows += [np.concatenate(top, 1), np.concatenate(bottom, 1), np.full((4, cw * len(COLUMNS), 3), 255, np.uint8)]
    grid = np.concatenate(rows, 0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
