"""Stream sub-commands: ``run`` (process a source headless), ``calibrate`` (rig homography), ``sources``."""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import sys
import time
from typing import Optional

from .common import add_inference_args

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
    add_inference_args(p)
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
    p.add_argument("--faces", default=None, choices=("every", "one"),
                   help="every: a face detector finds every face and tracking keeps their ids (CSV: one row per "
                        "face, JSONL: 'faces'; a frame with none says so); one: M_b's single face per frame, "
                        "the DMSL paper's pipeline (default every; one when --reuse-box is given)")
    p.add_argument("--detector", default="auto",
                   help="--faces every: the face detector (dmsl_core.detection; default auto)")
    p.add_argument("--detect-every", type=int, default=10, metavar="N",
                   help="--faces every: frames between detections while every track holds (default 10; "
                        "folders of stills detect on every image)")
    p.add_argument("--min-face", type=float, default=0.05,
                   help="--faces every: the smallest face to look for, a fraction of the frame's longer side "
                        "(default 0.05: 32 px in 640)")
    p.add_argument("--calib", default=None, help="rig calibration JSON (thermal->visible homography)")
    p.add_argument("--csv", default=None, help="write one row per frame (per face with --faces every) here")
    p.add_argument("--json", default=None, help="write one JSON object per frame here (JSON Lines)")
    p.add_argument("--video", default=None, help="write a side-by-side video with landmarks (.mp4 or .avi)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N processed frames")
    p.add_argument("--no-timings", action="store_true",
                   help="leave the per-frame timings out of the exports (ms_total empty, timings_ms {}): "
                        "reproducible files, e.g. to compare runs byte for byte")
    p.add_argument("--shard-warmup", type=int, default=None, metavar="N",
                   help="under torchrun: frames each rank processes before its share to settle the frame-to-frame "
                        "state (selector, smoothing, box reuse); results are byte-identical to one process either "
                        "way (rank 0 re-runs frames after a boundary whose state differs), enough warm-up means "
                        "no re-runs (default: 8 s of video at the source's frame rate, 30 frames for folders)")
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


def load_predictor(weights: Optional[str], device: str = "auto", tta: Optional[str] = None,
                   refine: Optional[str] = None):
    """:func:`dmsl_core.pipeline.load_predictor` for the command line: errors raise, a note (untrained
    weights) is printed as a warning."""
    from ..pipeline import load_predictor as load
    loaded = load(weights, device, tta, refine)
    if loaded.note:
        print(f"dmsl run: warning: {loaded.note}", file=sys.stderr)
    return loaded.predictor


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
    from ..export import ExportSet, open_exports
    from ..registration import Calibration
    from ..sources import open_source
    from ..runner import StreamRunner
    from ..stream import StreamProcessor

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.max_frames is not None and args.max_frames <= 0:
        raise ValueError("--max-frames must be positive")
    from ..distributed import env_world_size
    if env_world_size() > 1:
        return _run_sharded(args)
    H = Calibration.load(args.calib).H_th_to_vis if args.calib else None
    predictor = load_predictor(args.weights, args.device, args.tta, args.refine)
    if args.bench:
        return _bench(args, predictor, H)
    source = open_source(args.source, realtime=bool(args.realtime), homography=H)
    writers = []
    interrupts = _Interrupts()
    try:
        info = source.info
        cfg = _stream_config(args, info)
        smooth = cfg.smoothing
        processor = StreamProcessor(predictor, cfg)
        print(f"dmsl run: {info.get('kind')} source {args.source}: {info.get('pairing')}", file=sys.stderr)
        print(f"dmsl run: model {getattr(predictor, 'name', '?')} on {getattr(predictor, 'device', '?')}, mode "
              f"{args.mode}, smoothing {'on' if smooth else 'off'}, box reuse {'on' if args.reuse_box else 'off'}, "
              f"faces: {_faces_text(cfg)}",
              file=sys.stderr)
        wanted = {"csv": args.csv, "jsonl": args.json, "video": args.video}
        exports = open_exports(wanted, info) if any(wanted.values()) else ExportSet([])
        writers = exports.writers
        runner = StreamRunner(source, processor, max_frames=args.max_frames)
        progress = _Progress(args.quiet or not sys.stderr.isatty())
        error = ""
        for ev in runner.events():
            if ev.kind == "result" and ev.result is not None:
                if args.no_timings:
                    ev.result.timings_ms = {}
                with interrupts.whole():   # a frame reaches every export, or none
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
        for why in source.skipped:   # unreadable images were left out; the run went on
            print(f"dmsl run: skipped {why}", file=sys.stderr)
        if error:
            print(f"dmsl run: error: the stream ended early: {error}", file=sys.stderr)
            return 1
        if source.skipped:
            print(f"dmsl run: error: {len(source.skipped)} frame(s) skipped (unreadable, named above)", file=sys.stderr)
            return 1
        if not s["processed"]:
            print(f"dmsl run: error: {args.source} gave no frame", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: publish what was written (valid files)
        for w in writers:
            try:
                w.close()
            except Exception:  # noqa: BLE001
                w.abort()
        raise
    except BaseException:  # an error (full disk, an export that cannot be opened...): publish nothing
        for w in writers:   # cut off; rows already written stay in their .part files (a warning names them)
            w.abort()
        raise
    finally:
        interrupts.restore()
        source.close()


class _Interrupts:
    """SIGTERM raises KeyboardInterrupt (handled like Ctrl-C: exports published), and neither lands
    inside :meth:`whole` (one frame written to every export or to none: a signal there is held until
    the block ends). Main thread, POSIX only; elsewhere signals are left as they are."""

    def __init__(self) -> None:
        import signal
        import threading
        self._old: dict = {}
        self._inside = False
        self._pending = ""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
            return
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            if sig == signal.SIGINT and signal.getsignal(sig) is not signal.default_int_handler:
                continue  # someone else handles Ctrl-C: leave it
            self._old[sig] = signal.signal(sig, lambda signum, frame, name=name: self._on_signal(name))

    def _on_signal(self, name: str) -> None:
        if self._inside:
            self._pending = name
            return
        raise KeyboardInterrupt(name)

    @contextlib.contextmanager
    def whole(self):
        self._inside = True
        try:
            yield
        finally:
            self._inside = False
        if self._pending:
            raise KeyboardInterrupt(self._pending)

    def restore(self) -> None:
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _faces_text(cfg) -> str:
    if cfg.detector is None:
        return "one per frame (M_b)"
    return (f"every face (detector {cfg.detector if isinstance(cfg.detector, str) else 'custom'}, "
            + ("on every image)" if cfg.still_images else f"every {cfg.detect_every} frames + tracking)"))


def _stream_config(args: argparse.Namespace, info: dict):
    """The StreamConfig ``dmsl run`` uses for a source with ``info``."""
    from ..spectrum import SelectorConfig
    from ..sources.base import SourceInfo
    from ..stream import StreamConfig

    sel = SelectorConfig()
    if args.low is not None:
        sel.low = args.low
    if args.high is not None:
        sel.high = args.high
    if args.dwell is not None:
        sel.min_dwell_s = args.dwell
    sel.__post_init__()
    still = SourceInfo(info).still
    smooth = (not still) if args.smooth is None else bool(args.smooth)
    faces = getattr(args, "faces", None) or ("one" if args.reuse_box else "every")
    if faces == "every" and args.reuse_box:
        raise ValueError("--reuse-box is M_b's one-face box reuse; with --faces every tracking already "
                         "reuses each face's box (leave --reuse-box out, or use --faces one)")
    if getattr(args, "detect_every", 10) < 1:
        raise ValueError(f"--detect-every must be 1 or more frames, got {args.detect_every}")
    if not 0.0 < getattr(args, "min_face", 0.05) <= 1.0:
        raise ValueError(f"--min-face must be a fraction of the frame's longer side in (0, 1], got {args.min_face}")
    if faces == "every":
        from ..detection import list_detectors
        if args.detector not in list_detectors():
            raise ValueError(f"unknown face detector {args.detector!r} (known: {', '.join(list_detectors())})")
    return StreamConfig(mode=args.mode, selector=sel, smoothing=smooth, reuse_box=args.reuse_box,
                        detector=args.detector if faces == "every" else None,
                        detect_every=getattr(args, "detect_every", 10), min_face=getattr(args, "min_face", 0.05),
                        still_images=bool(still))


def _run_sharded(args: argparse.Namespace) -> int:
    """``dmsl run`` under torchrun: the frames of a recorded source sharded over the ranks, rank 0
    writing the same CSV / JSONL one process writes (:func:`dmsl_core.sharding.run_sharded`)."""
    from ..registration import Calibration
    from ..sharding import ONE_PROCESS, run_sharded

    if args.bench:
        raise ValueError(f"--bench measures one process; {ONE_PROCESS}")
    if args.video:
        raise ValueError(f"--video {args.video}: the overlay video is not written under torchrun; {ONE_PROCESS} "
                         f"or leave --video out")
    if args.realtime:
        raise ValueError(f"--realtime paces a live demo, which cannot be sharded; {ONE_PROCESS}")
    if args.shard_warmup is not None and args.shard_warmup < 0:
        raise ValueError(f"--shard-warmup must be 0 or more, got {args.shard_warmup}")
    warmup = {}

    def started(plan) -> None:
        warmup["frames"] = plan.warmup
        cfg = plan.config
        print(f"dmsl run: {plan.info.get('kind')} source {args.source}: {plan.frames} frames over "
              f"{plan.world_size} processes, warm-up {plan.warmup} frames; model "
              f"{getattr(plan.predictor, 'name', '?')}, mode {args.mode}, smoothing {'on' if cfg.smoothing else 'off'}, "
              f"box reuse {'on' if cfg.reuse_box else 'off'}, faces: {_faces_text(cfg)}", file=sys.stderr)

    def rerun(lo: int, last: int, converged: bool) -> None:
        print(f"dmsl run: shard at frame {lo}: the state after {warmup['frames']} warm-up "
              f"frames differed from one process's; rank 0 re-ran frames {lo}-{last} "
              f"({'then it agreed' if converged else 'to the end of the share'})", file=sys.stderr)

    H = Calibration.load(args.calib).H_th_to_vis if args.calib else None
    res = run_sharded(args.source, stream_config=lambda info: _stream_config(args, info),
                      load_predictor=lambda device: load_predictor(args.weights, device or args.device,
                                                                   args.tta, args.refine),
                      homography=H, csv_path=args.csv, json_path=args.json, max_frames=args.max_frames,
                      warmup=args.shard_warmup, no_timings=args.no_timings, device=args.device,
                      threads=args.threads, on_start=started, on_rerun=rerun)
    if res is None:    # not rank 0
        return 0
    print(f"dmsl run: {res.frames} frames on {res.world_size} processes in {res.seconds:.2f} s (slowest rank, "
          f"warm-up {res.warmup_frames} frames in all); rank 0 re-ran {res.rerun} frame(s) "
          f"at shard boundaries", file=sys.stderr)
    for path in res.paths:
        print(f"dmsl run: wrote {path}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace, predictor, H) -> int:
    import torch

    from ..sources import open_source
    from ..bench import benchmark_pipeline

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
          f"{getattr(predictor, 'device', '?')} ({(getattr(predictor, 'options', None) or {}).get('backend', 'torch')}, "
          f"tta {getattr(predictor, 'tta', 'none')}, refine {getattr(predictor, 'refine', 'mb')}), "
          f"{torch.get_num_threads()} CPU threads, smoothing "
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
            from ..export import jsonable
            print(json.dumps(jsonable(src.info), indent=2))
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
