"""The "Find every face" issue's targets, measured end to end with the shipped pipeline (face
detector -> the box refinement the model card says (``landmarks``: M_l, then M_l again around its own
points) -> the landmark stage's own confidence):

    OMP_NUM_THREADS=1 python tools/face_targets.py --json face_targets.json [--overlay-dir DIR]

1. **Whole HELEN test photos** (``--helen``: the .jpg + .pts of 300-W's HELEN test split, 330), each
   resized to 640 px on its longer side: ``Predictor.faces(detector="auto", spectrum="vis")``. The
   annotated face counts as found when a reported face's landmark box overlaps the box of its 68
   annotated points by IoU >= 0.4; its NME (outer eye corners) is then measured. A miss is an
   annotated face no reported face matches. Other reported faces are counted (HELEN photos often hold
   other, unannotated people: not all of them are false).
2. **No-face images**: scikit-image's data images without a person, flat and noise images, colour and
   grey (the list of ``tools/detector_benchmark.py``): every reported face is a false face. Also
   without a detector (M_b's one box per image), where only the confidence can say "no face".
3. **Zoom-out videos**: ``--zoom N`` HELEN test photos, each made into a 640x480 video (MJPG .avi
   written and read back with OpenCV) whose annotated face shrinks from 60 % to 12 % of the frame
   width over ``--frames`` frames (the photo's surroundings around it, its median colour beyond
   them), run through ``StreamProcessor(StreamConfig(mode="visible", detector="auto"))`` - the path
   ``dmsl run`` and the app take. Per frame: the annotated face found (as in 1) and its NME.

4. **Thermal scenes with several small people** (``--thermal-test``: the ``dmsl thermalize`` copy of
   HELEN test, 2x crops, centi-kelvin): ``--scenes`` 640x512 scenes, each with 4 thermal test faces
   pasted without overlap at face widths of 28-80 px on a structured ambient background (22 C),
   searched with ``Predictor.faces(spectrum="th")``: recall (also by face width: under the issue's
   32 px and from 32 px up), other faces, NME of the found ones.

The test images are only measured here; nothing is chosen on them.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dmsl_core.data.imageio import read_image  # noqa: E402
from dmsl_core.evaluation import match_annotated_face, nme_per_image  # noqa: E402
from dmsl_core.landmarks import boundary_from_points  # noqa: E402
from dmsl_core.pipeline import Predictor  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detector_benchmark import _points as read_points, no_face_images, resize_longer  # noqa: E402


def summary(nmes: list[float], n: int) -> dict:
    a = np.asarray(nmes, float)
    return {"n": n, "found": int(len(a)), "misses": n - int(len(a)), "miss_rate": round(1 - len(a) / max(1, n), 4),
            "nme_mean": round(float(a.mean()), 4) if len(a) else None,
            "nme_median": round(float(np.median(a)), 4) if len(a) else None,
            "failure_rate_0.08": round(float((a >= 0.08).mean()), 4) if len(a) else None}


def zoom_video(img: np.ndarray, pts: np.ndarray, path: str, frames: int, start: float = 0.60, end: float = 0.12,
               size=(640, 480)):
    """Write the zoom-out video; return the annotated points per frame (in frame pixels)."""
    W, H = size
    box = boundary_from_points(pts)
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    fill = tuple(int(v) for v in np.median(img.reshape(-1, img.shape[2]), axis=0))
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    if not vw.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write an MJPG video here")
    truth = []
    for k in range(frames):
        frac = start * (end / start) ** (k / max(1, frames - 1))      # geometric: constant zoom speed
        s = frac * W / box[2]
        M = np.array([[s, 0, W / 2 - s * cx], [0, s, H / 2 - s * cy]])
        frame = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        vw.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        truth.append(pts * s + M[:, 2])
    vw.release()
    return truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--helen", default="/work/data/300w_test/helen")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--zoom", type=int, default=10, help="zoom-out videos (the first N HELEN test photos whose "
                                                         "face is wide enough)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--no-quality", action="store_true", help="measure without the confidence network")
    ap.add_argument("--parts", default="photos,noface,zoom,thermal")
    ap.add_argument("--thermal-test", default="/work/data/helen_test2_th")
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--json", default=None)
    ap.add_argument("--overlay-dir", default=None)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pred = Predictor.from_weights(args.weights, device="cpu")
    if args.no_quality:
        pred.quality = None
    parts = set(args.parts.split(","))
    from dmsl_core import detection as D
    rep = {"schema": "dmsl-face-targets/1", "model": pred.name, "refine": pred.refine,
           "refine_rough": pred.refine_rough, "tta": pred.tta,
           "detector": {"auto": {"vis": D.get_detector("auto").vis.name, "th": D.get_detector("auto").th.name}},
           "quality": None if pred.quality is None else {"source": pred.quality.source,
                                                          "threshold": pred.quality.threshold}}
    if args.overlay_dir:
        os.makedirs(args.overlay_dir, exist_ok=True)
    helen = sorted(glob.glob(os.path.join(args.helen, "*.jpg")))
    if "photos" in parts:
        nmes, others, missed, ms = [], 0, [], []
        for p in helen:
            img, s = resize_longer(read_image(p))
            gt = read_points(os.path.splitext(p)[0] + ".pts") * s
            t = time.perf_counter()
            faces = pred.faces(img, detector="auto", spectrum="vis")
            ms.append((time.perf_counter() - t) * 1000)
            f, o = match_annotated_face(faces, gt)
            others += o
            if f is None:
                missed.append(os.path.basename(p))
            else:
                nmes.append(nme_per_image(f.landmarks, gt))
        r = summary(nmes, len(helen))
        r.update({"other_faces_per_image": round(others / max(1, len(helen)), 3), "missed": missed,
                  "ms_per_image_median": round(float(np.median(ms)), 1)})
        rep["helen_whole_photos"] = r
        print("HELEN whole photos:", {k: v for k, v in r.items() if k != "missed"}, flush=True)
    if "noface" in parts:
        neg = no_face_images()
        det_false, mb_false, confs = {}, {}, {}
        for name, img in neg:
            faces = pred.faces(img, detector="auto")
            if faces:
                det_false[name] = len(faces)
            p = pred.predict_one(img)
            confs[name] = None if p.confidence is None else round(p.confidence, 3)
            if pred.is_face(p):
                mb_false[name] = confs[name]
        rep["no_face_images"] = {"n": len(neg), "with_detector": {"images_with_a_face": len(det_false),
                                                                   "false_faces": det_false},
                                 "without_detector": {"images_called_a_face": len(mb_false), "which": mb_false,
                                                      "confidence": confs}}
        print("no-face images:", len(neg), "with detector: images with a face", len(det_false), det_false,
              "| M_b only, called a face:", len(mb_false), flush=True)
    if "zoom" in parts:
        from dmsl_core.frames import FramePair
        from dmsl_core.stream import StreamConfig, StreamProcessor
        vids = []
        tmp = tempfile.mkdtemp(prefix="dmsl_zoom_")
        for p in helen:
            if len(vids) >= args.zoom:
                break
            img = read_image(p)
            if img.ndim != 3:
                continue
            gt = read_points(os.path.splitext(p)[0] + ".pts")
            if boundary_from_points(gt)[2] < 0.6 * 640 * 0.6:     # upscaled by more than ~1.7x at the start
                continue
            path = os.path.join(tmp, os.path.basename(p) + ".avi")
            truth = zoom_video(img, gt, path, args.frames)
            proc = StreamProcessor(pred, StreamConfig(mode="visible", detector="auto"))
            cap = cv2.VideoCapture(path)
            nmes, lost, ids = [], 0, set()
            k = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                res = proc.process(FramePair(vis=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), th=None, t=k / 25.0, index=k))
                f, _ = match_annotated_face(res.faces.get("vis") or [], truth[k])
                if f is None:
                    lost += 1
                    nmes.append(np.inf)
                else:
                    ids.add(f.id)
                    nmes.append(nme_per_image(f.landmarks, truth[k]))
                if args.overlay_dir and k in (0, args.frames // 2, args.frames - 1):
                    vis = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).copy()
                    for ff in res.faces.get("vis") or []:
                        for x, y in ff.landmarks:
                            cv2.circle(vis, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
                    for x, y in truth[k]:
                        cv2.circle(vis, (int(round(x)), int(round(y))), 1, (255, 0, 0), -1)
                    cv2.imwrite(os.path.join(args.overlay_dir, f"zoom_{len(vids)}_{k}.png"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
                k += 1
            cap.release()
            a = np.asarray(nmes)
            v = {"photo": os.path.basename(p), "frames": k, "lost_frames": lost, "ids": sorted(ids),
                 "share_nme_le_0.05": round(float((a <= 0.05).mean()), 4),
                 "nme_median": round(float(np.median(a[np.isfinite(a)])), 4) if np.isfinite(a).any() else None}
            vids.append(v)
            print("zoom:", v, flush=True)
        allv = [x for x in vids]
        rep["zoom_out"] = {"videos": allv, "frames": int(sum(v["frames"] for v in allv)),
                           "lost_frames": int(sum(v["lost_frames"] for v in allv)),
                           "videos_meeting_95pct_at_0.05": int(sum(v["share_nme_le_0.05"] >= 0.95 for v in allv)),
                           "share_nme_le_0.05_all_frames": round(float(np.mean([v["share_nme_le_0.05"] for v in allv])), 4)
                           if allv else None}
    if "thermal" in parts:
        from dmsl_core.data.folder import read_manifest
        root = args.thermal_test
        recs = [r for r in read_manifest(root) if r.th]
        rng = np.random.default_rng(0)
        found, total, others, nmes = 0, 0, 0, []
        by_width = {"under_32px": [0, 0], "32px_and_over": [0, 0]}   # [found, total] by the face's box width
        for k in range(args.scenes):
            bg = cv2.GaussianBlur(rng.normal(0, 1, (512, 640)), (0, 0), 12)
            scene = (29515 + 150 * bg / bg.std()).astype(np.float64)
            placed, truths = [], []
            for rec in rng.choice(len(recs), 4, replace=False):
                r = recs[int(rec)]
                img = read_image(os.path.join(root, r.th)).astype(np.float64)
                pts = r.landmarks_for("th")
                box = boundary_from_points(pts)
                s = rng.uniform(28, 80) / box[2]
                small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
                h, w = small.shape[:2]
                if h >= 512 or w >= 640:
                    continue
                for _ in range(50):
                    y, x = int(rng.integers(0, 512 - h)), int(rng.integers(0, 640 - w))
                    if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in placed):
                        break
                else:
                    continue
                placed.append((x, y, w, h))
                scene[y:y + h, x:x + w] = small
                truths.append(pts * s + [x, y])
            frame = np.clip(scene, 0, 65535).astype(np.uint16)
            faces = pred.faces(frame, detector="auto", spectrum="th")
            used = set()
            for gt in truths:
                f, _ = match_annotated_face([f for f in faces if id(f) not in used], gt)
                total += 1
                bucket = by_width["under_32px" if boundary_from_points(gt)[2] < 32 else "32px_and_over"]
                bucket[1] += 1
                bucket[0] += f is not None
                if f is not None:
                    used.add(id(f))
                    found += 1
                    nmes.append(nme_per_image(f.landmarks, gt))
            others += len(faces) - len(used)
            if args.overlay_dir and k < 3:
                from dmsl_core.predictions import draw_faces
                cv2.imwrite(os.path.join(args.overlay_dir, f"thermal_scene_{k}.png"),
                            cv2.cvtColor(draw_faces(frame, [f.to_dict() for f in faces]), cv2.COLOR_RGB2BGR))
        r = summary(nmes, total)
        r.update({"scenes": args.scenes, "recall": round(found / max(1, total), 4),
                  "other_faces_per_scene": round(others / max(1, args.scenes), 3),
                  # the smallest face is 32 px wide in a 640x512 frame; the scenes go down to 28
                  "recall_by_width": {k: {"found": v[0], "faces": v[1], "recall": round(v[0] / max(1, v[1]), 4)}
                                      for k, v in by_width.items()}})
        rep["thermal_scenes"] = r
        print("thermal scenes:", r, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rep, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
