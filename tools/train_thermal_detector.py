"""Train the thermal face detector (``dlib-hog-thermal``): Dlib's HOG + linear SVM trainer on thermal faces.

    python tools/train_thermal_detector.py DATA [DATA ...] --out assets/detectors/dlib-hog-thermal.svm \
        [--max-images 1200] [--face 90] [--C 5] [--threads 1] [--val-every 5]
    python tools/train_thermal_detector.py DATA --sweep [--weights assets/detectors/dlib-hog-thermal.svm]

Each DATA is a dataset folder (manifest.csv) with thermal images and 68 points per image: the
``dmsl thermalize`` copies of the 300-W training faces and the generator's pairs. The face box is the
square around the 68 points (centre of their box, side = its larger side); each image is scaled so the
face is ``--face`` px wide (Dlib's window is 80 x 80) and made 8-bit the way the pipeline makes any
thermal frame (:func:`dmsl_core.detection.to_gray8`). Only photos with ONE annotated face are used
(another face in the crop would be taught as background). Every ``--val-every``-th subject (natural
order, as the trainer's validation) is left out and measured (recall / precision at IoU 0.4).
The data is never written anywhere; only the detector file (~50 KB) is.

``--sweep``: the detector as the pipeline runs it (``get_detector("dlib-hog-thermal")``: the images at
their own size, both polarities) on every 2nd validation image, recall and other boxes per image at
several score thresholds - how the shipped threshold was chosen (validation, never the test set).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.data.folder import read_manifest  # noqa: E402
from dmsl_core.data.imageio import read_image  # noqa: E402
from dmsl_core.data.names import natural_key  # noqa: E402
from dmsl_core.data.pts import read_pts  # noqa: E402
from dmsl_core.detection import iou, to_gray8  # noqa: E402


def face_square(pts: np.ndarray) -> np.ndarray:
    ok = np.isfinite(pts).all(axis=1)
    p = pts[ok]
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([cx - side / 2, cy - side / 2, side, side])


def load(folders: list[str], face: float, val_every: int, max_images: int):
    train, val = [], []
    for folder in folders:
        root = Path(folder)
        recs = read_manifest(root)
        per_photo = Counter(r.subject for r in recs)
        subjects = sorted(per_photo, key=natural_key)
        val_subjects = set(subjects[val_every - 1::val_every]) if val_every > 0 else set()
        for r in recs:
            if not r.th or per_photo[r.subject] != 1 and not r.subject.startswith("synth"):
                continue
            pts_file = r.th_landmarks or r.landmarks
            if not pts_file:
                continue
            img = read_image(root / r.th)
            pts = read_pts(root / pts_file)
            box = face_square(pts)
            s = face / box[2]
            g = to_gray8(img)
            g = cv2.resize(g, (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            (val if r.subject in val_subjects else train).append((g, box * s, f"{root.name}/{r.th}"))
    rng = np.random.default_rng(0)
    if max_images and len(train) > max_images:
        train = [train[i] for i in sorted(rng.choice(len(train), max_images, replace=False))]
    return train, val


def sweep(folders: list[str], weights: str, val_every: int) -> None:
    from dmsl_core.detection import get_detector
    det = get_detector("dlib-hog-thermal", path=weights, threshold=-0.3)
    best, other, n = [], [], 0
    for folder in folders:
        root = Path(folder)
        recs = read_manifest(root)
        per_photo = Counter(r.subject for r in recs)
        subjects = sorted(per_photo, key=natural_key)
        val = set(subjects[val_every - 1::val_every])
        items = [r for r in recs if r.subject in val and r.th
                 and (per_photo[r.subject] == 1 or r.subject.startswith("synth"))][::2]
        for r in items:
            truth = face_square(read_pts(root / (r.th_landmarks or r.landmarks)))
            b = -np.inf
            for d in det(read_image(root / r.th), "th"):
                if iou(d.box, truth) >= 0.3:
                    b = max(b, d.score)
                else:
                    other.append(d.score)
            best.append(b)
            n += 1
    best, other = np.array(best), np.array(other)
    for t in (-0.3, 0.0, 0.2, 0.4, 0.6):
        print(f"threshold {t:+.1f}: recall {(best >= t).mean():.3f}, other boxes per image "
              f"{(other >= t).sum() / max(1, n):.3f} ({n} validation images)")


def measure(detector, items, iou_min=0.4):
    """Recall (the face found), false faces (detections matching no face) and seconds per image."""
    import dlib  # noqa: F401
    found = false = 0
    t0 = time.perf_counter()
    for g, box, _ in items:
        rects = detector(g, 0)
        hits = [iou(np.array([r.left(), r.top(), r.width(), r.height()], float), box) >= iou_min for r in rects]
        found += any(hits)
        false += sum(not h for h in hits)
    n = max(1, len(items))
    return {"images": len(items), "recall": found / n, "false_per_image": false / n,
            "ms_per_image": 1000 * (time.perf_counter() - t0) / n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--out", help="the detector file to write (training)")
    ap.add_argument("--max-images", type=int, default=1200)
    ap.add_argument("--face", type=float, default=90.0)
    ap.add_argument("--C", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=5)
    ap.add_argument("--sweep", action="store_true", help="measure --weights on the validation subjects")
    ap.add_argument("--weights", default=str(ROOT / "assets" / "detectors" / "dlib-hog-thermal.svm"))
    a = ap.parse_args(argv)
    if a.sweep:
        sweep(a.data, a.weights, a.val_every)
        return 0
    if not a.out:
        ap.error("--out is required for training")
    import dlib
    train, val = load(a.data, a.face, a.val_every, a.max_images)
    print(f"{len(train)} training images, {len(val)} validation images", flush=True)
    opts = dlib.simple_object_detector_training_options()
    opts.add_left_right_image_flips = True
    opts.C = a.C
    opts.num_threads = a.threads
    opts.be_verbose = False
    opts.detection_window_size = 80 * 80
    images = [g for g, _, _ in train]
    boxes = [[dlib.rectangle(int(round(b[0])), int(round(b[1])), int(round(b[0] + b[2])), int(round(b[1] + b[3])))]
             for _, b, _ in train]
    t0 = time.perf_counter()
    det = dlib.train_simple_object_detector(images, boxes, opts)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    det.save(str(tmp))
    dlib.simple_object_detector(str(tmp))     # it loads back
    tmp.replace(out)
    print("train:", measure(det, train[:300]))
    print("validation:", measure(det, val))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
