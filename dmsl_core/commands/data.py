"""Data sub-commands: ``synth`` (synthetic generator), ``import`` (dataset importers), ``split`` (10-fold protocol),
``annotate`` (automatic annotation), ``thermalize`` (visible faces -> synthetic thermal).

Each owner adds a ``_register_*`` helper and calls it from :func:`register`.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the ``dmsl`` parser."""
    _register_synth(subparsers)
    _register_import(subparsers)
    _register_split(subparsers)
    _register_annotate(subparsers)
    _register_thermalize(subparsers)


def _register_thermalize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("thermalize", help="turn visible face photos + 68 landmarks into plausible thermal images "
                                          "(same grid, same points)",
                       description="Convert a dataset folder's visible rows (or one image with --image/--pts) "
                                   "into registered visible + thermal pairs: a temperature map from the face's "
                                   "landmarks (hot inner canthi, cool nose, hair/clothes near ambient, a "
                                   "structured background) through a sensor model (blur, coarse sensor grid, NETD, "
                                   "fixed-pattern and stripe noise, vignetting). Writes th/ (16-bit centi-kelvin), "
                                   "th8/ (8-bit AGC view) and a manifest; the source is never modified.")
    p.add_argument("src", nargs="?", help="source dataset folder (manifest.csv with visible images + .pts)")
    p.add_argument("dst", nargs="?", help="destination dataset folder (created)")
    p.add_argument("--seed", type=int, default=0, help="seed: same seed, same files (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in DST")
    p.add_argument("--image", help="single image mode: a visible face image")
    p.add_argument("--pts", help="single image mode: its iBUG .pts file (68 points)")
    p.add_argument("--out", help="single image mode: the thermal image to write (.png; .npy writes float C)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8,
                   help="single image mode: 8 = AGC display view, 16 = centi-kelvin (default 8)")
    p.add_argument("--palette", choices=("white-hot", "black-hot"), default="white-hot",
                   help="single image mode, 8-bit: palette (default white-hot)")
    p.add_argument("--glasses", action="store_true", help="paint opaque (cold) glasses over the eyes")
    p.set_defaults(func=_run_thermalize)


def _run_thermalize(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..thermalize import ThermalOptions, thermalize_dataset, thermalize_face, to_u8, to_u16_ck

    opts = ThermalOptions(glasses=bool(args.glasses))
    if args.image or args.pts or args.out:
        if args.src or args.dst:
            raise ValueError("give either SRC DST or --image/--pts/--out, not both")
        if not (args.image and args.pts and args.out):
            raise ValueError("single image mode needs --image, --pts and --out")
        from ..data.formats import read_landmarks
        from ..data.imageio import read_image, write_image

        img = read_image(args.image)
        pts = read_landmarks(args.pts)
        if pts.shape != (68, 2):
            raise ValueError(f"{args.pts}: {pts.shape[0]} points, expected 68")
        tf = thermalize_face(img, pts, seed=args.seed, options=opts)
        out = Path(args.out)
        if out.suffix.lower() == ".npy":
            arr = tf.celsius
        elif args.bits == 16:
            arr = to_u16_ck(tf.celsius)
        else:
            arr = to_u8(tf.celsius, args.palette)
        write_image(out, arr)
        print(f"dmsl thermalize: wrote {out} ({img.shape[1]}x{img.shape[0]}, ambient {tf.ambient_c:.1f} C)")
        return 0
    if not (args.src and args.dst):
        raise ValueError("give SRC and DST dataset folders, or --image IMG --pts PTS --out OUT.png")
    tty = sys.stderr.isatty()

    def progress(done: int, n: int) -> None:
        if tty and (done == n or done % 20 == 0):
            print(f"\rdmsl thermalize: {done}/{n} rows", end="" if done < n else "\n", file=sys.stderr, flush=True)

    rep = thermalize_dataset(args.src, args.dst, seed=args.seed, overwrite=args.overwrite, progress=progress,
                             options=opts)
    print(f"dmsl thermalize: {rep.summary()}")
    return 0 if rep.converted else 1


def _register_annotate(sub: argparse._SubParsersAction) -> None:
    from ..annotate import CALIBRATION, DARK_MODES, REPORT, SOURCES

    p = sub.add_parser("annotate", help="fill in a dataset's landmark files: Dlib (or the model) on the visible "
                                        "image, transferred to the thermal one",
                       description="The paper's way of annotating paired images: Dlib's 68-point predictor on the "
                                   "visible image (or the DMSL model, or both with their disagreement recorded), "
                                   "the points transferred to the thermal image (identity for registered pairs, "
                                   "the rig's homography otherwise). Images without a face found are listed; each "
                                   "point's origin is kept in a .origin.json beside its .pts; an annotation that "
                                   "is replaced is kept as .orig.pts. Correct the result in the app "
                                   "(Tools > Annotate dataset).")
    p.add_argument("--data", required=True, help="dataset folder (manifest.csv)")
    p.add_argument("--source", default="dlib", choices=SOURCES,
                   help="points from Dlib on the visible image (default), the DMSL model, or both "
                        "(Dlib's, the model's where Dlib finds no face; their disagreement recorded)")
    p.add_argument("--dark", default="model", choices=DARK_MODES,
                   help="black 'lights off' visible images: the DMSL model on the thermal image (default), the "
                        "points of the nearest annotated pair of the same subject, or skip (listed either way)")
    p.add_argument("--overwrite", action="store_true",
                   help="re-annotate pairs that have an annotation (the old one is kept as .orig.pts)")
    p.add_argument("--calib", default=None, help="thermal->visible calibration JSON for unregistered pairs "
                                                 f"(default: DIR/{CALIBRATION} when present)")
    p.add_argument("--weights", default=None, help="DMSL model weights (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="device for the DMSL model (cpu, cuda, mps, auto)")
    p.add_argument("--report", default=None, help=f"report JSON (default DIR/{REPORT})")
    p.set_defaults(func=_run_annotate)


def _run_annotate(args: argparse.Namespace) -> int:
    """``dmsl annotate``: annotate the dataset folder, print the report."""
    import sys

    from ..annotate import annotate_dataset, format_report

    tty = sys.stderr.isatty()

    def progress(i: int, n: int, what: str) -> None:
        if tty:
            print(f"\rdmsl annotate: {i + 1}/{n}", end="" if i + 1 < n else "\n", file=sys.stderr, flush=True)

    rep = annotate_dataset(args.data, source=args.source, dark=args.dark, overwrite=args.overwrite,
                           calibration=args.calib, weights=args.weights, device=args.device,
                           progress=progress, report_path=args.report)
    print(format_report(rep))
    return 0


def _register_import(sub: argparse._SubParsersAction) -> None:
    from ..data.importers import list_presets

    p = sub.add_parser("import", help="import a paired visible/thermal face dataset into a DMSL dataset folder",
                       description="Convert a folder of face images (+ annotations) into a DMSL dataset folder "
                                   "(manifest.csv, images, .pts). The source is never modified.")
    p.add_argument("src", metavar="SRC", help="source folder (never modified)")
    p.add_argument("dst", metavar="DST", help="destination dataset folder (manifest.csv, images, .pts)")
    p.add_argument("--preset", default="paired", choices=list_presets(),
                   help="dataset layout (default: paired = generic visible/thermal folders)")
    p.add_argument("--pattern", help="regex on the path relative to SRC with named groups "
                                     "subject, variation, spectrum (implies --pair-by pattern)")
    p.add_argument("--pair-by", choices=("name", "order", "pattern"), help="how visible and thermal images pair")
    p.add_argument("--vis-dir", help="visible image folder (relative to SRC or absolute)")
    p.add_argument("--th-dir", help="thermal image folder (relative to SRC or absolute)")
    p.add_argument("--annotations", help="a dlib .xml or .csv holding the landmarks of many images")
    p.add_argument("--metadata", help="arl-vtf: the metadata.csv (default SRC/metadata.csv)")
    reg = p.add_mutually_exclusive_group()
    reg.add_argument("--registered", dest="registered", action="store_true", default=None,
                     help="pairs are pixel-registered (one landmark file serves both images)")
    reg.add_argument("--not-registered", dest="registered", action="store_false",
                     help="pairs are not registered (each image keeps its own landmarks)")
    p.add_argument("--th-u16-format", default="u16_raw", choices=("u16_raw", "u16_ck"),
                   help="meaning of 16-bit thermal images (default u16_raw: uncalibrated counts)")
    p.add_argument("--crop", type=float, default=3.0,
                   help="300w: crop side in units of the face box's larger side (default 3)")
    p.add_argument("--face-size", type=float, default=200.0,
                   help="300w: shrink each crop so the face box's larger side is at most this many pixels "
                        "(default 200; 0 keeps full resolution)")
    p.add_argument("--force", action="store_true", help="write into DST even if it already has a manifest.csv")
    p.set_defaults(func=_run_import)


def _import_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of the preset's importer from ``dmsl import``'s flags (flags it does not use are
    errors naming them)."""
    if args.preset == "300w":
        extra = [o for o, v in (("--pattern", args.pattern), ("--pair-by", args.pair_by), ("--vis-dir", args.vis_dir),
                                ("--th-dir", args.th_dir), ("--annotations", args.annotations),
                                ("--metadata", args.metadata), ("--registered", args.registered is not None)) if v]
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used by --preset 300w (a .pts beside each image)")
        return {"overwrite": args.force, "crop": args.crop, "face_size": args.face_size or None}
    kw: dict = {"overwrite": args.force, "th_u16_format": args.th_u16_format}
    if args.registered is not None:
        kw["registered"] = args.registered
    if args.annotations:
        kw["annotations"] = args.annotations
    if args.preset == "arl-vtf":
        extra = [o for o, v in (("--pattern", args.pattern), ("--pair-by", args.pair_by),
                                ("--vis-dir", args.vis_dir), ("--th-dir", args.th_dir)) if v]
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used by --preset arl-vtf (metadata.csv lists the images)")
        if args.metadata:
            kw["metadata"] = args.metadata
    else:
        if args.metadata:
            raise ValueError("--metadata is only for --preset arl-vtf")
        if args.pattern:
            kw["pattern"] = args.pattern
        pair_by = args.pair_by or ("pattern" if args.pattern else None)
        if pair_by:
            kw["pair_by"] = pair_by
        if args.vis_dir or args.th_dir:
            kw["vis_dir"], kw["th_dir"] = args.vis_dir, args.th_dir
    return kw


def _run_import(args: argparse.Namespace) -> int:
    """``dmsl import``: run the preset, print the summary; exit 1 when nothing was imported."""
    from ..data.importers import import_dataset

    report = import_dataset(args.preset, args.src, args.dst, **_import_options(args))
    print(report.summary())
    return 0 if report.n_records else 1


def _register_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="write the paper's subject-wise k-fold split (splits.json)",
                       description="Sort subjects by ID, cut them into N groups; fold k tests on group k, "
                                   "validates on groups k+1 and k+2, trains on the rest.")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (with manifest.csv)")
    p.add_argument("--folds", type=int, default=10, help="number of folds (default 10, as in the paper)")
    p.add_argument("--val-groups", type=int, default=2, help="validation groups per fold (default 2)")
    p.set_defaults(func=_run_split)


def _run_split(args: argparse.Namespace) -> int:
    """``dmsl split``: write DIR/splits.json and print the table."""
    from ..data.splits import dataset_subjects, format_folds, make_folds, write_splits

    subjects = dataset_subjects(args.data)
    folds = make_folds(subjects, args.folds, n_val_groups=args.val_groups)
    path = write_splits(args.data, folds, n_val_groups=args.val_groups)
    print(f"{len(subjects)} subjects, {len(folds)} folds -> {path}")
    print(format_folds(folds))
    return 0


def _register_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate a synthetic paired visible/thermal face dataset",
                       description="Render synthetic subjects x variations (Eurecom VIS-TH style: expressions, "
                                   "poses, occlusions, illumination incl. lights off) as registered visible + "
                                   "16-bit thermal pairs with exact 68-point landmarks, in the DMSL dataset "
                                   "folder layout (manifest.csv, vis/, th/, th8/, pts/).")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--subjects", type=int, default=50, help="number of subjects (default 50)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed: same seed, same files (default 0)")
    p.add_argument("--size", default="320x256", help="image size WxH (default 320x256)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (results do not depend on it)")
    p.add_argument("--variations", default="", help="comma-separated subset of the 21 variations (default all)")
    p.add_argument("--float", dest="write_float", action="store_true",
                   help="also write float32 temperatures (th_f32/*.npy)")
    p.set_defaults(func=_run_synth)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 320x256, got {text!r}") from None
    if w < 32 or h < 32:
        raise ValueError(f"--size must be at least 32x32, got {text!r}")
    return w, h


def _run_synth(args: argparse.Namespace) -> int:
    import sys

    from ..data.synth import VARIATIONS, generate_dataset

    size = _parse_size(args.size)
    names = [v.strip() for v in args.variations.split(",") if v.strip()] or list(VARIATIONS)
    tty = sys.stderr.isatty()

    def progress(done: int, n: int) -> None:
        if tty and (done == n or done % 10 == 0):
            print(f"\rdmsl synth: {done}/{n} pairs", end="" if done < n else "\n", file=sys.stderr, flush=True)

    summary = generate_dataset(args.out, subjects=args.subjects, seed=args.seed, size=size, jobs=args.jobs,
                               progress=progress, variations=names, write_float=args.write_float)
    print(f"dmsl synth: wrote {summary['pairs']} pairs ({args.subjects} subjects x {len(names)} variations, "
          f"{size[0]}x{size[1]}) to {summary['out_dir']} in {summary['seconds']:.1f} s "
          f"({summary['pairs_per_s']:.1f} pairs/s, jobs={summary['jobs']})")
    return 0
