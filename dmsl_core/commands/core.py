"""``dmsl models | train | eval | predict | bench``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Optional
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------------- argument types
def _int_at_least(text: str, minimum: int, too_small: str) -> int:
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"{v} {too_small}")
    return v


def positive_arg(text: str) -> int:
    """argparse type: an integer >= 1 (``--batch-size 0`` is refused when parsing)."""
    return _int_at_least(text, 1, "is not a positive integer (1 or more)")


def count_arg(text: str) -> int:
    """argparse type: an integer >= 0 (``--epochs -1`` is refused when parsing)."""
    return _int_at_least(text, 0, "is negative (0 or more)")


# ----------------------------------------------------------------------------- progress
def _fmt_s(s) -> str:
    if s is None or not np.isfinite(s):
        return "--"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressPrinter:
    """Turns training events into a one-line progress bar on a terminal (a line per epoch otherwise)."""

    NAMES = {"boundary": "M_b", "landmark": "M_l"}

    def __init__(self, stream=None, width: int = 24, prefix: str = "", tty: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty and getattr(self.stream, "isatty", lambda: False)()
        self.width = width
        self.prefix = prefix

    def __call__(self, e) -> None:
        name = f"{self.NAMES.get(e.model, e.model)} stage {e.stage}"
        if self.prefix:
            name = f"{self.prefix}{name}"
        if e.kind == "step" and self.tty and e.steps:
            frac = e.step / e.steps
            bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
            self.stream.write(f"\r[{e.phase + 1}/{e.n_phases}] {name} epoch {e.epoch}/{e.epochs} [{bar}] "
                              f"loss {e.loss:.4g}  {e.images_per_s or 0:.0f} img/s  ETA {_fmt_s(e.eta_s)}   ")
            self.stream.flush()
        elif e.kind == "epoch":
            extra = f" val {e.val_loss:.4g}" if e.val_loss is not None else ""
            extra += f" NME {e.val_nme:.4f}" if e.val_nme is not None else ""
            self.stream.write(("\r" if self.tty else "") + f"[{e.phase + 1}/{e.n_phases}] {name} epoch "
                              f"{e.epoch}/{e.epochs} loss {e.loss:.4g}{extra}{' *best' if e.best else ''}"
                              f"  ETA {_fmt_s(e.eta_s)}" + " " * 10 + "\n")
        elif e.kind in ("start", "done", "cancelled") and e.message:
            self.stream.write(f"{e.message}\n")
            if e.kind == "start" and e.extra.get("device_name"):
                self.stream.write(f"device: {e.extra['device']} ({e.extra['device_name']})\n")
        self.stream.flush()


# ----------------------------------------------------------------------------- data helpers
# the trainer's split lives in the library (dmsl_core.data.splits.split_subjects); this name stays for callers
from ..data.splits import split_subjects as _split_subjects  # noqa: E402


def _spectra(arg: str) -> tuple[str, ...]:
    names = {"vis": "vis", "visible": "vis", "th": "th", "thermal": "th"}
    out = []
    for part in arg.split(","):
        part = part.strip().lower()
        if part == "both":
            out += ["vis", "th"]
        elif part in names:
            out.append(names[part])
        else:
            raise ValueError(f"unknown spectrum {part!r} (use vis, th or both)")
    return tuple(dict.fromkeys(out))


TTA_HELP = ("test-time augmentation: none; flip (M_b's second pass and every M_l pass also run on the mirrored "
            "crop and the results are averaged; 1.4-1.6x the time per frame, see dmsl bench); flip-final (only "
            "the final M_l pass does: one mirrored crop more per face); default: what the model card says")
REFINE_HELP = ("how the face box is refined before M_l's final pass: mb (M_b again on a crop around its coarse "
               "box), landmarks (M_l on the coarse box, then again on the box of its own landmarks; same cost "
               "as mb), both (one forward more); default: what the model card says (mb when it says nothing)")


def add_inference_args(p) -> None:
    """--tta and --refine (the Predictor's test-time settings; None = the model card's). The
    choices are spelled out so the parser does not import torch; a test holds them to
    ``Predictor.TTA_MODES`` / ``REFINE_MODES``."""
    p.add_argument("--tta", default=None, choices=["none", "flip-final", "flip"], help=TTA_HELP)
    p.add_argument("--refine", default=None, choices=["mb", "landmarks", "both"], help=REFINE_HELP)


def _stages(arg: str) -> tuple[int, ...]:
    try:
        st = tuple(sorted({int(x) for x in str(arg).split(",") if x.strip()}))
    except ValueError:
        st = ()
    if not st or any(x not in (1, 2, 3) for x in st):
        raise ValueError(f"--stages {arg!r}: use stages from 1, 2, 3 (e.g. 1,2 or 1,2,3 or 3)")
    return st


# ----------------------------------------------------------------------------- commands
def cmd_models(args) -> int:
    from ..models import get_config, list_configs, create_models
    from ..models.weights import shipped_models
    print(f"{'configuration':<16} {'widths':<24} {'hidden':>6} {'input':>5} {'params M_b':>11} {'params M_l':>11}")
    for name in list_configs():
        c = get_config(name)
        mb, ml = create_models(c)
        pb = sum(p.numel() for p in mb.parameters())
        pl = sum(p.numel() for p in ml.parameters())
        print(f"{name:<16} {'-'.join(map(str, c.widths)):<24} {c.hidden:>6} {c.input_size:>5} {pb:>11,} {pl:>11,}")
        if args.verbose:
            print(f"    {c.description}")
    shipped = shipped_models()
    print(f"\nshipped models: {', '.join(shipped) if shipped else 'none'}")
    return 0


def _parse_fold_arg(arg, n_folds: int):
    """``--fold``: None, one fold (int: one run in --out), or a list (cross-validation: ``all`` or
    ``0,1,2``, one run per fold in OUT/fold-K)."""
    if arg is None:
        return None
    if isinstance(arg, int):
        return arg
    text = str(arg).strip().lower()
    if text == "all":
        return list(range(n_folds))
    try:
        if "," not in text:
            return int(text)
        folds = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--fold {arg!r}: use a fold number, a comma-separated list (0,1,2) or all") from None
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad:
        raise ValueError(f"--fold {arg!r}: fold {bad[0]} does not exist; folds are 0..{n_folds - 1}")
    if not folds:
        raise ValueError(f"--fold {arg!r}: no fold given")
    return list(dict.fromkeys(folds))


def _resumed_config(out: Path, args):
    """The configuration saved in a run folder, with this invocation's device and threads."""
    from ..training import TrainConfig
    try:
        cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{out / 'config.json'}: not a valid training configuration ({exc})") from None
    for k in ("device", "num_threads"):
        v = getattr(args, "threads" if k == "num_threads" else k)
        if v is not None:
            setattr(cfg, k, v)
    return cfg


#: ``dmsl train`` flags that set a TrainConfig field: dest -> (field, the flag's value -> the field's)
_CONFIG_FLAGS = {
    "config": ("model", str), "models": ("train_models", str), "stages": ("stages", _stages),
    "epochs": ("epochs", int), "head_epochs": ("head_epochs", int), "batch_size": ("batch_size", int),
    "lr": ("lr", float), "head_lr": ("head_lr", float), "seed": ("seed", int),
    "lr_schedule": ("lr_schedule", str), "joint_epochs": ("joint_epochs", int), "joint_lr": ("joint_lr", float),
    "box_jitter": ("box_jitter", float), "device": ("device", lambda v: v or "auto"),
    "no_augment": ("augment", lambda v: not v), "no_mirror": ("mirror", lambda v: not v),
    "threads": ("num_threads", lambda v: v), "init": ("init_weights", lambda v: v),
    "init_models": ("init_models", str), "data": ("data", lambda v: str(Path(v).resolve()) if v else ""),
    "spectra": ("spectra", _spectra), "name": ("name", lambda v: v or ""),
}


def _note_given(namespace, dest: str) -> None:
    namespace.given_flags = set(getattr(namespace, "given_flags", ())) | {dest}


class _GivenStore(argparse.Action):
    """``store``, and ``dest`` noted in ``namespace.given_flags``: with ``--job`` only the flags typed
    override the job file (a flag left at its default does not)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _note_given(namespace, self.dest)


class _GivenTrue(argparse.Action):
    """``store_true``, noted as :class:`_GivenStore` does."""

    def __init__(self, option_strings, dest, default=False, required=False, help=None) -> None:
        super().__init__(option_strings, dest, nargs=0, const=True, default=default, required=required, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)
        _note_given(namespace, self.dest)


def _job(args):
    """The ``--job`` file's TrainConfig (read once per invocation; a copy), or None without ``--job``."""
    from ..training import read_job
    if not getattr(args, "job", None):
        return None
    if getattr(args, "job_config", None) is None:
        args.job_config = read_job(args.job)
    return dataclasses.replace(args.job_config)


def _wanted(args, dest: str):
    """The TrainConfig field flag ``dest`` sets, as this invocation asks for it: the flag's value
    (its default included) without ``--job``; with ``--job`` the flag's when it was typed, else the job's."""
    field, conv = _CONFIG_FLAGS[dest]
    job = _job(args)
    if job is None or dest in getattr(args, "given_flags", ()):
        return conv(getattr(args, dest))
    return getattr(job, field)


def _config_from_args(args, fold, name: Optional[str] = None):
    """The TrainConfig of ``dmsl train``'s flags, or of ``--job FILE`` with the flags typed beside it
    overriding its keys; ``fold`` (and ``name`` unless None) as the caller resolved them."""
    from ..training import TrainConfig
    job = _job(args)
    if job is None and not args.data:
        raise ValueError("--data is required (or --job FILE)")
    cfg = dataclasses.replace(job or TrainConfig(), fold=fold,
                              **{field: _wanted(args, dest) for dest, (field, _) in _CONFIG_FLAGS.items()})
    if not cfg.data:
        raise ValueError(f"{args.job}: no \"data\" (the dataset folder) in the job file, and no --data")
    cfg.data = str(Path(cfg.data).resolve())
    if name is not None:
        cfg.name = name
    return cfg


def _requested_folds(args):
    """``--fold`` as :func:`_parse_fold_arg` reads it; with ``--job`` and no ``--fold``, the job's fold."""
    job = _job(args)
    return _parse_fold_arg(args.fold if args.fold is not None or job is None else job.fold, args.folds)


def _out_dir(args) -> Path:
    """``--out``; with ``--job`` and no ``--out``, the job file's folder."""
    if args.out:
        return Path(args.out)
    if getattr(args, "job", None):
        return Path(args.job).resolve().parent
    raise ValueError("--out is required (or --job FILE: the run then goes into the job file's folder)")


def _train_config(args, out: Path, fold, resume: bool, name: Optional[str] = None):
    if resume and (out / "config.json").exists():
        return _resumed_config(out, args)
    return _config_from_args(args, fold, name)


def _train_samples(cfg, n_folds: int, say: bool, tag: str = ""):
    from ..data.folder import LoadReport, load_samples
    train_s, val_s, test_s = _split_subjects(cfg.data, cfg.fold, n_folds)
    rep = LoadReport()
    train_samples = load_samples(cfg.data, cfg.spectra, subjects=train_s, report=rep)
    val_samples = load_samples(cfg.data, cfg.spectra, subjects=val_s, report=rep) if val_s else []
    test_samples = load_samples(cfg.data, cfg.spectra, subjects=test_s, report=rep) if test_s else []
    if say:
        print(f"{tag}data: {len(train_samples)} training images ({len(train_s)} subjects), {len(val_samples)} "
              f"validation ({len(val_s)}), {len(test_samples)} test ({len(test_s)}); dropped {rep.dropped_dark} "
              f"black visible images; {len(rep.skipped)} skipped", file=sys.stderr)
        for s in rep.skipped[:10]:
            print(f"  skipped: {s}", file=sys.stderr)
    return train_samples, val_samples, test_samples


def _train_run(cfg, out: Path, n_folds: int, resume: bool, on_event, control, dist=None):
    """Load the run's samples (fold split) and train; returns the weights path."""
    from ..training import train
    say = dist is None or dist.is_main
    train_samples, val_samples, test_samples = _train_samples(cfg, n_folds, say=say)
    return train(cfg, out, train_samples, val_samples, test_samples, on_event=on_event, resume=resume,
                 control=control, dist=dist)


def _event_sink(args):
    printer = ProgressPrinter()
    if not getattr(args, "events_jsonl", False):
        return printer
    stream = EventStream(sys.stdout)
    return lambda e: (printer(e), stream(e))


def cmd_train(args) -> int:
    """``dmsl train``; under torchrun (WORLD_SIZE > 1) one DDP run, or folds spread over the ranks."""
    from ..distributed import init_from_env, shutdown
    args.out = str(_out_dir(args))
    folds = _requested_folds(args)
    ctx = init_from_env(args.device if _job(args) is None else _wanted(args, "device"))
    if ctx.active:
        print(f"dmsl train: rank {ctx.rank} of {ctx.world_size} ({ctx.backend}, {ctx.device})", file=sys.stderr)
    rc = _train_folds(args, folds, ctx) if isinstance(folds, list) else _train_one(args, folds, ctx)
    shutdown(ctx)  # not reached after an error: torchrun ends the other ranks
    return rc


def _train_one(args, fold, ctx) -> int:
    """One run in --out. STOP_EARLY / CANCEL files in the run folder and SIGUSR1 / SIGTERM stop it
    (the training panel's buttons); under torchrun every rank watches them and the trainer makes
    the ranks agree at each step (torchrun forwards SIGTERM to its workers)."""
    from ..training import FileStopControl, TrainingCancelled
    out = Path(args.out)
    cfg = _train_config(args, out, fold, args.resume)
    control = FileStopControl(out)
    if ctx.is_main:
        control.clear_requests()  # a stale STOP_EARLY / CANCEL from an earlier run must not stop this one
    ctx.barrier()
    restore = _install_stop_signals(control)
    try:
        path = _train_run(cfg, out, args.folds, args.resume, _event_sink(args) if ctx.is_main else None,
                          control, dist=ctx)
    except TrainingCancelled as exc:
        print(str(exc), file=sys.stderr)
        return 130
    finally:
        restore()
        if ctx.is_main:
            control.clear_requests()
    if ctx.is_main and not getattr(args, "events_jsonl", False):
        print(path)
    return 0


def _fold_summary(run: Path) -> dict:
    card = json.loads((run / "model.json").read_text())
    return {"nme_test": card.get("nme_test"), "nme_val": card.get("nme_val")}


def _train_folds(args, folds: list, ctx) -> int:
    """Cross-validation: fold k in OUT/fold-k, run by rank k mod world size as a one-process training.
    A fold with weights is skipped, a fold with a started run is resumed. Rank 0 gathers the results
    into OUT/cv_report.json and prints a table."""
    from ..atomic import atomic_write_text
    from ..distributed import DistContext
    from ..training import TrainConfig, train
    out = Path(args.out)
    model, base_name = _wanted(args, "config"), _wanted(args, "name") or out.name
    mine = [k for k in folds if k % ctx.world_size == ctx.rank]
    solo = DistContext(device=ctx.device)  # this rank's own device, no process group inside a fold
    results = []
    for k in mine:
        run = out / f"fold-{k}"
        tag = f"fold {k}: " if ctx.active or len(folds) > 1 else ""
        res = {"fold": k, "run": str(run), "rank": ctx.rank}
        try:
            if (run / "model.safetensors").exists():
                saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
                if saved.model != model or saved.fold != k:
                    raise ValueError(f"{run}: holds a run of configuration {saved.model!r} fold {saved.fold}, "
                                     f"not {model!r} fold {k}; choose another --out")
                res.update(status="skipped (already trained)", **_fold_summary(run))
            else:
                resume = (run / "config.json").exists()
                cfg = _train_config(args, run, k, resume, name=f"{base_name}-fold{k}")
                if resume and cfg.model != model:
                    raise ValueError(f"{run}: holds a run of configuration {cfg.model!r}, not {model!r}")
                tr, va, te = _train_samples(cfg, args.folds, say=True, tag=tag)
                printer = ProgressPrinter(prefix=tag, tty=not ctx.active)  # several ranks: epoch lines only
                train(cfg, run, tr, va, te, on_event=printer, resume=resume, dist=solo)
                res.update(status="resumed" if resume else "trained", **_fold_summary(run))
        except Exception as exc:  # one failed fold must not stop the others (or hang the gather)
            print(f"{tag}failed: {exc}", file=sys.stderr)
            res.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        results.append(res)
    gathered = sorted((r for part in ctx.all_gather_object(results) for r in part), key=lambda r: r["fold"])
    if not ctx.is_main:
        return 0 if all(r["status"] != "failed" for r in gathered) else 1
    report = _cv_report(gathered, args, ctx)
    atomic_write_text(out / "cv_report.json", json.dumps(report, indent=2, allow_nan=False))
    fmt = lambda v: "  --  " if v is None else f"{v:.4f}"  # noqa: E731
    print(f"\n{'fold':>4} {'NME TH':>8} {'NME VIS':>8} {'all':>8} {'images':>7}  status", file=sys.stderr)
    for r in gathered:
        n = r.get("nme_test") or {}
        print(f"{r['fold']:>4} {fmt(n.get('th')):>8} {fmt(n.get('vis')):>8} {fmt(n.get('all')):>8} "
              f"{n.get('n_images', 0):>7}  {r['status']}", file=sys.stderr)
    m = report["mean_nme_test"]
    print(f"{'mean':>4} {fmt(m['th']):>8} {fmt(m['vis']):>8} {fmt(m['all']):>8}", file=sys.stderr)
    print(out / "cv_report.json")
    failed = [r["fold"] for r in gathered if r["status"] == "failed"]
    if failed:
        print(f"dmsl train: fold(s) {failed} failed (see above); rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


def _cv_report(results: list, args, ctx) -> dict:
    def mean(key):
        vals = [(r.get("nme_test") or {}).get(key) for r in results]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None
    return {"n_folds": args.folds, "folds": results, "config": _wanted(args, "config"),
            "data": str(Path(_wanted(args, "data")).resolve()), "world_size": ctx.world_size,
            "mean_nme_test": {k: mean(k) for k in ("th", "vis", "all")},
            "note": "mean_nme_test is the mean over folds of each fold's test NME (nme_test of its model.json)"}


def cmd_cv(args) -> int:
    """All folds of the paper's protocol in sequence: OUT/fold-K per fold, OUT/cv.json (the plan,
    then the per-fold test NMEs and their mean). Re-running with --resume skips finished folds and
    resumes an interrupted one, so a cross-validation continues fold by fold."""
    from ..atomic import atomic_write_text
    from ..runs import CV_FILE, cv_summary, run_status
    from ..training import FileStopControl, TrainEvent, TrainingCancelled
    root = args.out = _out_dir(args)
    plan_path = root / CV_FILE
    if args.resume and plan_path.exists():
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    else:
        if plan_path.exists():
            raise ValueError(f"{root}: already holds a cross-validation; use --resume to continue it")
        cfg = _config_from_args(args, None)
        plan = {"n_folds": int(args.folds), "config": cfg.to_dict()}
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan_path, json.dumps(plan, indent=2))
    from ..training import TrainConfig
    n = int(plan["n_folds"])
    control = FileStopControl(root)
    control.clear_requests()
    restore = _install_stop_signals(control)
    sink = _event_sink(args)
    try:
        for k in range(n):
            fold_dir = root / f"fold-{k}"
            status = run_status(fold_dir) if fold_dir.exists() else "new"
            sink(TrainEvent(kind="fold", message=f"fold {k + 1}/{n}: {status}",
                            extra={"fold": k, "folds": n, "run_dir": str(fold_dir), "status": status}))
            if status == "complete":
                continue
            if (fold_dir / "config.json").exists():
                cfg, resume = _resumed_config(fold_dir, args), True
            else:
                cfg, resume = TrainConfig.from_dict({**plan["config"], "fold": k}), False
                for key in ("device", "num_threads"):
                    v = getattr(args, "threads" if key == "num_threads" else key)
                    if v is not None:
                        setattr(cfg, key, v)
            _train_run(cfg, fold_dir, n, resume, sink, control)
            summary = cv_summary(root)
            atomic_write_text(plan_path, json.dumps({**plan, "results": summary}, indent=2))
    except TrainingCancelled as exc:
        print(str(exc).replace("--resume", "dmsl cv --resume"), file=sys.stderr)
        return 130
    finally:
        restore()
        control.clear_requests()
    summary = cv_summary(root)
    atomic_write_text(plan_path, json.dumps({**plan, "results": summary}, indent=2))
    m = summary["mean"]
    fmt = lambda v: "  --  " if v is None else f"{v:.4f}"  # noqa: E731
    for f in summary["folds"]:
        print(f"fold {f['fold']}: NME TH {fmt(f['th'])}  VIS {fmt(f['vis'])}  all {fmt(f['all'])}", file=sys.stderr)
    print(f"mean over {summary['complete']} folds: NME TH {fmt(m['th'])}  VIS {fmt(m['vis'])}  all {fmt(m['all'])}",
          file=sys.stderr)
    return 0


class EventStream:
    """``dmsl train --events-jsonl``: one JSON :class:`TrainEvent` per line on ``stream``, flushed.
    Step events are thinned to at most one per ``step_interval`` seconds (plus each epoch's last)."""

    def __init__(self, stream, step_interval: float = 0.25) -> None:
        self.stream, self.step_interval, self._last = stream, step_interval, 0.0

    def __call__(self, e) -> None:
        from ..training import event_to_json
        if e.kind == "step":
            now = time.monotonic()
            if now - self._last < self.step_interval and e.step != e.steps:
                return
            self._last = now
        self.stream.write(event_to_json(e) + "\n")
        self.stream.flush()


def _install_stop_signals(control):
    """SIGTERM -> cancel (resumable, like the CANCEL file), SIGUSR1 -> stop the stage early.
    Returns a function restoring the previous handlers (POSIX only; no-op elsewhere)."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {}
    for name, fn in (("SIGTERM", lambda *_: control.cancel()), ("SIGUSR1", lambda *_: control.early())):
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, fn)

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)
    return restore


def cmd_eval(args) -> int:
    """``dmsl eval``; under torchrun the images are sharded over the ranks and rank 0 writes the
    same report as one process would."""
    from ..distributed import init_from_env, shutdown
    from ..evaluation import evaluate_folder, write_report
    ctx = init_from_env(args.device)
    if args.threads:
        import torch
        torch.set_num_threads(int(args.threads))
    spectra = _spectra(args.spectra)
    names = [b.strip() for b in (args.baseline or "").split(",") if b.strip()]
    if args.json and ctx.is_main:  # before the work: a report that cannot be written fails now
        from ..atomic import check_writable
        check_writable(args.json)

    def progress(method, i, n):
        if ctx.is_main:
            print(f"\r{method}: {i}/{n} images", end="" if i < n else "\n", file=sys.stderr)
    t0 = time.perf_counter()
    report = evaluate_folder(args.data, args.weights, fold=args.fold, folds=args.folds, spectra=spectra,
                             baselines=names, device=args.device or "auto", batch_size=args.batch_size,
                             progress=progress, compare=[c for c in (args.compare or "").split(",") if c.strip()],
                             dist=ctx, tta=args.tta, refine=args.refine, true_box=args.true_box)
    seconds = time.perf_counter() - t0
    if not ctx.is_main:
        shutdown(ctx)
        return 0
    # no timing in the report: the same data give the same JSON, whatever the number of processes
    print(f"{report['n_images']} images in {seconds:.2f} s ({ctx.world_size} "
          f"process{'es' if ctx.world_size > 1 else ''})", file=sys.stderr)
    baselines = report.get("baselines") or {}
    if args.json:
        write_report(report, args.json)
    n = report["nme"]
    fmt = lambda v: "  --  " if v is None else f"{v:.4f}"  # noqa: E731
    print(f"NME  TH {fmt(n['th'])}  VIS {fmt(n['vis'])}  all {fmt(n['all'])}   ({report['n_images']} images"
          + (", M_l at the ground truth's box" if args.true_box else "")
          + ({"flip": ", test-time flip", "flip-final": ", test-time flip in the final pass"}.get(report.get("tta"), ""))
          + (f", --refine {report['refine']}" if report.get("refine") not in (None, "mb") else "") + ")")
    if baselines:
        print(f"\n{'method':<12} {'TH':>8} {'VIS':>8} {'misses TH':>10} {'misses VIS':>11}   (NME over detected images)")
        for name, r in [(report.get("model") or "dmsl", report), *baselines.items()]:
            print(f"{name:<12} {fmt(r['nme']['th']):>8} {fmt(r['nme']['vis']):>8} {r['misses']['th']:>10} "
                  f"{r['misses']['vis']:>11}")
    print(f"AUC@0.08 {fmt(report['auc_0.08'])}  failure@0.08 {fmt(report['failure_rate_0.08'])}  "
          f"failure@0.10 {fmt(report['failure_rate_0.10'])}")
    for var, v in report["per_variation"].items():
        print(f"  {var:<18} TH {fmt(v['th'])}  VIS {fmt(v['vis'])}")
    shutdown(ctx)
    return 0


def cmd_export_onnx(args) -> int:
    from ..models.onnx_export import export_onnx
    res = export_onnx(args.weights, args.out, check=not args.no_check, atol=args.atol)
    print(f"{res['files']['boundary']}\n{res['files']['landmark']}")
    chk = res.get("check")
    print(f"ONNX Runtime check: {chk}" if isinstance(chk, str) else
          "ONNX Runtime check: max |difference| " + ", ".join(f"{k} {v:.2e}" for k, v in chk.items()),
          file=sys.stderr)
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


def _predict_inputs(items) -> list[Path]:
    """Files as given; a folder gives its image files (sorted, not recursive)."""
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
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


def cmd_bench(args) -> int:
    from ..bench import OPTION_SETS, run_bench
    opts = None
    if args.options is not None:
        names = {k.split(" ")[0]: k for k in OPTION_SETS}
        opts = []
        for o in filter(None, args.options.split(",")):
            if o not in names:
                raise ValueError(f"--options: unknown option {o!r} (known: {', '.join(names)})")
            opts.append(names[o])
        if opts and opts[0] != next(iter(OPTION_SETS)):
            opts.insert(0, next(iter(OPTION_SETS)))  # ratios are against the baseline option
    report = run_bench(configs=args.configs.split(",") if args.configs else None,
                       shipped=None if args.shipped is None else [s for s in args.shipped.split(",") if s],
                       batches=[int(b) for b in args.batch.split(",")], threads=args.threads,
                       repeat=args.repeat, device=args.device, image_size=args.image_size, frames=args.frames,
                       dlib=not args.no_dlib, options=opts,
                       threads_options=[int(t) for t in args.threads_options.split(",") if t],
                       contention=not args.no_contention, detection=not args.no_detection,
                       printer=lambda s: print(s, file=sys.stderr))
    for name, t in report["targets"].items():
        print(f"target {name}: " + ", ".join(f"{k}={v}" for k, v in t.items()), file=sys.stderr)
    if args.json:
        from ..atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(report, indent=2))
        print(f"report -> {args.json}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("models", help="list model configurations and shipped models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train M_b and M_l (two stages each) on a dataset folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.register("action", None, _GivenStore)      # every flag notes that it was typed (see --job)
    p.register("action", "store", _GivenStore)
    p.register("action", "store_true", _GivenTrue)
    p.add_argument("--job", default=None, metavar="FILE",
                   help="a job file: one JSON object with the keys of the run's config.json (TrainConfig: model, "
                        "train_models, stages, epochs, ..., data, fold); the Train tab writes RUN/job.json. "
                        "Flags typed beside it override its keys; --out defaults to its folder")
    p.add_argument("--data", default=None, help="dataset folder (manifest.csv + images + .pts); required "
                   "without --job")
    p.add_argument("--config", default="dmsl-compact", help="model configuration (see `dmsl models`)")
    p.add_argument("--out", default=None, help="run folder to create (or to resume); required without --job")
    p.add_argument("--models", default="both", choices=["both", "boundary", "landmark"])
    p.add_argument("--stages", default="1,2", help="stages to run per model: 1 (U-Net on its mask), 2 (head) - "
                   "the paper's two - and 3 (ours: U-Net and head fine-tuned together on the point / box "
                   "distance), e.g. 1,2 or 1,2,3, or 3 after --init")
    p.add_argument("--epochs", type=count_arg, default=30, help="stage-1 (U-Net) epochs")
    p.add_argument("--head-epochs", type=count_arg, default=30, help="stage-2 (fully connected head) epochs")
    p.add_argument("--batch-size", type=positive_arg, default=16,
                   help="the GLOBAL batch: under torchrun each of N processes takes 1/N of every batch, "
                        "so the run follows the same path as one process with this batch size")
    p.add_argument("--joint-epochs", type=count_arg, default=20, help="stage-3 (joint fine-tuning) epochs")
    p.add_argument("--joint-lr", type=float, default=2e-4, help="stage-3 learning rate (Adam)")
    p.add_argument("--box-jitter", type=float, default=0.0,
                   help="M_l: std of the error of the box its input is blacked out with, as a fraction of "
                        "the box's width / height (M_b's boxes are not exact at inference); 0 = exact box")
    p.add_argument("--lr", type=float, default=1e-3, help="stage-1 learning rate (Adam)")
    p.add_argument("--head-lr", type=float, default=1e-3, help="stage-2 learning rate (Adam)")
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="per stage: constant, or cosine decay to 5%% of the rate over the stage's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps (default auto)")
    p.add_argument("--threads", type=positive_arg, default=None, help="CPU threads for torch")
    p.add_argument("--spectra", default="both", help="vis, th or both")
    p.add_argument("--fold", default=None,
                   help="fold k of the paper's protocol (test group k); a list (0,1,2) or 'all' runs "
                        "cross-validation: one run per fold in OUT/fold-K (under torchrun fold K on rank "
                        "K mod N), results in OUT/cv_report.json; finished folds are skipped, started ones resumed")
    p.add_argument("--folds", type=positive_arg, default=10, help="number of folds of the protocol")
    p.add_argument("--no-augment", action="store_true", help="no scale/rotation/photometric augmentation")
    p.add_argument("--no-mirror", action="store_true", help="no mirrored copies")
    p.add_argument("--init", default=None, help="start from these weights (fine-tuning); a model whose "
                   "architecture differs (another configuration) starts fresh, as the log says")
    p.add_argument("--init-models", default="both", choices=["both", "boundary", "landmark"],
                   help="which models take --init's weights")
    p.add_argument("--name", default=None, help="model name for the card (default: the run folder's name)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--events-jsonl", action="store_true",
                   help="print one JSON training event per line to stdout (for the app / other programs); "
                        "stop early by creating OUT/STOP_EARLY or sending SIGUSR1, cancel (resumable) by "
                        "creating OUT/CANCEL or sending SIGTERM")
    p.set_defaults(func=cmd_train)

    cv = sub.add_parser("cv", help="cross-validation: train every fold of the paper's protocol in sequence",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for action in p._actions:
        if action.dest in ("help", "fold"):
            continue
        cv._add_action(action)
    cv.set_defaults(func=cmd_cv)

    p = sub.add_parser("eval", help="NME / CED / AUC / failure rates of a model on a dataset folder")
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--spectra", default="both")
    p.add_argument("--fold", type=int, default=None, help="evaluate fold k's test subjects only")
    p.add_argument("--folds", type=positive_arg, default=10)
    p.add_argument("--batch-size", type=positive_arg, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=positive_arg, default=None,
                   help="CPU threads for torch (torchrun sets 1 per process by default; the report is the "
                        "same byte for byte for the same data and the same threads per process)")
    p.add_argument("--baseline", default=None,
                   help="also evaluate baselines on the same images: dlib (its own detector; misses counted), "
                        "dlib+mb (face box from DMSL's M_b); comma-separated")
    p.add_argument("--compare", default=None,
                   help="also evaluate these other trained models on the same images (weights specs, comma-separated)")
    add_inference_args(p)
    p.add_argument("--true-box", action="store_true",
                   help="give M_l the ground truth's face box instead of M_b's: M_l's error with a perfect M_b "
                        "(a diagnosis of where the error comes from)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export-onnx", help="export M_b and M_l to ONNX (checked against ONNX Runtime when installed)")
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--out", required=True, help="folder for boundary.onnx, landmark.onnx, onnx.json")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference from PyTorch")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("predict", help="every face in images (or none), each with 68 landmarks and its box",
                       description="Finds every face in each image with a face detector, then the 68 landmarks of "
                                   "each; prints one line per image (its faces' scores, or 'no face'). A file that "
                                   "cannot be read is named and counted; the others are still written (exit 1).")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--detector", default="auto",
                   help="face detector: auto (= dlib-hog), dlib-hog, dlib-cnn, skimage-lbp, or none (no detector: "
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

    p = sub.add_parser("bench", help="pipeline speed of every configuration and shipped model, Dlib on the same frames, "
                       "the ratio, peak memory and speed options")
    p.add_argument("--configs", default=None, help="comma-separated configurations (default: all registered)")
    p.add_argument("--shipped", default=None, help="comma-separated shipped models (default: dmsl-default; '' for none)")
    p.add_argument("--batch", default="1,8", help="batch sizes")
    p.add_argument("--threads", type=positive_arg, default=None,
                   help="CPU threads for torch (default: what the app and dmsl run use, see dmsl_core/threads.py)")
    p.add_argument("--repeat", type=int, default=10, help="interleaved repeats per figure (median and spread)")
    p.add_argument("--frames", type=int, default=8, help="demo frames to measure on")
    p.add_argument("--image-size", default="640x512", help="frame size WxH")
    p.add_argument("--device", default=None, help="one device (default: every device present)")
    p.add_argument("--no-dlib", action="store_true", help="skip Dlib's detector + predictor")
    p.add_argument("--options", default=None,
                   help="speed options to measure on the shipped model, comma-separated from: baseline, no_grad, "
                        "channels_last, torch.compile, onnxruntime ('' for none; default all)")
    p.add_argument("--threads-options", default="1,2,4", help="thread counts to compare for the shipped model")
    p.add_argument("--no-contention", action="store_true",
                   help="skip the rows with one busy core beside the pipeline (a busy process bench starts and kills)")
    p.add_argument("--no-detection", action="store_true",
                   help="skip the face detector stage's rows (detectors alone, detection + landmarks, the tracker)")
    p.add_argument("--json", default=None, help="write the report (schema dmsl-bench/3) here")
    p.set_defaults(func=cmd_bench)
