"""``dmsl predict``: every face in images, each with its 68 landmarks and box
(:func:`dmsl_core.predictions.predict_files`)."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import add_inference_args


def _predict_inputs(items) -> list[Path]:
    """Files as given; a folder gives its image files (sorted, not recursive)."""
    from ..data.names import IMAGE_EXTENSIONS          # (here: the parser stays import-light)
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"{p}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            out.extend(found)
        else:
            out.append(p)
    return out


def cmd_predict(args) -> int:
    from ..pipeline import Predictor
    from ..predictions import predict_files, predictions_json, summary_line
    paths = _predict_inputs(args.images)
    detector = None
    if args.detector != "none":
        from ..detection import get_detector
        detector = get_detector(args.detector)          # an unknown name: one line listing the known ones
    pred = Predictor.from_weights(args.weights, device=args.device or "auto", tta=args.tta, refine=args.refine)
    to_json = args.json == "-"
    say = sys.stderr if to_json else sys.stdout

    def line(entry: dict) -> None:                      # one line per image; the JSON goes to the file
        print(summary_line(entry), file=sys.stderr if entry.get("error") else say)

    out = predict_files(pred, paths, detector=detector, spectrum=args.spectrum, pts_dir=args.pts_dir,
                        overlay_dir=args.overlay_dir, json_path=args.json, csv_path=args.csv, on_entry=line)
    if to_json:
        print(predictions_json(out["results"]))
    dest = f" -> {args.json}" if args.json and not to_json else ""
    print(f"{len(paths)} image(s), {out['n_faces']} face(s), {out['failed']} failed{dest}", file=say)
    return 1 if out["failed"] else 0


def register(sub) -> None:
    p = sub.add_parser("predict", help="every face in images (or none), each with 68 landmarks and its box",
                       description="Finds every face in each image with a face detector, then the 68 landmarks of "
                                   "each; prints one line per image (its faces' scores, or 'no face'). A file that "
                                   "cannot be read is named and counted; the others are still written (exit 1).")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--detector", default="auto",
                   help="face detector: auto (= yunet for visible images; dlib-hog-thermal with yunet beside it for "
                        "thermal ones), yunet, dlib-hog, dlib-hog-thermal, dlib-cnn, skimage-lbp, or none (no detector: "
                        "M_b's one face per image, even where there is none - the old behaviour)")
    p.add_argument("--spectrum", default="auto", choices=["auto", "vis", "th"],
                   help="the images' spectrum, recorded per face (auto: colour = vis, 16-bit/float = th)")
    p.add_argument("--json", default=None, help="write every image's faces here ('-': print the JSON)")
    p.add_argument("--csv", default=None, help="one row per face: image, face, score, box, B, x0 y0 .. x67 y67")
    p.add_argument("--pts-dir", default=None, help="write IMAGE_face<i>.pts (iBUG, 1-based) per face here")
    p.add_argument("--overlay-dir", default=None, help="write each image with its faces and scores drawn here")
    p.add_argument("--device", default=None)
    add_inference_args(p)
    p.set_defaults(func=cmd_predict)
