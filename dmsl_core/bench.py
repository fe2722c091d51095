"""``dmsl bench``: DMSL pipeline speed for every configuration and shipped model, Dlib's detector +
predictor on the same frames, the ratio DMSL / Dlib, peak memory, and the speed options.

Every figure is measured in this process, on the same frames (rendered by the built-in demo: real
faces for Dlib to find), so the ratios compare like with like. Configurations are measured with
random weights (speed does not depend on them); shipped models with their own. Repeats are
*interleaved*: round r times every figure of a model (forwards and pipeline, each batch) once, and
every speed option once, so a slow minute of a shared machine touches all of them alike. Each
figure is the median of its repeats, with its spread (min, quartiles, max, n) beside it.

The *contention* rows run the single-frame pipeline in alternating blocks quiet and with one busy
core beside it (a busy-looping Python process that bench starts and kills, also on an error or
Ctrl-C, and that ends by itself if bench is killed); ``ratio`` = busy / quiet time per frame, the
median over the block pairs. A collapse under load (issue 18: plain torch x40) shows as a number.

JSON (``--json``), schema ``dmsl-bench/3`` (``/2`` plus ``spread``, ``fps_spread``, ``threading``,
``contention`` and ``targets.busy_core``; the figures /2 had keep their place and meaning)::

    {"schema", "created", "machine": {...}, "threads", "threading": {dmsl_core.threads.summary()},
     "frames": {"source", "n", "size"},
     "pipeline": [{"model", "kind" (config|shipped), "config", "head", "tta", "refine", "device",
                   "params_boundary",
                   "params_landmark", "ms_per_image": {"1", "8"} (M_l forward), "fps": {"1", "8"}
                   (whole pipeline per frame), "spread": {"ms_per_image": {b: SPREAD}, "fps": {b: SPREAD}},
                   "ratio_vs_dlib": {"1", "8"}, "peak_rss_mb", "peak_rss_over_start_mb", "peak_cuda_mb"}],
     "dlib": {"available", "reason", "fps", "ms_per_frame", "detected", "frames", "upsample", "peak_rss_mb"},
     "options": [{"model", "device", "option", "threads", "fps", "fps_spread": SPREAD, "ratio", "max_diff_px",
                  "error"[, "changes_results"]}],
     "contention": [{"model", "option", "device", "threads", "frames", "rounds", "quiet_ms": SPREAD,
                     "busy_ms": SPREAD, "ratio", "ratio_spread": SPREAD,
                     "blocks": {"quiet_ms": [...], "busy_ms": [...]} (each block's median), "beside"}],
     "detection": [{"what", "ms_per_frame", "ms_spread": SPREAD, "fps", "faces"}] (the face detector
                   stage: detectors alone, detection + landmarks + confidence, a video through the tracker),
     "best_option": {"model", "option", "fps"},
     "targets": {"realtime_fps": {...}, "faster_than_dlib": {...}, "busy_core": {"target_ratio": 2.0, ...}}}

    SPREAD = {"median", "min", "q1", "q3", "max", "n"}

The shipped model runs with its card's test-time augmentation and box refinement (``inference.tta``,
``inference.refine``); option rows ``tta=<other>`` and ``refine=<other>`` (``changes_results``: true,
never chosen as the best speed option) show the speed of the other settings. Targets are reported,
never asserted: the shipped default at 30 frames per second or more for one spectrum on the
benchmark's threads, at least as fast as Dlib's detector + predictor, and with one busy core beside
it within 2x of its quiet time per frame.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .device import describe_device
from .models import create_models, get_config, list_configs
from .pipeline import OPTION_SETS  # the Predictor's speed options, which bench measures

SCHEMA = "dmsl-bench/3"
TARGET_FPS = 30.0


def spread(values: Sequence[float], nd: int = 3) -> dict:
    """Median and spread of repeated measurements: min, quartiles, max, n."""
    v = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": round(float(med), nd), "min": round(float(v.min()), nd), "q1": round(float(q1), nd),
            "q3": round(float(q3), nd), "max": round(float(v.max()), nd), "n": int(v.size)}


def interleaved(fns: dict, repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of every function, measured in turn: round r runs each once (the order
    rotates every round), so a slow minute of the machine touches every figure alike."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, repeat)):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t = time.perf_counter()
            fns[name]()
            out[name].append(time.perf_counter() - t)
    return out


def _time(fn, repeat: int, warmup: int = 2) -> float:
    return float(np.median(interleaved({"f": fn}, repeat, warmup)["f"]))


# ---- a busy core beside the pipeline -------------------------------------------------------------
#: the busy process: a pure-Python loop (one core), which also ends by itself when its parent is gone
#: (checked about every 50 ms), so a killed bench never leaves it behind
BUSY_CODE = ("import os, sys\n# dmsl-bench busy core for {pid}\n"
             "while True:\n    for _ in range(1000000): pass\n    if os.getppid() != {pid}: sys.exit(0)\n")
#: pids of every busy process started in this process (the tests check each is gone)
BUSY_STARTED: list[int] = []


@contextlib.contextmanager
def busy_core(on: bool = True, settle_s: float = 0.3):
    """One busy-looping process beside this one for the block's duration; killed and reaped on the
    way out, whatever ends the block (an error, Ctrl-C). ``on=False``: nothing (a quiet block)."""
    if not on:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE.format(pid=os.getpid())], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    BUSY_STARTED.append(proc.pid)
    try:
        time.sleep(settle_s)
        yield proc
    finally:
        proc.kill()
        proc.wait()


# ---- memory ------------------------------------------------------------------------------------
def _rss_mb() -> Optional[float]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> Optional[float]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):
        return None


class _PeakMemory:
    """Peak resident memory (and CUDA allocations) over a block of work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self):
        self.resettable = _reset_peak()
        self.start = _rss_mb()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        self.peak = _peak_mb()
        self.cuda = (torch.cuda.max_memory_allocated(self.device) / 2 ** 20) if self.device.type == "cuda" else None
        return False

    def record(self) -> dict:
        over = (self.peak - self.start) if (self.resettable and self.peak is not None and self.start is not None) else None
        return {"peak_rss_mb": None if self.peak is None else round(self.peak, 1),
                "peak_rss_over_start_mb": None if over is None else round(max(over, 0.0), 1),
                "peak_cuda_mb": None if self.cuda is None else round(self.cuda, 1)}


# ---- frames ------------------------------------------------------------------------------------
def bench_frames(n: int = 8, size: tuple[int, int] = (640, 512), seed: int = 0) -> list[np.ndarray]:
    """``n`` visible frames of the built-in demo (a face turning, lights on), spread over its script."""
    from .sources.demo import DemoScene
    scene = DemoScene(size=size, seed=seed)
    # the first 30% of the cycle has the lights fully on (sources/demo.py: light_level)
    idx = np.linspace(0, int(0.28 * scene.cycle * scene.fps), n).astype(int)
    return [scene.pair(int(i)).vis for i in idx]


def detection_entries(pred, frames_vis: Sequence[np.ndarray], frames_th: Sequence[np.ndarray],
                      video_vis: Sequence[np.ndarray], repeat: int, printer: Callable[[str], None] = print,
                      video_th: Sequence[np.ndarray] = ()) -> list[dict]:
    """The face detector stage's figures on the benchmark's frames (issue "Find every face"): each
    detector alone (``auto``'s visible and thermal backends), detection + M_b's refinement + M_l +
    the landmark confidence per frame (:meth:`Predictor.faces`), the quality network alone for one
    face, and a video through the tracker (``StreamProcessor`` with the detector, detection every
    10 frames) - the path ``dmsl run`` and the app take. One row each: ``what``, ``ms_per_frame``
    (median and spread), ``fps``, ``faces`` (found per frame, the median)."""
    from .detection import get_detector
    from .frames import FramePair
    from .stream import StreamConfig, StreamProcessor
    rows: list[dict] = []
    fns: dict = {}
    found: dict = {}

    def per_frame(label, fn, frames):
        found[label] = [len(fn(f)) for f in frames]
        fns[label] = lambda: [fn(f) for f in frames]
    from .detection import AUTO, AUTO_THERMAL, detector_available
    vis_det, th_det = get_detector(AUTO), get_detector(AUTO_THERMAL if detector_available(AUTO_THERMAL) else AUTO)
    per_frame(f"detector {vis_det.name} alone (visible)", lambda f: vis_det(f, "vis"), frames_vis)
    if AUTO != "dlib-hog" and detector_available("dlib-hog"):     # Dlib's detector on the same frames
        hog = get_detector("dlib-hog")
        per_frame("detector dlib-hog alone (visible; Dlib's HOG, for comparison)", lambda f: hog(f, "vis"), frames_vis)
    per_frame(f"detector {th_det.name} alone (thermal)", lambda f: th_det(f, "th"), frames_th)
    per_frame("faces: detector + M_b + M_l + confidence (visible)",
              lambda f: pred.faces(f, detector="auto", spectrum="vis"), frames_vis)
    per_frame("faces: detector + M_b + M_l + confidence (thermal)",
              lambda f: pred.faces(f, detector="auto", spectrum="th"), frames_th)
    # as dmsl run and the app run it: with the card's measured speed option (a second copy of the model)
    fast, option = None, "torch (default)"
    if getattr(pred, "source", "") not in ("", "untrained"):
        from .pipeline import Predictor
        fast = Predictor.from_weights(pred.source, device=pred.device)
        option = fast.apply_measured_speed_option()
    if fast is not None and option != "torch (default)":
        per_frame(f"faces: detector + M_b + M_l + confidence (visible, {option}: the card's option)",
                  lambda f: fast.faces(f, detector="auto", spectrum="vis"), frames_vis)
    if pred.quality is not None:
        from .models.quality import N_VEC, Q
        one = (np.zeros((1, 2, Q, Q), np.float32), np.zeros((1, N_VEC), np.float32))
        found["landmark confidence network alone (one face)"] = [1]
        fns["landmark confidence network alone (one face)"] = lambda: [pred.quality(*one) for _ in frames_vis]
    times = interleaved(fns, repeat, warmup=1)
    for label, ts in times.items():
        n = len(frames_vis) if "visible" in label or "network" in label else len(frames_th)
        ms = [t / n * 1000 for t in ts]
        sp = spread(ms, 3)
        rows.append({"what": label, "ms_per_frame": sp["median"], "ms_spread": sp,
                     "fps": round(1000 / sp["median"], 2) if sp["median"] > 0 else None,
                     "faces": float(np.median(found[label]))})

    # the same video through the tracker in each spectrum (thermal: its pair, 16-bit, the thermal
    # detector every 10th frame and the landmarks from the tracks between)
    videos = [("visible", "vis", video_vis)] + ([("thermal", "th", video_th)] if len(video_th) else [])
    for mode, spec, frames in videos:
        def video(mode=mode, spec=spec, frames=frames) -> list:
            proc = StreamProcessor(pred, StreamConfig(mode=mode, detector="auto", detect_every=10))
            return [proc.process(FramePair(vis=f if spec == "vis" else None, th=f if spec == "th" else None,
                                           t=k / 25.0, index=k)) for k, f in enumerate(frames)]
        res = video()
        ts = interleaved({"v": video}, max(2, repeat // 3), warmup=0)["v"]
        ms = [t / len(frames) * 1000 for t in ts]
        sp = spread(ms, 3)
        rows.append({"what": f"video through the tracker, detection every 10 frames ({mode}, {len(frames)} frames)",
                     "ms_per_frame": sp["median"], "ms_spread": sp, "fps": round(1000 / sp["median"], 2),
                     "faces": float(np.median([len(r.faces.get(spec) or []) for r in res]))})
    for r in rows:
        printer(f"  {r['what']:<78} {r['ms_per_frame']:8.2f} ms/frame {r['fps']:8.2f} fps  faces {r['faces']:.0f}")
    return rows


def available_devices() -> list[str]:
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


# ---- the parts ---------------------------------------------------------------------------------
def _pipeline_entry(pred, model_name: str, kind: str, frames, batches, repeat, device) -> dict:
    cfg = pred.config
    S = cfg.input_size
    entry = {"model": model_name, "kind": kind, "config": cfg.name, "head": cfg.head, "tta": pred.tta,
             "refine": pred.refine, "device": str(device),
             "params_boundary": int(sum(p.numel() for p in pred.boundary.parameters())),
             "params_landmark": int(sum(p.numel() for p in pred.landmark.parameters())),
             "ms_per_image": {}, "fps": {}}
    fns = {}
    per_call = {}
    for b in batches:
        x = torch.rand(b, 1, S, S, device=device, dtype=pred.dtype)

        def fwd(x=x):
            with torch.inference_mode():
                pred.landmark(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        fns[("fwd", b)] = fwd
        per_call[("fwd", b)] = b
    for b in batches:
        batch = [frames[i % len(frames)] for i in range(b)]
        rounds = max(1, len(frames) // b)

        def run(b=b, batch=batch, rounds=rounds):
            for r in range(rounds):
                pred.predict(batch if b > 1 else [frames[r % len(frames)]])
        fns[("run", b)] = run
        per_call[("run", b)] = b * rounds
    with _PeakMemory(device) as mem:
        secs = interleaved(fns, max(3, repeat))
    entry["spread"] = {"ms_per_image": {}, "fps": {}}
    for (kind, b), ts in secs.items():
        n = per_call[(kind, b)]
        if kind == "fwd":
            sp = spread([t / n * 1000 for t in ts])
            entry["ms_per_image"][str(b)], entry["spread"]["ms_per_image"][str(b)] = sp["median"], sp
        else:
            sp = spread([n / t for t in ts], 2)
            entry["fps"][str(b)], entry["spread"]["fps"][str(b)] = sp["median"], sp
    entry.update(mem.record())
    return entry


def _dlib_entry(frames, repeat: int, upsample: int = 1) -> dict:
    from .baselines import DlibBaseline, dlib_available
    ok, why = dlib_available()
    if not ok:
        return {"available": False, "reason": why}
    dl = DlibBaseline(upsample=upsample)
    detected = sum(r.landmarks is not None for r in dl.predict(frames))
    with _PeakMemory(torch.device("cpu")) as mem:
        sec = _time(lambda: [dl.predict([f]) for f in frames], max(3, repeat // 2), warmup=1)
    return {"available": True, "reason": "", "fps": round(len(frames) / sec, 2),
            "ms_per_frame": round(sec / len(frames) * 1000, 3), "detected": int(detected), "frames": len(frames),
            "upsample": upsample, "what": "HOG frontal face detector + 68-point shape predictor, one frame at a time",
            **{k: v for k, v in mem.record().items() if k != "peak_cuda_mb"}}




def _options_entries(load, model_name: str, frames, repeat: int, threads_list: Sequence[int], device,
                     options: Sequence[str], printer) -> list[dict]:
    """The shipped model's single-frame pipeline under each speed option, with the largest landmark
    difference from the baseline option (pixels), so an option that changes results shows it. Every
    row's repeats are interleaved with the others' (:func:`interleaved`)."""
    from .pipeline import Predictor
    prev = torch.get_num_threads()
    rows: list[dict] = []          # in report order; "_pred" / "_threads" are the candidates' own
    ref: dict = {}                 # the first row that ran: its landmarks and test-time settings

    def add(label: str, make, changes_results: bool = False, threads: Optional[int] = None) -> None:
        entry = {"model": model_name, "device": str(device), "option": label, "threads": threads or prev}
        try:
            if threads:
                torch.set_num_threads(threads)
            pred = make()
            lms = [p.landmarks for p in pred.predict(frames)]
        except Exception as exc:  # noqa: BLE001 - an option that is not available here is reported, not fatal
            entry.update(fps=None, ratio=None, max_diff_px=None, error=f"{type(exc).__name__}: {exc}"[:300])
            rows.append(entry)
            printer(f"  option {label:<40} unavailable: {entry['error']}")
            return
        finally:
            torch.set_num_threads(prev)
        if not ref:
            ref.update(lms=lms, tta=pred.tta, refine=pred.refine, label=label)
        diff = None if threads else max(float(np.abs(a - b).max()) for a, b in zip(lms, ref["lms"]))
        entry.update(max_diff_px=None if diff is None else round(diff, 4), error=None, _pred=pred, _threads=threads)
        if changes_results:
            entry["changes_results"] = True
        rows.append(entry)

    for opt_name in options:
        add(opt_name, lambda opts=OPTION_SETS[opt_name]: load().optimise(**opts))
    # test-time augmentation and box refinement change the results by design (so they are never a
    # "speed option"): the rows say what the other settings cost or save against the model card's own
    if ref:
        for mode in [m for m in Predictor.TTA_MODES if m != ref["tta"]]:
            add(f"tta={mode}", lambda mode=mode: load().set_tta(mode), changes_results=True)
        for mode in [m for m in Predictor.REFINE_MODES if m != ref["refine"]]:
            add(f"refine={mode}", lambda mode=mode: load().set_refine(mode), changes_results=True)
        for n in threads_list:
            if n != prev:
                add(f"threads={n}", load, threads=n)
    live = [e for e in rows if "_pred" in e]

    def timed(e):
        pred, n = e["_pred"], e["_threads"]

        def one_pass():
            if n:
                torch.set_num_threads(n)
            try:
                for f in frames:
                    pred.predict([f])
            finally:
                torch.set_num_threads(prev)
        return one_pass
    secs = interleaved({e["option"]: timed(e) for e in live}, max(3, repeat // 2)) if live else {}
    base_fps = None
    for e in live:
        sp = spread([len(frames) / t for t in secs[e["option"]]], 2)
        e["fps"], e["fps_spread"] = sp["median"], sp
        base_fps = base_fps or e["fps"]   # the first row (the baseline option) is the reference
        e["ratio"] = round(e["fps"] / base_fps, 3)
        del e["_pred"], e["_threads"]
        label = e["option"] + (" (changes the results)" if e.get("changes_results") else "")
        diff = "" if e["max_diff_px"] is None else f"  max diff {e['max_diff_px']:.4f} px"
        printer(f"  option {label:<40} {e['fps']:7.2f} fps [{sp['min']:.1f}-{sp['max']:.1f}]  "
                f"x{e['ratio']:5.2f}{diff}")
    return rows


CONTENTION_TARGET = 2.0


def contention_entry(pred, label: str, frames, rounds: int, device) -> dict:
    """The single-frame pipeline's time per frame quiet and with one busy core beside it
    (:func:`busy_core`, started and killed by this function), in alternating blocks in this
    process; ``ratio`` is the median of the blocks' busy / quiet ratios."""
    quiet: list[float] = []
    busy: list[float] = []
    pred.predict([frames[0]])
    for r in range(max(1, rounds)):
        for cond in (("quiet", "busy") if r % 2 == 0 else ("busy", "quiet")):
            ts = []
            with busy_core(cond == "busy"):
                for f in frames:
                    t = time.perf_counter()
                    pred.predict([f])
                    ts.append(time.perf_counter() - t)
            (busy if cond == "busy" else quiet).append(float(np.median(ts)) * 1000)
    ratios = [b / q for q, b in zip(quiet, busy)]
    return {"model": pred.name, "option": label, "device": str(device), "threads": torch.get_num_threads(),
            "frames": len(frames), "rounds": max(1, rounds), "quiet_ms": spread(quiet, 2), "busy_ms": spread(busy, 2),
            "ratio": round(float(np.median(ratios)), 3), "ratio_spread": spread(ratios, 3),
            "blocks": {"quiet_ms": [round(v, 3) for v in quiet], "busy_ms": [round(v, 3) for v in busy]},
            "beside": "one busy-looping Python process (python -c 'while True: pass'), started and killed by bench"}


def run_bench(configs: Optional[Sequence[str]] = None, batches: Sequence[int] = (1, 8), threads: Optional[int] = None,
              repeat: int = 10, device: Optional[str] = None, image_size: str = "640x512",
              printer: Callable[[str], None] = print, shipped: Optional[Sequence[str]] = None,
              frames: int = 8, dlib: bool = True, options: Optional[Sequence[str]] = None,
              threads_options: Sequence[int] = (1, 2, 4), contention: bool = True,
              contention_rounds: Optional[int] = None, detection: bool = True) -> dict:
    """Measure everything (see the module docstring); returns the JSON-able report.

    ``configs``: configuration names (default: all registered); ``shipped``: shipped model names
    (default: the default model, when present); ``device``: one device or None for every device
    present; ``options``: names from OPTION_SETS to measure on the first shipped model (default: all);
    ``threads``: torch's intra-op threads (default: :func:`dmsl_core.threads.default_threads`, what the
    app and ``dmsl run`` use); ``contention``: the rows with one busy core beside the pipeline."""
    from . import threads as threading_mod
    from .models.weights import DEFAULT_MODEL, shipped_models
    from .pipeline import Predictor
    configs = list(configs) if configs is not None else list_configs()
    for c in configs:
        get_config(c)  # unknown names fail before anything is measured
    if shipped is None:
        shipped = [DEFAULT_MODEL] if DEFAULT_MODEL in shipped_models() else []
    devices = [device] if device else available_devices()
    try:
        w, h = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        raise ValueError(f"image size {image_size!r} is not WIDTHxHEIGHT") from None
    options = list(OPTION_SETS) if options is None else list(options)
    for o in options:
        if o not in OPTION_SETS:
            raise ValueError(f"unknown speed option {o!r}; known: {', '.join(OPTION_SETS)}")
    prev_threads = torch.get_num_threads()
    threads = int(threads or threading_mod.default_threads())
    threading_mod.configure(threads)
    imgs = bench_frames(frames, (w, h))
    report: dict = {
        "schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "devices": {d: describe_device(torch.device(d)) for d in devices}},
        "threads": threads, "threading": threading_mod.summary(),
        "frames": {"source": "demo (visible, lights on)", "n": len(imgs), "size": [w, h]},
        "note": "fps: whole pipeline per frame (M_b on the frame, M_b on the crop, blackout, M_l, pre-processing "
                "included) for one spectrum; batch b = b frames per call. ms_per_image: M_l forward alone. "
                "ratio_vs_dlib: DMSL fps / Dlib fps on the same frames (>1: DMSL faster).",
        "pipeline": [], "dlib": None, "options": [], "contention": [], "detection": [], "targets": {},
    }
    try:
        report["dlib"] = _dlib_entry(imgs, repeat) if dlib else {"available": False, "reason": "not measured (--no-dlib)"}
        d = report["dlib"]
        if d.get("available"):
            printer(f"{'dlib':<20} {'cpu':<5} HOG + shape predictor {d['fps']:7.2f} fps "
                    f"({d['ms_per_frame']:.1f} ms/frame, found {d['detected']}/{d['frames']} faces)")
        else:
            printer(f"dlib: {d['reason']}")
        dlib_fps = d.get("fps") if d.get("available") else None
        jobs = [(name, "shipped") for name in shipped] + [(name, "config") for name in configs]
        for dev_name in devices:
            dev = torch.device(dev_name)
            for name, kind in jobs:
                if kind == "shipped":
                    pred = Predictor.from_weights(name, device=dev)
                else:
                    mb, ml = create_models(get_config(name), seed=0)
                    pred = Predictor(mb, ml, get_config(name), device=dev)
                e = _pipeline_entry(pred, name, kind, imgs, batches, repeat, dev)
                e["ratio_vs_dlib"] = ({b: round(f / dlib_fps, 3) for b, f in e["fps"].items()} if dlib_fps else None)
                report["pipeline"].append(e)
                printer(f"{name:<20} {dev_name:<5} " + "  ".join(
                    f"b{b}: {e['ms_per_image'][str(b)]:7.2f} ms/img {e['fps'][str(b)]:7.2f} fps" for b in batches)
                    + (f"  x{e['ratio_vs_dlib'][str(batches[0])]:.2f} vs dlib" if dlib_fps else "")
                    + (f"  peak {e['peak_rss_mb']:.0f} MB" if e.get("peak_rss_mb") else ""))
                del pred
            if shipped and options:
                printer(f"speed options, {shipped[0]} on {dev_name} (one frame per call):")
                opts = [o for o in options if not (o == "onnxruntime" and dev.type == "mps")]
                report["options"] += _options_entries(lambda dev=dev: Predictor.from_weights(shipped[0], device=dev),
                                                      shipped[0], imgs, repeat,
                                                      threads_options if dev.type == "cpu" else (), dev, opts, printer)
        if detection and shipped:
            try:
                from .sources.demo import DemoScene
                scene = DemoScene(size=(w, h), seed=0)
                idx = np.linspace(0, int(0.28 * scene.cycle * scene.fps), frames).astype(int)
                th = [scene.pair(int(i)).th for i in idx]
                pairs = [scene.pair(i) for i in range(30)]
                printer(f"face detector stage, {shipped[0]} on {devices[0]} (one frame per call):")
                report["detection"] = detection_entries(Predictor.from_weights(shipped[0], device=devices[0]),
                                                        imgs, th, [p.vis for p in pairs], max(3, repeat // 2), printer,
                                                        video_th=[p.th for p in pairs])
            except Exception as exc:  # noqa: BLE001 - e.g. Dlib missing: reported, not fatal
                report["detection"] = [{"what": "face detector stage", "error": f"{type(exc).__name__}: {exc}"[:300]}]
                printer(f"face detector stage: {report['detection'][0]['error']}")
        if contention and (shipped or configs):
            name = shipped[0] if shipped else configs[0]
            dev = torch.device(devices[0])
            base = next(iter(OPTION_SETS))
            rows = [base] + [o["option"] for o in report["options"] if o["option"] in OPTION_SETS
                             and o["option"] != base and o.get("fps") and o["device"] == devices[0]
                             and o["option"] in ("onnxruntime",)]
            printer(f"one busy core beside the pipeline, {name} on {devices[0]} (one frame per call):")
            for label in rows:
                if shipped:
                    pred = Predictor.from_weights(name, device=dev)
                else:
                    mb, ml = create_models(get_config(name), seed=0)
                    pred = Predictor(mb, ml, get_config(name), device=dev)
                pred.optimise(**OPTION_SETS[label])
                c = contention_entry(pred, label, imgs, contention_rounds or max(2, repeat // 4), dev)
                c["model"] = name
                report["contention"].append(c)
                printer(f"  {label:<40} quiet {c['quiet_ms']['median']:7.1f} ms  busy {c['busy_ms']['median']:7.1f} ms"
                        f"  busy/quiet x{c['ratio']:.2f} [{c['ratio_spread']['min']:.2f}-{c['ratio_spread']['max']:.2f}]")
            if report["contention"]:
                worst = max(report["contention"], key=lambda c: c["ratio"])
                report["targets"]["busy_core"] = {
                    "target_ratio": CONTENTION_TARGET, "model": name, "device": devices[0], "threads": threads,
                    "ratios": {c["option"]: c["ratio"] for c in report["contention"]},
                    "worst": worst["option"], "met": bool(worst["ratio"] <= CONTENTION_TARGET)}
        ok = [o for o in report["options"] if o.get("fps") and not o.get("changes_results")
              and (o["max_diff_px"] is None or o["max_diff_px"] < 0.05)]
        if ok:
            best = max(ok, key=lambda o: o["fps"])
            report["best_option"] = {"model": best["model"], "device": best["device"], "option": best["option"],
                                     "fps": best["fps"], "ratio": best["ratio"]}
        if shipped:
            first = next(e for e in report["pipeline"] if e["model"] == shipped[0] and e["device"] == devices[0])
            f1 = first["fps"].get("1") or next(iter(first["fps"].values()))
            best_fps = max([f1] + [o["fps"] for o in ok if o["device"] == devices[0] and o.get("threads") == threads])
            report["targets"]["realtime_fps"] = {
                "target": TARGET_FPS, "model": shipped[0], "device": devices[0], "threads": threads,
                "tta": first.get("tta", "none"), "refine": first.get("refine", "mb"),
                "measured_default": f1, "measured_best_option": best_fps, "met": bool(best_fps >= TARGET_FPS)}
            if dlib_fps:
                report["targets"]["faster_than_dlib"] = {"dlib_fps": dlib_fps, "dmsl_fps": best_fps,
                                                         "ratio": round(best_fps / dlib_fps, 3),
                                                         "met": bool(best_fps >= dlib_fps)}
    finally:
        torch.set_num_threads(prev_threads)
    return report


# ---- the per-frame stream pipeline (`dmsl run --bench`) -------------------------------------------
BENCH_CONFIGS: dict[str, dict] = {
    "single": {"mode": "auto"},
    "both": {"mode": "both"},
    "single+reuse": {"mode": "auto", "reuse_box": True},
    "both+reuse": {"mode": "both", "reuse_box": True},
}


def benchmark_pipeline(predictor, pairs: Sequence, configs: Optional[dict] = None,
                       repeat: int = 3, smoothing: bool = True) -> dict[str, dict]:
    """Pipeline speed (and NME where the pairs carry ground truth) of several stream configurations.

    The pairs are decoded/rendered beforehand, so the figures are the per-frame pipeline alone.
    The configurations take turns (``repeat`` rounds, a fresh processor each run) and each one's
    fastest run counts - the usual convention on a shared machine, where load comes and goes.
    Returns ``{name: {"fps", "ms_per_frame", "nme_vis", "nme_th", "nme_chosen", "reused_frac", "switches"}}``.
    """
    configs = configs or BENCH_CONFIGS
    best: dict[str, float] = {name: math.inf for name in configs}
    out: dict[str, dict] = {}
    for _ in range(max(1, repeat)):
        for name, opts in configs.items():
            from .stream import StreamConfig, StreamProcessor
            proc = StreamProcessor(predictor, StreamConfig(smoothing=smoothing, **opts))
            nmes: dict[str, list[float]] = {"vis": [], "th": [], "chosen": []}
            t0 = time.perf_counter()
            for p in pairs:
                r = proc.process(p)
                for s, v in r.nme.items():
                    nmes[s].append(v)
                if r.chosen in r.nme:
                    nmes["chosen"].append(r.nme[r.chosen])
            dt = time.perf_counter() - t0
            if dt < best[name]:
                best[name] = dt
                out[name] = {"frames": len(pairs), "fps": len(pairs) / dt, "ms_per_frame": 1000 * dt / len(pairs),
                             "reused_frac": proc.n_reused / max(1, proc.n_frames), "switches": proc.selector.switches,
                             **{f"nme_{k}": (float(np.mean(v)) if v else None) for k, v in nmes.items()}}
    return out
