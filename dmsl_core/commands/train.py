"""``dmsl train`` (one run, or folds spread over torchrun's ranks) and ``dmsl cv`` (every fold in
sequence): the flags and ``--job`` file -> a TrainConfig, then the library's workflows
(:mod:`dmsl_core.crossval`, :func:`dmsl_core.training.train`), and what they print."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional

from .common import count_arg, fmt_nme, parse_spectra, positive_arg
from .progress import EventStream, ProgressPrinter


# ----------------------------------------------------------------------------- flags -> TrainConfig
def _stages(arg: str) -> tuple[int, ...]:
    try:
        st = tuple(sorted({int(x) for x in str(arg).split(",") if x.strip()}))
    except ValueError:
        st = ()
    if not st or any(x not in (1, 2, 3) for x in st):
        raise ValueError(f"--stages {arg!r}: use stages from 1, 2, 3 (e.g. 1,2 or 1,2,3 or 3)")
    return st


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
    from ..runs import saved_config
    return saved_config(out, args.device, args.threads)


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
    "spectra": ("spectra", parse_spectra), "name": ("name", lambda v: v or ""),
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


# ----------------------------------------------------------------------------- printing
def _say_data(split, tag: str = "") -> None:
    """The data line of a run (and the first files skipped), on stderr."""
    train_s, val_s, test_s = split.subjects
    rep = split.report
    print(f"{tag}data: {len(split.train)} training images ({len(train_s)} subjects), {len(split.val)} "
          f"validation ({len(val_s)}), {len(split.test)} test ({len(test_s)}); dropped {rep.dropped_dark} "
          f"black visible images; {len(rep.skipped)} skipped", file=sys.stderr)
    for s in rep.skipped[:10]:
        print(f"  skipped: {s}", file=sys.stderr)


def _event_sink(args):
    printer = ProgressPrinter()
    if not getattr(args, "events_jsonl", False):
        return printer
    stream = EventStream(sys.stdout)
    return lambda e: (printer(e), stream(e))


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


# ----------------------------------------------------------------------------- commands
def _dist_context(args):
    """The process group torchrun describes (:func:`dmsl_core.distributed.init_from_env`; a
    one-process context without torchrun), on the device this invocation asks for."""
    from ..distributed import init_from_env
    ctx = init_from_env(args.device if _job(args) is None else _wanted(args, "device"))
    if ctx.active:
        print(f"dmsl {args.command}: rank {ctx.rank} of {ctx.world_size} ({ctx.backend}, {ctx.device})",
              file=sys.stderr)
    return ctx


def cmd_train(args) -> int:
    """``dmsl train``; under torchrun (WORLD_SIZE > 1) one DDP run, or folds spread over the ranks."""
    from ..distributed import shutdown
    args.out = str(_out_dir(args))
    folds = _requested_folds(args)
    ctx = _dist_context(args)
    rc = _train_folds(args, folds, ctx) if isinstance(folds, list) else _train_one(args, folds, ctx)
    shutdown(ctx)  # not reached after an error: torchrun ends the other ranks
    return rc


def _train_one(args, fold, ctx) -> int:
    """One run in --out. STOP_EARLY / CANCEL files in the run folder and SIGUSR1 / SIGTERM stop it
    (the training panel's buttons); under torchrun every rank watches them and the trainer makes
    the ranks agree at each step (torchrun forwards SIGTERM to its workers)."""
    from ..crossval import train_run
    from ..training import FileStopControl, TrainingCancelled
    out = Path(args.out)
    cfg = _train_config(args, out, fold, args.resume)
    control = FileStopControl(out)
    if ctx.is_main:
        control.clear_requests()  # a stale STOP_EARLY / CANCEL from an earlier run must not stop this one
    ctx.barrier()
    restore = _install_stop_signals(control)
    try:
        path = train_run(cfg, out, args.folds, args.resume, _event_sink(args) if ctx.is_main else None,
                         control, dist=ctx, on_data=_say_data if ctx.is_main else None)
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


def _train_folds(args, folds: list, ctx) -> int:
    """Cross-validation: fold k in OUT/fold-k, run by rank k mod world size as a one-process training
    (:func:`dmsl_core.crossval.train_folds`). A fold with weights is skipped, a fold with a started
    run is resumed. Rank 0 writes OUT/cv_report.json and prints a table."""
    from ..crossval import cv_report, train_folds, write_cv_report
    out = Path(args.out)
    base = _config_from_args(args, None)
    several = ctx.active or len(folds) > 1

    def tag(k: int) -> str:
        return f"fold {k}: " if several else ""

    def failed(k: int, exc: Exception) -> None:
        print(f"{tag(k)}failed: {exc}", file=sys.stderr)
    results = train_folds(out, folds, args.folds, base, device=args.device, num_threads=args.threads,
                          name_prefix=_wanted(args, "name") or out.name, check_model=True, dist=ctx,
                          events=lambda k: ProgressPrinter(prefix=tag(k), tty=not ctx.active),  # ranks: epochs only
                          on_data=lambda k, split: _say_data(split, tag(k)), on_failed=failed)
    if not ctx.is_main:
        return 0 if all(r["status"] != "failed" for r in results) else 1
    report = cv_report(results, args.folds, base, ctx.world_size)
    path = write_cv_report(out, report)
    print(f"\n{'fold':>4} {'NME TH':>8} {'NME VIS':>8} {'all':>8} {'images':>7}  status", file=sys.stderr)
    for r in results:
        n = r.get("nme_test") or {}
        print(f"{r['fold']:>4} {fmt_nme(n.get('th')):>8} {fmt_nme(n.get('vis')):>8} {fmt_nme(n.get('all')):>8} "
              f"{n.get('n_images', 0):>7}  {r['status']}", file=sys.stderr)
    m = report["mean_nme_test"]
    print(f"{'mean':>4} {fmt_nme(m['th']):>8} {fmt_nme(m['vis']):>8} {fmt_nme(m['all']):>8}", file=sys.stderr)
    print(path)
    failed_folds = [r["fold"] for r in results if r["status"] == "failed"]
    if failed_folds:
        print(f"dmsl train: fold(s) {failed_folds} failed (see above); rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


def cmd_cv(args) -> int:
    """All folds of the paper's protocol in sequence (:func:`dmsl_core.crossval.run_cv`): OUT/fold-K
    per fold, OUT/cv.json (the plan, then the per-fold test NMEs and their mean). Re-running with
    --resume skips finished folds and resumes an interrupted one, so a cross-validation continues
    fold by fold. Under torchrun (WORLD_SIZE > 1) fold K runs on rank K mod N, as with ``dmsl train
    --fold all``; rank 0 opens the plan, writes OUT/cv.json and prints the summary."""
    from ..crossval import open_plan, run_cv
    from ..distributed import shutdown
    from ..training import FileStopControl, TrainingCancelled
    root = args.out = _out_dir(args)
    ctx = _dist_context(args)
    control = FileStopControl(root)
    plan, failure = None, None
    if ctx.is_main:
        try:
            plan = open_plan(root, args.folds, lambda: _config_from_args(args, None), resume=args.resume)
            control.clear_requests()  # a stale STOP_EARLY / CANCEL from an earlier run must not stop this one
        except Exception as exc:  # noqa: BLE001 - raised below, once the other ranks know (they end quietly)
            failure = exc
    plan = ctx.all_gather_object(plan)[0]  # every rank works on rank 0's plan
    if plan is None:  # nothing started: leave the process group together, rank 0 reports why
        shutdown(ctx)
        if failure is not None:
            raise failure
        return 2

    def tag(k: int) -> str:
        return f"fold {k}: " if ctx.active else ""

    def failed(k: int, exc: Exception) -> None:
        print(f"{tag(k)}failed: {exc}", file=sys.stderr)
    stream = EventStream(sys.stdout) if ctx.is_main and getattr(args, "events_jsonl", False) else None

    def fold_events(k: int):
        """Under torchrun (as ``dmsl train --fold all``): each rank prints its folds' epochs; the JSON
        events are rank 0's folds'."""
        printer = ProgressPrinter(prefix=tag(k), tty=False)
        return printer if stream is None else (lambda e: (printer(e), stream(e)))
    restore = _install_stop_signals(control)
    try:
        summary = run_cv(root, plan, device=args.device, num_threads=args.threads, on_event=_event_sink(args),
                         control=control, on_data=lambda k, split: _say_data(split, tag(k)),
                         dist=ctx if ctx.active else None, events=fold_events if ctx.active else None,
                         on_failed=failed)
    except TrainingCancelled as exc:
        print(str(exc).replace("--resume", "dmsl cv --resume"), file=sys.stderr)
        return 130
    finally:
        restore()
        if ctx.is_main:
            control.clear_requests()
    unfinished = [f["fold"] for f in summary["folds"] if f["status"] != "complete"]  # failed under torchrun
    shutdown(ctx)
    if not ctx.is_main:
        return 1 if unfinished else 0
    m = summary["mean"]
    for f in summary["folds"]:
        print(f"fold {f['fold']}: NME TH {fmt_nme(f['th'])}  VIS {fmt_nme(f['vis'])}  all {fmt_nme(f['all'])}",
              file=sys.stderr)
    print(f"mean over {summary['complete']} folds: NME TH {fmt_nme(m['th'])}  VIS {fmt_nme(m['vis'])}  "
          f"all {fmt_nme(m['all'])}", file=sys.stderr)
    if unfinished:
        print(f"dmsl cv: fold(s) {unfinished} failed (see above); rerun with --resume to retry them", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
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

    cv = sub.add_parser("cv", help="cross-validation: train every fold of the paper's protocol (in sequence; under torchrun fold k on rank k mod N)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for action in p._actions:
        if action.dest in ("help", "fold"):
            continue
        cv._add_action(action)
    cv.set_defaults(func=cmd_cv)
