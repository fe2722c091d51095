"""Data sub-commands: ``synth`` (synthetic generator), ``import`` (dataset importers), ``split`` (10-fold protocol),
``annotate`` (automatic annotation).

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


def _register_annotate(sub: argparse._SubParsersAction) -> None:
    from ..annotate import add_annotate_arguments, run_annotate_command

    p = sub.add_parser("annotate", help="fill in a dataset's landmark files: Dlib (or the model) on the visible "
                                        "image, transferred to the thermal one",
                       description="The paper's way of annotating paired images: Dlib's 68-point predictor on the "
                                   "visible image (or the DMSL model, or both with their disagreement recorded), "
                                   "the points transferred to the thermal image (identity for registered pairs, "
                                   "the rig's homography otherwise). Images without a face found are listed; each "
                                   "point's origin is kept in a .origin.json beside its .pts; an annotation that "
                                   "is replaced is kept as .orig.pts. Correct the result in the app "
                                   "(Tools > Annotate dataset).")
    add_annotate_arguments(p)
    p.set_defaults(func=run_annotate_command)


def _register_import(sub: argparse._SubParsersAction) -> None:
    from ..data.importers import add_import_arguments, run_import_command

    p = sub.add_parser("import", help="import a paired visible/thermal face dataset into a DMSL dataset folder",
                       description="Convert a folder of face images (+ annotations) into a DMSL dataset folder "
                                   "(manifest.csv, images, .pts). The source is never modified.")
    add_import_arguments(p)
    p.set_defaults(func=run_import_command)


def _register_split(sub: argparse._SubParsersAction) -> None:
    from ..data.splits import add_split_arguments, run_split_command

    p = sub.add_parser("split", help="write the paper's subject-wise k-fold split (splits.json)",
                       description="Sort subjects by ID, cut them into N groups; fold k tests on group k, "
                                   "validates on groups k+1 and k+2, trains on the rest.")
    add_split_arguments(p)
    p.set_defaults(func=run_split_command)


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
