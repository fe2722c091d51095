"""Training on the paper's subject-wise fold protocol, and cross-validation over its folds.

:func:`load_split` gives a training configuration's samples (fold ``cfg.fold`` of ``n_folds``, or
the no-fold split), :func:`train_run` trains one run folder on them. A cross-validation trains fold
k in ``ROOT/fold-K``; :func:`train_folds` is the one implementation both commands use - a fold with
weights is skipped, a fold with a started run is resumed, a new fold gets the base configuration
with its fold number - and both take their mean from :func:`dmsl_core.runs.mean_nme`:

- ``dmsl cv`` (:func:`open_plan`, :func:`run_cv`): every fold in sequence in one process, or under
  torchrun spread over the ranks as below (:func:`train_folds` with a ``dist``; rank 0 alone writes
  ``cv.json``); ``ROOT/cv.json`` holds the plan (``n_folds``, ``config``) and, after each fold,
  ``results`` (:func:`dmsl_core.runs.cv_summary`: per-fold status and test NME, ``mean``). The app's
  CV table reads that summary.
- ``dmsl train --fold all`` / ``--fold 0,1,2`` (:func:`train_folds` with a ``dist``, then
  :func:`write_cv_report`): the folds given, fold k on rank k mod N under torchrun, a fold that fails
  does not stop the others; ``ROOT/cv_report.json`` (per-fold status, ``nme_test`` / ``nme_val``,
  ``mean_nme_test``).

No printing here: the commands pass callbacks (``on_data``, ``on_failed``, the events) and print.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from .models.weights import CARD_NAME, WEIGHTS_NAME
from .runs import CV_FILE, cv_summary, fold_dir, mean_nme, run_status, saved_config

__all__ = ["CV_FILE", "CV_REPORT_FILE", "SKIPPED", "SplitSamples", "load_split", "train_run", "train_folds",
           "fold_summary", "cv_report", "write_cv_report", "open_plan", "run_cv", "fold_dir"]

#: ``dmsl train --fold all``'s report beside the folds
CV_REPORT_FILE = "cv_report.json"
#: a fold's status in :func:`train_folds`'s results when it already had its weights
SKIPPED = "skipped (already trained)"


@dataclass
class SplitSamples:
    """A configuration's samples: ``train`` / ``val`` / ``test`` and their subjects, and the
    loader's report (black visible images dropped, files skipped)."""
    train: list
    val: list
    test: list
    subjects: tuple[list, list, list] = ((), (), ())
    report: object = None

    def __iter__(self):   # train, val, test = split
        return iter((self.train, self.val, self.test))


def load_split(cfg, n_folds: int) -> SplitSamples:
    """The samples of ``cfg.data`` (``cfg.spectra``) in the trainer's split: fold ``cfg.fold`` of the
    ``n_folds``-fold protocol (:func:`dmsl_core.data.splits.split_subjects`)."""
    from .data.folder import LoadReport, load_samples
    from .data.splits import split_subjects
    train_s, val_s, test_s = split_subjects(cfg.data, cfg.fold, n_folds)
    rep = LoadReport()
    train = load_samples(cfg.data, cfg.spectra, subjects=train_s, report=rep)
    val = load_samples(cfg.data, cfg.spectra, subjects=val_s, report=rep) if val_s else []
    test = load_samples(cfg.data, cfg.spectra, subjects=test_s, report=rep) if test_s else []
    return SplitSamples(train, val, test, (train_s, val_s, test_s), rep)


def train_run(cfg, run_dir, n_folds: int, resume: bool = False, on_event=None, control=None, dist=None,
              on_data: Optional[Callable[[SplitSamples], None]] = None) -> Path:
    """Load the run's samples (:func:`load_split`, then ``on_data(split)``) and train
    (:func:`dmsl_core.training.train`); returns the weights path."""
    from .training import train
    split = load_split(cfg, n_folds)
    if on_data is not None:
        on_data(split)
    return train(cfg, run_dir, split.train, split.val, split.test, on_event=on_event, resume=resume,
                 control=control, dist=dist)


def fold_summary(run: str | os.PathLike) -> dict:
    """A finished fold's ``nme_test`` and ``nme_val`` (its model card's)."""
    card = json.loads((Path(run) / CARD_NAME).read_text())
    return {"nme_test": card.get("nme_test"), "nme_val": card.get("nme_val")}


def _fold_config(run: Path, k: int, base, device, num_threads, name_prefix, check_model: bool):
    """Fold k's configuration and whether it resumes: the saved one of a started fold, else
    ``base`` with fold k (and the name ``PREFIX-foldK`` with a prefix)."""
    resume = (run / "config.json").exists()
    if resume:
        cfg = saved_config(run, device, num_threads)
        if check_model and cfg.model != base.model:
            raise ValueError(f"{run}: holds a run of configuration {cfg.model!r}, not {base.model!r}")
        return cfg, True
    cfg = dataclasses.replace(base, fold=k, **({"name": f"{name_prefix}-fold{k}"} if name_prefix else {}))
    if device is not None:
        cfg.device = device
    if num_threads is not None:
        cfg.num_threads = num_threads
    return cfg, False


def train_folds(root: str | os.PathLike, folds: Iterable[int], n_folds: int, base, *,
                device: Optional[str] = None, num_threads: Optional[int] = None, name_prefix: Optional[str] = None,
                check_model: bool = False, dist=None, control=None,
                events: Optional[Callable[[int], Optional[Callable]]] = None,
                on_data: Optional[Callable[[int, SplitSamples], None]] = None,
                on_failed: Optional[Callable[[int, Exception], None]] = None,
                on_done: Optional[Callable[[int, dict], None]] = None) -> list[dict]:
    """Train ``folds`` of the ``n_folds``-fold protocol, fold k in ``ROOT/fold-K``; returns one
    result per fold (``fold``, ``run``, ``rank``, ``status``: trained | resumed | :data:`SKIPPED` |
    failed, and ``nme_test`` / ``nme_val``, or ``error``), sorted by fold.

    A fold with weights is skipped; a fold with ``config.json`` resumes from it (``device`` /
    ``num_threads`` replaced where given); a new fold trains ``base`` with its fold number (the name
    ``PREFIX-foldK`` with ``name_prefix``; ``device`` / ``num_threads`` as for a resumed fold).
    ``check_model``: a fold folder holding a run of another configuration than ``base.model`` (or,
    finished, of another fold) is an error. ``events(k)``: fold k's event callback (it first gets a
    ``fold`` event: ``extra`` fold, folds, run_dir, status). ``control``: a StopControl; a cancel
    (:class:`~dmsl_core.training.TrainingCancelled`) ends the loop.

    ``dist`` (a :class:`~dmsl_core.distributed.DistContext`): fold k runs on rank k mod world size,
    as a one-process training on that rank's device, and a fold that fails is reported
    (``on_failed(k, exc)``, status failed) without stopping the others; every rank gets every
    rank's results. Without ``dist`` every fold runs here and an error ends the loop."""
    from .distributed import DistContext
    from .training import TrainConfig, TrainEvent, TrainingCancelled
    root = Path(root)
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    solo = DistContext(device=dist.device) if dist is not None else None  # no process group inside a fold
    results = []
    for k in [k for k in folds if k % world == rank]:
        run = fold_dir(root, k)
        on_event = events(k) if events is not None else None
        status = run_status(run) if run.exists() else "new"
        if on_event is not None:
            on_event(TrainEvent(kind="fold", message=f"fold {k + 1}/{n_folds}: {status}",
                                extra={"fold": k, "folds": n_folds, "run_dir": str(run), "status": status}))
        res = {"fold": k, "run": str(run), "rank": rank}
        try:
            if (run / WEIGHTS_NAME).exists():
                if check_model:
                    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
                    if saved.model != base.model or saved.fold != k:
                        raise ValueError(f"{run}: holds a run of configuration {saved.model!r} fold {saved.fold}, "
                                         f"not {base.model!r} fold {k}; choose another --out")
                res.update(status=SKIPPED, **fold_summary(run))
            else:
                cfg, resume = _fold_config(run, k, base, device, num_threads, name_prefix, check_model)
                train_run(cfg, run, n_folds, resume, on_event, control, solo,
                          on_data=None if on_data is None else (lambda split, k=k: on_data(k, split)))
                res.update(status="resumed" if resume else "trained", **fold_summary(run))
        except TrainingCancelled:
            raise
        except Exception as exc:  # one failed fold must not stop the others (or hang the gather)
            if dist is None:
                raise
            if on_failed is not None:
                on_failed(k, exc)
            res.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        results.append(res)
        if on_done is not None:
            on_done(k, res)
    if dist is not None:
        results = [r for part in dist.all_gather_object(results) for r in part]
    return sorted(results, key=lambda r: r["fold"])


def cv_report(results: list[dict], n_folds: int, base, world_size: int = 1) -> dict:
    """``cv_report.json``: :func:`train_folds`'s results, the configuration, the dataset and the mean
    over folds of each fold's test NME (:func:`dmsl_core.runs.mean_nme`)."""
    return {"n_folds": n_folds, "folds": results, "config": base.model, "data": str(Path(base.data).resolve()),
            "world_size": world_size, "mean_nme_test": mean_nme(r.get("nme_test") for r in results),
            "note": "mean_nme_test is the mean over folds of each fold's test NME (nme_test of its model.json)"}


def write_cv_report(root: str | os.PathLike, report: dict) -> Path:
    """Write :func:`cv_report`'s dict as ``ROOT/cv_report.json`` (atomically); returns the path."""
    from .atomic import atomic_write_text
    path = Path(root) / CV_REPORT_FILE
    atomic_write_text(path, json.dumps(report, indent=2, allow_nan=False))
    return path


def open_plan(root: str | os.PathLike, n_folds: int, config: Callable[[], object], resume: bool = False) -> dict:
    """``dmsl cv``'s plan in ``ROOT/cv.json``: the saved one with ``resume``; else a new one
    (``n_folds`` and ``config()``'s TrainConfig; the folder is made) - refused where one exists."""
    from .atomic import atomic_write_text
    root = Path(root)
    path = root / CV_FILE
    if resume and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    if path.exists():
        raise ValueError(f"{root}: already holds a cross-validation; use --resume to continue it")
    plan = {"n_folds": int(n_folds), "config": config().to_dict()}
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan, indent=2))
    return plan


def _write_results(root: Path, plan: dict) -> dict:
    from .atomic import atomic_write_text
    summary = cv_summary(root)
    atomic_write_text(root / CV_FILE, json.dumps({**plan, "results": summary}, indent=2))
    return summary


def run_cv(root: str | os.PathLike, plan: dict, *, device: Optional[str] = None, num_threads: Optional[int] = None,
           on_event=None, control=None, on_data: Optional[Callable[[int, SplitSamples], None]] = None, dist=None,
           events: Optional[Callable[[int], Optional[Callable]]] = None,
           on_failed: Optional[Callable[[int, Exception], None]] = None) -> dict:
    """``dmsl cv``: every fold of ``plan`` (:func:`open_plan`) in sequence (:func:`train_folds`),
    ``cv.json``'s ``results`` rewritten after each fold trained and at the end; returns those results
    (:func:`dmsl_core.runs.cv_summary`). A cancel through ``control`` raises
    :class:`~dmsl_core.training.TrainingCancelled`; the finished folds stay (``--resume`` continues).
    ``on_event``: every fold's event callback, or ``events(k)`` fold k's.

    ``dist`` (a :class:`~dmsl_core.distributed.DistContext`, every rank with the same ``plan``): the
    folds are spread over the ranks as :func:`train_folds` spreads them (fold k on rank k mod world
    size; a fold that fails is reported through ``on_failed`` and left unfinished in the results);
    rank 0 alone writes ``cv.json``, and every rank returns rank 0's results."""
    from .training import TrainConfig
    root = Path(root)
    n = int(plan["n_folds"])
    main = dist is None or dist.is_main

    def done(k: int, res: dict) -> None:
        if main and res["status"] != SKIPPED:
            _write_results(root, plan)
    train_folds(root, range(n), n, TrainConfig.from_dict(plan["config"]), device=device, num_threads=num_threads,
                dist=dist, control=control, events=events or (lambda k: on_event), on_data=on_data,
                on_failed=on_failed, on_done=done)
    summary = _write_results(root, plan) if main else None  # after train_folds' gather: every fold has ended
    return summary if dist is None else dist.all_gather_object(summary)[0]
