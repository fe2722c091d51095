"""Stream sub-commands: ``run`` (process a source headless), ``calibrate`` (rig homography), ``sources``."""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import time
from typing import Optional

log = logging.getLogger("dmsl.commands.streams")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``, ``calibrate`` and ``sources`` to the ``dmsl`` parser."""
    p = subparsers.add_parser(
        "run", help="run DMSL on a frame source (demo, videos, folders, cameras) and export the landmarks",
        description="Process a source headless: spectrum choice, landmarks per frame, optional exports. "
                    "See `dmsl sources` for the URI syntax. Exports are written to FILE.part and renamed "
                    "into place at the end (also on Ctrl-C); they are flushed at least every second.")
    p.add_argument("--source", default="demo", help="source URI (default: demo)")
    p.add_argument("--weights", default=None,
                   help="run folder, .safetensors file, shipped model name, or untrained:CONFIG "
                        "(random weights, for speed tests only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--mode", default="auto", choices=("auto", "visible", "thermal", "both"),
                   help="which spectrum to run: auto-switch, forced, or both (default auto)")
    p.add_argument("--low", type=float, default=None, help="switch to thermal below this visible mean (0-1)")
    p.add_argument("--high", type=float, default=None, help="switch back above this visible mean (0-1)")
    p.add_argument("--dwell", type=float, default=None, help="minimum seconds between switches")
    p.add_argument("--smooth", dest="smooth", action="store_true", default=None,
                   help="One Euro smoothing of landmarks (default: on for video and live sources)")
    p.add_argument("--no-smooth", dest="smooth", action="store_false")
    p.add_argument("--reuse-box", action="store_true",
                   help="place the face box from the previous frame's landmarks (skips M_b while tracking)")
    p.add_argument("--calib", default=None, help="rig calibration JSON (thermal->visible homography)")
    p.add_argument("--csv", default=None, help="write one row per frame here")
    p.add_argument("--json", default=None, help="write one JSON object per frame here (JSON Lines)")
    p.add_argument("--video", default=None, help="write a side-by-side video with landmarks (.mp4 or .avi)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N processed frames")
    p.add_argument("--realtime", action="store_true",
                   help="pace the demo at its frame rate (default: as fast as possible)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--bench", action="store_true",
                   help="measure instead of exporting: decode --max-frames frames (default 100) first, then time the "
                        "pipeline alone for single / both spectra, with and without face-box reuse (fps and NME); "
                        "--json then writes these figures")
    p.add_argument("--repeat", type=int, default=3, help="--bench: runs per configuration, the fastest counts")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "calibrate", help="compute a rig's thermal->visible homography (calibration JSON)",
        description="From point pairs (CSV vis_x,vis_y,th_x,th_y or JSON) or from a calibration target "
                    "(checkerboard:COLSxROWS inner corners, or aruco[:DICT]) seen in both spectra - "
                    "image pairs or frames of a source. Thermal polarity is tried both ways. "
                    "Prints the reprojection error.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--points", default=None, help="point-pair file")
    g.add_argument("--source", default=None, help="source URI whose frames show the target")
    g.add_argument("--vis", nargs="+", default=None, help="visible image(s) of the target (with --th)")
    p.add_argument("--th", nargs="+", default=None, help="thermal image(s), same order as --vis")
    p.add_argument("--target", default="checkerboard:9x6", help="checkerboard:COLSxROWS or aruco[:DICT_4X4_50]")
    p.add_argument("--frames", type=int, default=200, help="frames of --source to scan (default 200)")
    p.add_argument("--every", type=int, default=5, help="use every N-th frame of --source (default 5)")
    p.add_argument("--no-ransac", action="store_true", help="plain least squares (keep every point)")
    p.add_argument("--rig", default="", help="a name for the rig")
    p.add_argument("--out", "-o", required=True, help="calibration JSON to write")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("sources", help="list source URI schemes, camera backends and cameras; probe a source")
    p.add_argument("--probe", default=None, metavar="URI", help="open this source, print its info and first frame")
    p.set_defaults(func=cmd_sources)


def load_predictor(weights: Optional[str], device: str = "auto"):
    """A Predictor for ``--weights`` (``untrained:CONFIG`` gives random weights)."""
    from ..pipeline import Predictor
    if weights and weights.startswith("untrained:"):
        name = weights.split(":", 1)[1] or "dmsl-compact"
        print(f"dmsl run: warning: untrained {name} weights - landmarks are meaningless (speed tests only)",
              file=sys.stderr)
        return Predictor.untrained(name, device="cpu" if device == "auto" else device)
    pred = Predictor.from_weights(weights, device=device)
    pred.apply_measured_speed_option()
    return pred


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0

    def __call__(self, res, stats) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < 1.0:
            return
        self.last = now
        print(f"\r  frame {res.index:6d}  {stats.fps:6.1f} fps  {res.chosen:3s}  dropped {stats.dropped}  "
              f"switches {stats.switches}   ", end="", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from ..export import CSVExporter, ExportSet, JSONLExporter, VideoExporter
    from ..registration import Calibration
    from ..sources import open_source
    from ..spectrum import SelectorConfig
    from ..stream import StreamConfig, StreamProcessor, StreamRunner

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.max_frames is not None and args.max_frames <= 0:
        raise ValueError("--max-frames must be positive")
    H = Calibration.load(args.calib).H_th_to_vis if args.calib else None
    predictor = load_predictor(args.weights, args.device)
    if args.bench:
        return _bench(args, predictor, H)
    source = open_source(args.source, realtime=bool(args.realtime), homography=H)
    writers = []
    try:
        info = source.info
        sel = SelectorConfig()
        if args.low is not None:
            sel.low = args.low
        if args.high is not None:
            sel.high = args.high
        if args.dwell is not None:
            sel.min_dwell_s = args.dwell
        sel.__post_init__()
        still = info.get("kind") in ("dataset", "folders") or (info.get("frames") == 1)
        smooth = (not still) if args.smooth is None else bool(args.smooth)
        cfg = StreamConfig(mode=args.mode, selector=sel, smoothing=smooth, reuse_box=args.reuse_box)
        processor = StreamProcessor(predictor, cfg)
        print(f"dmsl run: {info.get('kind')} source {args.source}: {info.get('pairing')}", file=sys.stderr)
        print(f"dmsl run: model {getattr(predictor, 'name', '?')} on {getattr(predictor, 'device', '?')}, mode "
              f"{args.mode}, smoothing {'on' if smooth else 'off'}, box reuse {'on' if args.reuse_box else 'off'}",
              file=sys.stderr)
        if args.csv:
            writers.append(CSVExporter(args.csv))
        if args.json:
            writers.append(JSONLExporter(args.json, info=_jsonable(info)))
        if args.video:
            writers.append(VideoExporter(args.video, fps=info.get("fps") or 25.0))
        exports = ExportSet(writers)
        runner = StreamRunner(source, processor, max_frames=args.max_frames)
        progress = _Progress(args.quiet or not sys.stderr.isatty())
        error = ""
        for ev in runner.events():
            if ev.kind == "result" and ev.result is not None:
                exports.write(ev.result)
                progress(ev.result, runner.stats)
            elif ev.kind == "error":
                error = ev.error
        stats = runner.stats
        if not progress.quiet:
            print(file=sys.stderr)
        paths = exports.close()
        writers = []
        s = stats.to_dict()
        print(f"dmsl run: {s['processed']} frames in {s['elapsed_s']:.2f} s = {s['fps']:.2f} fps end to end, "
              f"{s['pipeline_fps']:.2f} fps pipeline alone; "
              f"dropped {s['dropped']}, spectrum switches {s['switches']}, box reused on {s['box_reused_frames']}",
              file=sys.stderr)
        for p in paths:
            print(f"dmsl run: wrote {p}", file=sys.stderr)
        if error:
            print(f"dmsl run: error: the stream ended early: {error}", file=sys.stderr)
            return 1
        return 0
    finally:
        for w in writers:  # interrupted: keep what was written (renamed into place)
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass
        source.close()


def _bench(args: argparse.Namespace, predictor, H) -> int:
    import torch

    from ..sources import open_source
    from ..stream import benchmark_pipeline

    n = args.max_frames or 100
    with open_source(args.source, realtime=False, homography=H) as src:
        pairs = []
        for p in src:
            pairs.append(p)
            if len(pairs) >= n:
                break
    if not pairs:
        raise ValueError(f"{args.source}: no frames to measure")
    smooth = True if args.smooth is None else bool(args.smooth)
    print(f"dmsl run --bench: {len(pairs)} frames of {args.source}, model {getattr(predictor, 'name', '?')} on "
          f"{getattr(predictor, 'device', '?')}, {torch.get_num_threads()} CPU threads, smoothing "
          f"{'on' if smooth else 'off'}, best of {args.repeat}", file=sys.stderr)
    res = benchmark_pipeline(predictor, pairs, repeat=args.repeat, smoothing=smooth)
    print(f"{'configuration':14s} {'fps':>7s} {'ms/frame':>9s} {'reused':>7s} {'NME chosen':>11s}")
    for name, r in res.items():
        nme = r.get("nme_chosen")
        print(f"{name:14s} {r['fps']:7.2f} {r['ms_per_frame']:9.2f} {r['reused_frac']:7.0%} "
              f"{'-' if nme is None else f'{nme:.4f}':>11s}")
    if args.json:
        from ..data.imageio import atomic_write_text
        atomic_write_text(args.json, json.dumps({"source": args.source, "frames": len(pairs),
                                                 "threads": torch.get_num_threads(), "results": res}, indent=2))
    return 0


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..data.imageio import read_image
    from ..registration import calibrate_from_images, calibrate_from_points, read_point_pairs
    from ..sources import open_source

    ransac = not args.no_ransac
    if args.points:
        v, t = read_point_pairs(args.points)
        cal = calibrate_from_points(v, t, method=f"points ({os.path.basename(args.points)})", ransac=ransac, rig=args.rig)
        used = 1
    elif args.vis:
        if not args.th or len(args.th) != len(args.vis):
            raise ValueError("--vis and --th need the same number of images")
        pairs = [(read_image(a), read_image(b)) for a, b in zip(args.vis, args.th)]
        cal, used = calibrate_from_images(pairs, args.target, rig=args.rig, ransac=ransac)
    else:
        with open_source(args.source, realtime=False) as src:
            def frames():
                for k, pair in enumerate(src):
                    if k >= args.frames:
                        break
                    if k % max(1, args.every) == 0 and pair.vis is not None and pair.th is not None:
                        yield pair.vis, (pair.th_celsius if pair.th_celsius is not None else pair.th)
            cal, used = calibrate_from_images(frames(), args.target, rig=args.rig, ransac=ransac)
    cal.save(args.out)
    print(f"dmsl calibrate: {cal.summary()}; {used} image pair(s) used -> {args.out}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from .. import sources as S

    if args.probe:
        with S.open_source(args.probe, realtime=False) as src:
            print(json.dumps(_jsonable(src.info), indent=2))
            for pair in src:
                def desc(a):
                    return "none" if a is None else f"{a.dtype} {tuple(a.shape)}"
                print(f"first frame: t={pair.t:.3f} vis={desc(pair.vis)} th={desc(pair.th)} "
                      f"celsius={desc(pair.th_celsius)} registered={pair.registered} "
                      f"homography={'yes' if pair.homography_th_to_vis is not None else 'no'}")
                break
            else:
                print("the source gave no frame")
        return 0
    print("Source URIs (dmsl run --source URI):")
    for k, v in S.SCHEMES.items():
        print(f"  {k + ':':8s} {v}")
    print("  PATH     a bare path: folder, video or image (guessed)")
    print("\nFull syntax: python -c 'import dmsl_core.sources as s; print(s.__doc__)'")
    print(f"\nCamera backends: {', '.join(S.list_backends())}")
    devs = sorted(glob.glob("/dev/video*"))
    print(f"Video devices: {', '.join(devs) if devs else 'none found'}")
    return 0
