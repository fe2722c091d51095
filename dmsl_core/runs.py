"""Training run folders and the models the app knows: listing, status, metrics, rename, delete.

A *run folder* is what ``dmsl train --out RUN`` writes: ``config.json``, ``metrics.jsonl``,
``checkpoints/last.pt`` (resumable) and, when finished, ``model.safetensors`` + ``model.json``.
No Qt here: the app's model list and training panel call these functions.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .models.weights import CARD_NAME, WEIGHTS_NAME, assets_dir, shipped_models

__all__ = ["ModelEntry", "card_nme", "read_metrics", "run_status", "list_models", "list_runs", "rename_run", "delete_run",
           "is_run_folder", "saved_config", "cv_summary", "mean_nme"]


@dataclass
class ModelEntry:
    """One model the app can use: a shipped model or a training run."""

    name: str
    path: str                      # the folder (weights spec for a finished run)
    kind: str                      # shipped | run
    status: str                    # complete | resumable | started
    config: str = ""
    data: str = ""
    date: str = ""
    nme: dict = field(default_factory=dict)   # {"th", "vis", "all"} where measured
    nme_source: str = ""           # heldout | test | val (which figure of the card the NME is)
    nme_note: str = ""             # what the NME was measured on, in words (see :func:`card_nme`)
    size_bytes: int = 0
    card: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status == "complete"


def is_run_folder(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "config.json").exists() or (p / WEIGHTS_NAME).exists())


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The epoch records of ``metrics.jsonl`` (a line cut by a kill is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "phase" in rec and "epoch" in rec:
            out.append(rec)
    return out


def run_status(run_dir: str | os.PathLike) -> str:
    """``complete`` (weights written), ``resumable`` (a checkpoint exists) or ``started``."""
    p = Path(run_dir)
    if (p / WEIGHTS_NAME).exists():
        return "complete"
    if (p / "checkpoints" / "last.pt").exists():
        return "resumable"
    return "started"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _entry(folder: Path, kind: str) -> ModelEntry:
    card: dict = {}
    cp = folder / CARD_NAME
    if cp.exists():
        try:
            card = json.loads(cp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            card = {"error": f"{cp}: unreadable model card ({exc})"}
    cfg: dict = {}
    if (folder / "config.json").exists():
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cfg = {}
    training = card.get("training") or cfg
    nme, src, note = card_nme(card)
    date = card.get("created") or ""
    if not date:
        ref = folder / WEIGHTS_NAME if (folder / WEIGHTS_NAME).exists() else folder
        date = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ref.stat().st_mtime))
    return ModelEntry(name=card.get("name") or folder.name if kind == "shipped" else folder.name,
                      path=str(folder), kind=kind, status=run_status(folder),
                      config=(card.get("config") or {}).get("name") or training.get("model", ""),
                      data=str(training.get("data", "")), date=date, nme=nme, nme_source=src, nme_note=note,
                      size_bytes=_size(folder / WEIGHTS_NAME) if (folder / WEIGHTS_NAME).exists() else _size(folder),
                      card=card)


def _data_words(card: dict) -> str:
    """What kind of data the card's model saw, in a word: "generated" (``dmsl synth``) or the folder's name."""
    recipe = card.get("data_recipe") or {}
    if "synth" in str(recipe.get("generator", "")):
        return "generated"
    data = (card.get("heldout_eval") or {}).get("data") or (card.get("training") or {}).get("data") or ""
    return Path(str(data)).name if data else ""


def card_nme(card: dict) -> tuple[dict, str, str]:
    """The one NME figure a model card stands for: ``(nme, source, note)``.

    ``heldout_eval`` first (the shipped model's measured figure: the shipped weights, with the settings it
    ships with, on the held-out test subjects - the figure the README quotes), else ``nme_test`` (the run's
    test subjects after training), else ``nme_val``. ``note`` says in words what it was measured on, e.g.
    ``"5 held-out generated subjects (205 images, fold 0) · refine both, tta flip-final"``."""
    kind = _data_words(card)
    h = card.get("heldout_eval")
    if isinstance(h, dict) and isinstance(h.get("nme"), dict):
        subj = h.get("test_subjects") or []
        bits = [f"{len(subj)} held-out {kind + ' ' if kind else ''}subjects" if subj else "held-out subjects"]
        extra = [x for x in (f"{h['n_images']} images" if h.get("n_images") else "",
                             f"fold {h['fold']}" if h.get("fold") is not None else "") if x]
        if extra:
            bits[0] += f" ({', '.join(extra)})"
        settings = [f"{k} {h[k]}" for k in ("refine", "tta") if h.get(k)]
        if settings:
            bits.append(", ".join(settings))
        return {k: h["nme"].get(k) for k in ("th", "vis", "all")}, "heldout", " · ".join(bits)
    fold = (card.get("training") or {}).get("fold")
    for tag, words in (("test", "test subjects"), ("val", "validation subjects")):
        n = card.get(f"nme_{tag}")
        if isinstance(n, dict):
            where = f"{kind + ' ' if kind else ''}{words}" + (f" of fold {fold}" if fold is not None else "")
            if n.get("n_images"):
                where += f" ({n['n_images']} images)"
            return {k: n.get(k) for k in ("th", "vis", "all")}, tag, where
    if isinstance(card.get("nme"), dict):
        return {k: card["nme"].get(k) for k in ("th", "vis", "all")}, "card", "the model card's figure"
    return {}, "", ""


def list_runs(root: str | os.PathLike) -> list[ModelEntry]:
    """Run folders directly under ``root`` (newest first); a missing root gives an empty list."""
    r = Path(root)
    if not r.is_dir():
        return []
    runs = [_entry(p, "run") for p in r.iterdir() if is_run_folder(p)]
    return sorted(runs, key=lambda e: e.date, reverse=True)


def list_models(runs_root: Optional[str | os.PathLike] = None) -> list[ModelEntry]:
    """Shipped models (``assets/models``) then the runs under ``runs_root``."""
    out = [_entry(assets_dir() / "models" / n, "shipped") for n in shipped_models()]
    if runs_root:
        out += list_runs(runs_root)
    return out


def _check_run(path: str | os.PathLike) -> Path:
    p = Path(path).resolve()
    if not is_run_folder(p):
        raise ValueError(f"{p}: not a training run folder (no config.json or {WEIGHTS_NAME})")
    if assets_dir().resolve() in p.parents:
        raise ValueError(f"{p}: shipped models cannot be renamed or deleted")
    return p


def rename_run(path: str | os.PathLike, new_name: str) -> Path:
    """Rename a run folder in place (same parent); the card's name follows when it had the old one."""
    p = _check_run(path)
    new_name = new_name.strip()
    if not new_name or "/" in new_name or "\\" in new_name or new_name in (".", ".."):
        raise ValueError(f"{new_name!r} is not a valid folder name")
    dest = p.with_name(new_name)
    if dest.exists():
        raise ValueError(f"{dest} already exists")
    p.rename(dest)
    cp = dest / CARD_NAME
    if cp.exists():
        try:
            card = json.loads(cp.read_text(encoding="utf-8"))
            if card.get("name") == p.name:
                from .atomic import atomic_write_text
                card["name"] = new_name
                atomic_write_text(cp, json.dumps(card, indent=2))
        except (OSError, json.JSONDecodeError):
            pass  # the folder is renamed; an unreadable card stays as it was
    return dest


def delete_run(path: str | os.PathLike) -> None:
    """Delete a run folder (refuses anything that is not one, and shipped models)."""
    shutil.rmtree(_check_run(path))


def preview_predictions(run_dir: str | os.PathLike, n: int = 4, device: str = "cpu") -> list[dict]:
    """Predictions of the run's current weights (``checkpoints/last.pt``) on ``n`` fixed validation
    images (training images when the run has no validation split) - the training panel shows them
    after each epoch. Each item: ``image`` (array), ``pred`` / ``gt`` ((68, 2) pixels), ``box`` (the
    final box B, pixels), ``nme`` (of the whole pipeline: M_b's box, then M_l),
    ``spectrum``, ``variation``, ``path``, ``phase`` / ``epoch`` of the checkpoint."""
    import numpy as np
    import torch

    from .data.splits import split_subjects as _split_subjects
    from .data.folder import load_samples
    from .evaluation import nme_per_image
    from .models import create_models, get_config
    from .pipeline import Predictor
    from .training import TrainConfig

    run = Path(run_dir)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text(encoding="utf-8")))
    ck_path = run / "checkpoints" / "last.pt"
    if not ck_path.exists():
        raise FileNotFoundError(f"{ck_path}: no checkpoint yet")
    ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    mcfg = get_config(cfg.model)
    mb, ml = create_models(mcfg)
    mb.load_state_dict(ck["boundary"])
    ml.load_state_dict(ck["landmark"])
    n_folds = 10
    cv_plan = run.parent / CV_FILE  # a fold of ``dmsl cv``: its plan knows the number of folds
    if cfg.fold is not None and cv_plan.exists():
        try:
            n_folds = int(json.loads(cv_plan.read_text(encoding="utf-8")).get("n_folds", 10))
        except (OSError, ValueError, TypeError):
            pass
    train_s, val_s, _ = _split_subjects(cfg.data, cfg.fold, n_folds)
    samples = load_samples(cfg.data, cfg.spectra, subjects=val_s or train_s)
    if not samples:
        return []
    idx = sorted({int(round(i)) for i in np.linspace(0, len(samples) - 1, min(n, len(samples)))})
    chosen = [samples[i] for i in idx]
    images = [s.load() for s in chosen]
    preds = Predictor(mb, ml, mcfg, device=device).predict(images)
    out = []
    for s, img, p in zip(chosen, images, preds):
        out.append({"image": img, "pred": np.asarray(p.landmarks, float), "box": np.asarray(p.boundary, float),
                    "gt": s.landmarks,
                    "nme": nme_per_image(p.landmarks, s.landmarks), "spectrum": s.spectrum,
                    "variation": s.variation, "path": s.name, "phase": int(ck["phase"]), "epoch": int(ck["epoch"])})
    return out


CV_FILE = "cv.json"
#: the NME figures of a model card's ``nme_test`` a cross-validation summarises
NME_KEYS = ("th", "vis", "all")


def is_cv_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / CV_FILE).exists()


def fold_dir(root: str | os.PathLike, fold: int) -> Path:
    """The run folder of fold ``fold`` of a cross-validation in ``root``: ``ROOT/fold-K``."""
    return Path(root) / f"fold-{fold}"


def cv_summary(root: str | os.PathLike) -> dict:
    """Per-fold results of a cross-validation folder (``dmsl cv``): each fold's status and its test
    NME (TH / VIS / all, from the fold's model card), and the mean over the finished folds
    (:func:`mean_nme`)."""
    root = Path(root)
    plan = json.loads((root / CV_FILE).read_text(encoding="utf-8"))
    n = int(plan["n_folds"])
    folds = []
    for k in range(n):
        d = fold_dir(root, k)
        row = {"fold": k, "status": run_status(d) if d.exists() else "not started", "th": None, "vis": None,
               "all": None, "n_images": 0, "run_dir": str(d)}
        cp = d / CARD_NAME
        if row["status"] == "complete" and cp.exists():
            try:
                t = json.loads(cp.read_text(encoding="utf-8")).get("nme_test") or {}
            except (OSError, json.JSONDecodeError):
                t = {}
            row.update({k2: t.get(k2) for k2 in NME_KEYS}, n_images=t.get("n_images", 0))
        folds.append(row)
    done = [f for f in folds if f["status"] == "complete"]
    return {"n_folds": n, "folds": folds, "mean": mean_nme(done), "complete": len(done)}


def mean_nme(nmes) -> dict:
    """The cross-validation mean: for each of TH / VIS / all, the mean over the folds' test NMEs
    (dicts with those keys, e.g. a model card's ``nme_test``; None or a missing key: that fold has
    none) - None where no fold has one. ``dmsl cv`` (``cv.json``, :func:`cv_summary`) and ``dmsl
    train --fold all`` (``cv_report.json``, :func:`dmsl_core.crossval.cv_report`) both use it."""
    import numpy as np

    nmes = [n for n in nmes if n]
    out = {}
    for key in NME_KEYS:
        vals = [n[key] for n in nmes if n.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


def saved_config(run_dir: str | os.PathLike, device: Optional[str] = None, num_threads: Optional[int] = None):
    """The :class:`~dmsl_core.training.TrainConfig` saved in a run folder (``config.json``), with
    ``device`` / ``num_threads`` replaced where given (a resumed run may run elsewhere)."""
    from .training import TrainConfig

    path = Path(run_dir) / "config.json"
    try:
        cfg = TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: not a valid training configuration ({exc})") from None
    if device is not None:
        cfg.device = device
    if num_threads is not None:
        cfg.num_threads = num_threads
    return cfg
