"""Face detectors side by side on real photos (``dmsl_core.detection``).

    OMP_NUM_THREADS=1 python tools/detector_benchmark.py --json detector_benchmark.json \
        --overlay-dir /tmp/det_overlays

- HELEN test whole images (``--helen``, the .pts beside each .jpg; the annotated face's box = its 68
  points' bounding box), each resized to 640 px on its longer side. A face counts as found when a
  detection has IoU >= 0.4 with that box, or holds the box's centre and its size (sqrt of the
  area) is 0.6-1.6 x the box's. "other" = detections per image that are not the annotated face
  (HELEN photos often hold other, unannotated people: not all of them are false).
- No-face images: scikit-image's data images with no human face (``camera`` - a cameraman - and
  ``astronaut`` are left out), plus flat and noise images, each in colour (where it has colour) and
  grey; every detection there is a false face.
- Thermal: the real thermal frames in ``--thermal`` as spectrum "th" (the frame and its inverse
  searched, see ``thermal_polarity``; also counted as-is only); detections drawn to ``--overlay-dir``
  (no ground truth: look at them).

Time: ms per image (detector call only, input already 640 px), OpenCV and torch on one thread.
The test set is only measured here, never tuned on.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dmsl_core.data.imageio import read_image  # noqa: E402
from dmsl_core.data.pts import read_pts  # noqa: E402
from dmsl_core.detection import get_detector, iou, list_detectors  # noqa: E402

NO_FACE_SKIMAGE = ["coffee", "chelsea", "rocket", "horse", "coins", "text", "brick", "grass", "gravel", "moon",
                   "hubble_deep_field", "immunohistochemistry", "page", "clock", "colorwheel", "logo", "retina",
                   "cell", "human_mitosis", "microaneurysms", "skin", "shepp_logan_phantom", "binary_blobs",
                   "checkerboard", "motorcycle_left"]


def _points(path: str) -> np.ndarray:
    """iBUG .pts with its header, or the bare "x y" lines the HELEN test copy here has."""
    try:
        return read_pts(path)
    except ValueError:
        pts = np.loadtxt(path, dtype=np.float64).reshape(-1, 2)
        if len(pts) != 68:
            raise ValueError(f"{path}: {len(pts)} points, expected 68") from None
        return pts


def resize_longer(img: np.ndarray, side: int = 640) -> tuple[np.ndarray, float]:
    s = side / max(img.shape[:2])
    if abs(s - 1) < 1e-6:
        return img, 1.0
    return cv2.resize(img, (int(round(img.shape[1] * s)), int(round(img.shape[0] * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR), s


def matches(det_box, gt_box) -> bool:
    if iou(det_box, gt_box) >= 0.4:
        return True
    x, y, w, h = det_box
    cx, cy = gt_box[0] + gt_box[2] / 2, gt_box[1] + gt_box[3] / 2
    ratio = np.sqrt(max(w * h, 1e-9) / max(gt_box[2] * gt_box[3], 1e-9))
    return x <= cx <= x + w and y <= cy <= y + h and 0.6 <= ratio <= 1.6


def no_face_images() -> list[tuple[str, np.ndarray]]:
    from skimage import data
    out = []
    for name in NO_FACE_SKIMAGE:
        fn = getattr(data, name, None)
        if fn is None:
            continue
        try:
            img = np.asarray(fn())
        except Exception:  # noqa: BLE001 - an image that needs a download (pooch) is skipped
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.dtype != np.uint8:
            img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim == 3 and img.shape[2] == 3:
            out.append((f"{name} (colour)", img))
            out.append((f"{name} (grey)", cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)))
        elif img.ndim == 2:
            out.append((f"{name} (grey)", img))
    rng = np.random.default_rng(0)
    out.append(("flat grey 640x512", np.full((512, 640), 128, np.uint8)))
    out.append(("flat colour 640x512", np.full((512, 640, 3), (90, 140, 200), np.uint8)))
    out.append(("uniform noise grey", rng.integers(0, 256, (512, 640), dtype=np.uint8)))
    out.append(("uniform noise colour", rng.integers(0, 256, (512, 640, 3), dtype=np.uint8)))
    blob = cv2.GaussianBlur(rng.normal(128, 60, (512, 640)).astype(np.float32), (0, 0), 6)
    out.append(("blurred noise grey", cv2.normalize(blob, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)))
    out.append(("16-bit noise", rng.integers(20000, 30000, (512, 640), dtype=np.uint16)))
    return [(n, resize_longer(im)[0]) for n, im in out]


def draw(img: np.ndarray, dets, path: str) -> None:
    from dmsl_core.detection import to_gray8
    vis = cv2.cvtColor(to_gray8(img), cv2.COLOR_GRAY2BGR) if img.ndim == 2 or img.dtype != np.uint8 \
        else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    for d in dets:
        x, y, w, h = (int(round(v)) for v in d.box)
        cv2.rectangle(vis, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(vis, f"{d.score:.2f}", (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
    cv2.imwrite(path, vis)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--helen", default="/work/data/300w/helen/testset")
    ap.add_argument("--thermal", default="/work/shared/reference/thermal")
    ap.add_argument("--detectors", default=None, help="comma-separated (default: every available one)")
    ap.add_argument("--limit", default="", help="NAME=N: that detector only on the first N HELEN images "
                                                "(e.g. dlib-cnn=40: seconds per image on a CPU)")
    ap.add_argument("--thermal-test", default=None,
                    help="a dataset folder of thermal faces with their points (e.g. the `dmsl thermalize` copy "
                         "of HELEN test, 2x crops): recall and other boxes per image, spectrum 'th'")
    ap.add_argument("--json", default=None)
    ap.add_argument("--overlay-dir", default=None, help="draw the thermal frames' detections here")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    names = args.detectors.split(",") if args.detectors else [n for n in list_detectors(True) if n != "auto"]
    limits = dict((k, int(v)) for k, v in (x.split("=") for x in filter(None, args.limit.split(","))))
    helen = sorted(glob.glob(os.path.join(args.helen, "*.jpg")))
    helen_imgs = []
    for p in helen:
        img, s = resize_longer(read_image(p))
        pts = _points(os.path.splitext(p)[0] + ".pts") * s
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        helen_imgs.append((os.path.basename(p), img, np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])))
    negatives = no_face_images()
    thermal = sorted(glob.glob(os.path.join(args.thermal, "*")))
    report = {"schema": "dmsl-detector-benchmark/1", "helen_images": len(helen_imgs),
              "match_rule": "IoU >= 0.4 with the 68 points' bounding box, or centre inside and size ratio 0.6-1.6",
              "image_side": 640, "threads": 1, "no_face_images": [n for n, _ in negatives], "detectors": {}}
    if args.overlay_dir:
        os.makedirs(args.overlay_dir, exist_ok=True)
    for name in names:
        det = get_detector(name)
        det(helen_imgs[0][1])                                   # warm-up
        n = min(len(helen_imgs), limits.get(name, len(helen_imgs)))
        found, others, ms, misses = 0, [], [], []
        for fname, img, gt in helen_imgs[:n]:
            t = time.perf_counter()
            dets = det(img)
            ms.append((time.perf_counter() - t) * 1000)
            hit = [d for d in dets if matches(d.box, gt)]
            found += bool(hit)
            others.append(len(dets) - min(1, len(hit)))
            if not hit:
                misses.append(fname)
        false = {}
        for nname, img in negatives:
            dets = det(img)
            if dets:
                false[nname] = [d.to_dict() for d in dets]
        th, th_as_is = {}, {}
        for p in thermal:
            img = read_image(p)
            det.thermal_polarity = "as-is"
            th_as_is[os.path.basename(p)] = [d.to_dict() for d in det(img, spectrum="th")]
            det.thermal_polarity = "both"
            dets = det(img, spectrum="th")
            th[os.path.basename(p)] = [d.to_dict() for d in dets]
            if args.overlay_dir:
                draw(img, dets, os.path.join(args.overlay_dir, f"{name}_{os.path.splitext(os.path.basename(p))[0]}.png"))
        th_test = {}
        if args.thermal_test:
            from dmsl_core.data.folder import read_manifest
            root = args.thermal_test
            t_found, t_other, t_n = 0, 0, 0
            for rec in read_manifest(root):
                if not rec.th:
                    continue
                pts = read_pts(os.path.join(root, rec.th_landmarks or rec.landmarks))
                lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
                gt = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
                dets = det(read_image(os.path.join(root, rec.th)), spectrum="th")
                hit = [d for d in dets if matches(d.box, gt)]
                t_found += bool(hit)
                t_other += len(dets) - min(1, len(hit))
                t_n += 1
            th_test = {"images": t_n, "recall": t_found / max(1, t_n), "other_per_image": t_other / max(1, t_n)}
        r = {"thermal_test": th_test, "helen_measured": n, "recall": found / n, "found": found,
             "other_per_image": float(np.mean(others)), "ms_per_image_median": float(np.median(ms)),
             "ms_per_image_mean": float(np.mean(ms)), "misses": misses,
             "false_faces": sum(len(v) for v in false.values()),
             "no_face_images_with_a_face": len(false), "no_face_images": len(negatives),
             "false_detections": false, "thermal": th, "thermal_as_is": th_as_is}
        report["detectors"][name] = r
        print(f"{name}: recall {found}/{n} = {found / n:.3f}, other/img {r['other_per_image']:.2f}, "
              f"{r['ms_per_image_median']:.0f} ms/img, false faces {r['false_faces']} on "
              f"{len(false)}/{len(negatives)} no-face images, thermal detections {[len(v) for v in th.values()]} "
              f"(as-is only {[len(v) for v in th_as_is.values()]})"
              + (f"; thermal test recall {th_test['recall']:.3f}, other/img {th_test['other_per_image']:.2f}"
                 if th_test else ""), flush=True)
    if args.json:
        from dmsl_core.atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(report, indent=1))
    print("\n| detector | HELEN test recall | other detections / image | ms / image (640 px, 1 thread) | "
          "false faces on no-face images | thermal detections per frame (as-is only) |")
    print("|---|---|---|---|---|---|")
    for name, r in report["detectors"].items():
        print(f"| {name} | {r['recall']:.3f} ({r['found']}/{r['helen_measured']}) | {r['other_per_image']:.2f} | "
              f"{r['ms_per_image_median']:.0f} | {r['false_faces']} on {r['no_face_images_with_a_face']}/"
              f"{r['no_face_images']} | {', '.join(str(len(v)) for v in r['thermal'].values())} "
              f"({', '.join(str(len(v)) for v in r['thermal_as_is'].values())}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
