"""How thermal do `dmsl thermalize`'s images look? Numbers against real thermal frames + a picture.

Thermalizes N real faces of the HELEN training set (whole photos with 68-point ``.pts`` side by side,
cropped to about twice the face extent and scaled to 256 px) and compares their 8-bit AGC views
(white-hot) with the real frames in /work/shared/reference/thermal/:

* histogram inside the face (mean, std, 5/50/95th percentiles of the 8-bit values, and the
  intersection of the mean 32-bin face histogram with each real frame's);
* edge energy: mean Sobel gradient magnitude inside the face box and in background boxes, after
  resampling every image so its face box is 100 px wide (so a close-up and a crowd compare);
* the same gradient numbers for the visible crops (what texture there was to leak).

The real frames have no landmarks: their face and background boxes are set by hand below (looked
up on the images). Frame 103_1_1_4_450_1 is a close-up like the 300-W crops; in 3312 and 4076
the faces are 25-60 px wide (outdoors, hot ground), so their face numbers come from few pixels.

    OMP_NUM_THREADS=1 python tools/thermal_realism.py --n 40 --picture docs/thermalize_examples.png

Writes the picture (a few visible crops, their thermal versions, the three real frames) and
prints a table; ``--json`` also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsl_core.data.imageio import read_image, write_image  # noqa: E402
from dmsl_core.thermalize import row_seed, thermalize_face, to_u8  # noqa: E402

HELEN = Path("/work/data/300w/helen/trainset")
REFERENCE = Path("/work/shared/reference/thermal")
# hand-set boxes (x0, y0, x1, y1) on the 464x348 reference frames
REF_FACES = {
    "103_1_1_4_450_1.png": [(185, 45, 320, 225)],
    "3312.png": [(188, 118, 214, 152), (262, 115, 292, 156), (364, 138, 392, 180)],
    "4076.png": [(66, 88, 126, 182), (88, 52, 116, 90), (126, 46, 150, 76)],
}
REF_BACKGROUND = {
    "103_1_1_4_450_1.png": [(0, 0, 110, 200), (370, 0, 464, 200)],
    "3312.png": [(0, 0, 464, 100), (60, 170, 170, 300)],
    "4076.png": [(220, 200, 464, 348), (160, 0, 464, 60)],
}
FACE_PX = 100


def read_helen_pts(path: Path) -> np.ndarray:
    """HELEN's files here are 68 bare ``x y`` lines, 1-based like iBUG .pts; returns 0-based."""
    try:
        from dmsl_core.data.pts import read_pts
        return read_pts(path)
    except ValueError:
        pts = np.loadtxt(path, dtype=np.float64).reshape(-1, 2)
        if pts.shape != (68, 2):
            raise ValueError(f"{path}: {pts.shape[0]} points, expected 68") from None
        return pts - 1.0


def crop_face(img: np.ndarray, pts: np.ndarray, out: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A square crop about twice the face extent (a little more room above), scaled to ``out``."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    side = 2.0 * max(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) - 0.08 * side
    s = out / side
    M = np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], np.float64)
    crop = cv2.warpAffine(img, M, (out, out), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, pts @ M[:, :2].T + M[:, 2]


def grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def _grad(g: np.ndarray) -> np.ndarray:
    f = g.astype(np.float32)
    return np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)) / 8.0


def measure(g8: np.ndarray, faces: list, backs: list) -> dict:
    """Face histogram and gradient numbers of an 8-bit image, face boxes resampled to FACE_PX wide."""
    vals, gf, gb, hist = [], [], [], np.zeros(32)
    scale = FACE_PX / float(np.mean([b[2] - b[0] for b in faces]))
    big = cv2.resize(g8, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    gm = _grad(big)
    for (x0, y0, x1, y1) in faces:
        v = g8[y0:y1, x0:x1].ravel()
        vals.append(v)
        hist += np.histogram(v, bins=32, range=(0, 256))[0]
        X0, Y0, X1, Y1 = (int(round(c * scale)) for c in (x0, y0, x1, y1))
        gf.append(gm[Y0:Y1, X0:X1].ravel())
    for (x0, y0, x1, y1) in backs:
        X0, Y0, X1, Y1 = (int(round(c * scale)) for c in (x0, y0, x1, y1))
        gb.append(gm[Y0:Y1, X0:X1].ravel())
    v = np.concatenate(vals)
    return {"face_mean": float(v.mean()), "face_std": float(v.std()),
            "face_p5_p50_p95": [float(x) for x in np.percentile(v, [5, 50, 95])],
            "grad_face": float(np.concatenate(gf).mean()),
            "grad_bg": float(np.concatenate(gb).mean()) if gb else float("nan"),
            "hist": (hist / max(hist.sum(), 1)).tolist()}


def synth_boxes(pts: np.ndarray, size: int) -> tuple[list, list]:
    """Face box (landmark extent, brows up to a little forehead) and background corner boxes."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    face = [(int(x0), int(max(0, y0 - 0.1 * (y1 - y0))), int(x1), int(y1))]
    c = int(0.16 * size)
    backs = [(0, 0, c, c), (size - c, 0, size, c)]
    return face, backs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="number of HELEN training faces (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--picture", default="", help="write the side-by-side picture here (PNG)")
    ap.add_argument("--show", type=int, default=6, help="faces in the picture (default 6)")
    ap.add_argument("--json", default="", help="write the numbers here")
    args = ap.parse_args(argv)

    files = sorted(HELEN.glob("*.jpg"))
    if not files:
        raise SystemExit(f"{HELEN}: no .jpg files")
    step = max(1, len(files) // args.n)
    picks = files[::step][: args.n]
    th_stats, vis_stats, shown = [], [], []
    for f in picks:
        img = read_image(f)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        crop, p = crop_face(img, read_helen_pts(f.with_suffix(".pts")))
        tf = thermalize_face(crop, p, seed=row_seed(args.seed, f.name))
        u8 = to_u8(tf.celsius)
        faces, backs = synth_boxes(p, crop.shape[0])
        th_stats.append(measure(u8, faces, backs))
        vis_stats.append(measure(grey(crop), faces, backs))
        if len(shown) < args.show:
            shown.append((crop, u8))
    refs = {}
    for name, boxes in REF_FACES.items():
        g = grey(read_image(REFERENCE / name))
        refs[name] = (g, measure(g, boxes, REF_BACKGROUND[name]))

    def agg(stats: list, key: str) -> float:
        return float(np.mean([s[key] for s in stats]))

    hist_syn = np.mean([s["hist"] for s in th_stats], axis=0)
    rows = [("thermalized (mean of %d)" % len(th_stats), th_stats), ("their visible crops", vis_stats)]
    print(f"{'image':34s} {'face mean':>9s} {'face std':>8s} {'p5/p50/p95':>14s} {'grad face':>9s} {'grad bg':>8s}"
          f" {'hist∩':>6s}")
    out = {"n": len(th_stats)}
    for label, st in rows:
        pc = np.mean([s["face_p5_p50_p95"] for s in st], axis=0)
        print(f"{label:34s} {agg(st, 'face_mean'):9.1f} {agg(st, 'face_std'):8.1f} "
              f"{'/'.join(f'{v:.0f}' for v in pc):>14s} {agg(st, 'grad_face'):9.2f} {agg(st, 'grad_bg'):8.2f}")
        out[label] = {k: agg(st, k) for k in ("face_mean", "face_std", "grad_face", "grad_bg")}
    for name, (_, m) in refs.items():
        inter = float(np.minimum(hist_syn, np.asarray(m["hist"])).sum())
        print(f"{'real ' + name:34s} {m['face_mean']:9.1f} {m['face_std']:8.1f} "
              f"{'/'.join(f'{v:.0f}' for v in m['face_p5_p50_p95']):>14s} {m['grad_face']:9.2f} "
              f"{m['grad_bg']:8.2f} {inter:6.2f}")
        out["real " + name] = {k: m[k] for k in ("face_mean", "face_std", "grad_face", "grad_bg")} | {
            "hist_intersection_with_thermalized": inter}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.picture:
        h = 120
        top = np.concatenate([cv2.resize(c, (h, h), interpolation=cv2.INTER_AREA) for c, _ in shown], 1)
        mid = np.concatenate([cv2.resize(np.repeat(t[..., None], 3, 2), (h, h), interpolation=cv2.INTER_AREA)
                              for _, t in shown], 1)
        rr = [np.repeat(cv2.resize(g, (int(round(g.shape[1] * h / g.shape[0])), h),
                                   interpolation=cv2.INTER_AREA)[..., None], 3, 2) for g, _ in refs.values()]
        bot = np.concatenate(rr, 1)
        wmax = max(top.shape[1], bot.shape[1])
        pad = lambda a: np.pad(a, ((0, 0), (0, wmax - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
        pic = np.concatenate([pad(top), pad(mid), pad(bot)], 0)
        write_image(args.picture, pic)
        print(f"wrote {args.picture} ({pic.shape[1]}x{pic.shape[0]}, {Path(args.picture).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
