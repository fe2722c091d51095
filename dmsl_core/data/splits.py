"""The paper's subject-wise k-fold protocol (10 folds: 1 group tests, 2 validate, 7 train).

Subjects are sorted by ID (natural order: numbers inside IDs compare as numbers, so ``s2`` comes
before ``s10``; purely numeric IDs sort numerically) and cut into ``n_folds`` groups with
``np.array_split`` (group sizes differ by at most one, larger groups first). Fold ``k`` tests on
group ``k``, validates on groups ``(k+1) % n`` and ``(k+2) % n`` and trains on the others. Every
subject is tested exactly once over the folds, and no subject has two roles within a fold.

``dmsl split --data DIR`` (:mod:`dmsl_core.commands.data`) writes ``DIR/splits.json``::

    {"version": 1, "n_folds": 10, "n_val_groups": 2, "protocol": "...",
     "groups": [[subject, ...], ...],
     "folds": [{"index": 0, "test": [...], "val": [...], "train": [...]}, ...]}
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from .folder import DatasetError, read_manifest
from .imageio import atomic_write_text
from .names import natural_key

__all__ = ["Fold", "SPLITS_FILE", "make_folds", "make_groups", "sort_subjects", "write_splits", "read_splits",
           "dataset_subjects", "fold_subjects", "format_folds", "split_subjects"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
SPLITS_FILE = "splits.json"
PROTOCOL = ("subjects sorted by ID, np.array_split into n_folds groups; fold k tests on group k, "
            "validates on groups (k+1)%n and (k+2)%n, trains on the rest")


@dataclass
class Fold:
    """One fold of the protocol: subject ids per role."""

    index: int
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)

    def role_of(self, subject: str) -> Optional[str]:
        """``train``, ``val``, ``test`` or None for a subject outside the fold."""
        for role in ("test", "val", "train"):
            if subject in getattr(self, role):
                return role
        return None


def sort_subjects(subjects: Iterable[object]) -> list[str]:
    """Unique subject ids as strings, sorted by ID (natural order)."""
    uniq = {str(s).strip() for s in subjects}
    uniq.discard("")
    return sorted(uniq, key=lambda s: (natural_key(s), s))


def make_groups(subjects: Iterable[object], n_folds: int = 10) -> list[list[str]]:
    """The ``n_folds`` groups of sorted subjects (``np.array_split`` of the sorted list)."""
    subs = sort_subjects(subjects)
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    if len(subs) < n_folds:
        raise ValueError(f"{len(subs)} subject(s) cannot make {n_folds} folds: every fold needs at least "
                         "one test subject (use fewer folds)")
    return [[str(s) for s in g] for g in np.array_split(np.array(subs, dtype=object), n_folds)]


def make_folds(subjects: Iterable[object], n_folds: int = 10, n_val_groups: int = 2) -> list[Fold]:
    """The paper's folds: fold k tests group k, validates groups k+1..k+n_val_groups (mod n), trains the rest.

    Raises ValueError for fewer subjects than folds, or too few folds to leave a training group.
    """
    if n_val_groups < 0:
        raise ValueError(f"n_val_groups must be >= 0, got {n_val_groups}")
    if n_folds < n_val_groups + 2:
        raise ValueError(f"{n_folds} folds leave no training group (1 test + {n_val_groups} validation groups); "
                         f"use at least {n_val_groups + 2} folds")
    groups = make_groups(subjects, n_folds)
    folds = []
    for k in range(n_folds):
        val_idx = {(k + j) % n_folds for j in range(1, n_val_groups + 1)}
        folds.append(Fold(
            index=k, test=list(groups[k]),
            val=[s for j in sorted(val_idx, key=lambda j: (j - k) % n_folds) for s in groups[j]],
            train=[s for j in range(n_folds) if j != k and j not in val_idx for s in groups[j]],
        ))
    return folds


def dataset_subjects(data_dir: PathLike) -> list[str]:
    """Sorted subject ids of a dataset folder's manifest."""
    return sort_subjects(r.subject for r in read_manifest(data_dir))


def write_splits(data_dir: PathLike, folds: Sequence[Fold], n_val_groups: int = 2) -> Path:
    """Write ``DATA_DIR/splits.json`` atomically; returns its path."""
    path = Path(data_dir) / SPLITS_FILE
    doc = {"version": 1, "n_folds": len(folds), "n_val_groups": n_val_groups, "protocol": PROTOCOL,
           "groups": [f.test for f in folds], "folds": [asdict(f) for f in folds]}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def read_splits(path: PathLike) -> list[Fold]:
    """Folds from a ``splits.json`` (a file, or a dataset folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / SPLITS_FILE
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    raw = doc.get("folds") if isinstance(doc, dict) else None
    if not isinstance(raw, list) or not raw:
        raise DatasetError(f"{p}: no 'folds' list")
    folds = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict) or not all(isinstance(f.get(r), list) for r in ("train", "val", "test")):
            raise DatasetError(f"{p}: fold {i} needs train, val and test lists")
        fold = Fold(index=int(f.get("index", i)), train=[str(s) for s in f["train"]],
                    val=[str(s) for s in f["val"]], test=[str(s) for s in f["test"]])
        overlap = (set(fold.train) & set(fold.val)) | (set(fold.train) & set(fold.test)) | (set(fold.val) & set(fold.test))
        if overlap:
            raise DatasetError(f"{p}: fold {fold.index} puts subject(s) {sorted(overlap)[:5]} in two roles")
        folds.append(fold)
    if sorted(f.index for f in folds) != list(range(len(folds))):
        raise DatasetError(f"{p}: fold indices are not 0..{len(folds) - 1}")
    return sorted(folds, key=lambda f: f.index)


def fold_subjects(data_dir: PathLike, k: int, n_folds: int = 10) -> Fold:
    """Fold ``k`` of a dataset: from ``DATA_DIR/splits.json`` when it has ``n_folds`` folds, else computed.

    A ``splits.json`` with another fold count is ignored (logged). Subjects of the manifest that
    the file does not mention are logged as a warning (they take part in no role).
    """
    if not 0 <= k < n_folds:
        raise ValueError(f"fold {k} does not exist; folds are 0..{n_folds - 1}")
    d = Path(data_dir)
    path = d / SPLITS_FILE
    if path.exists():
        folds = read_splits(path)
        if len(folds) == n_folds:
            try:
                listed = {s for f in folds for s in (*f.train, *f.val, *f.test)}
                extra = set(dataset_subjects(d)) - listed
                if extra:
                    log.warning("%s: %d subject(s) of the manifest are in no fold (e.g. %s); rerun `dmsl split`",
                                path, len(extra), sorted(extra)[0])
            except DatasetError:
                pass
            return folds[k]
        log.warning("%s has %d folds, %d asked for: computing the split instead", path, len(folds), n_folds)
    return make_folds(dataset_subjects(d), n_folds)[k]


def split_subjects(data_dir: PathLike, fold: Optional[int], n_folds: int = 10) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test) subject lists of a dataset folder, the trainer's split: fold ``fold`` of the
    ``n_folds``-fold protocol (:func:`fold_subjects`), or without a fold every 5th subject (sorted
    order) validates and none tests (a single subject trains alone)."""
    if fold is not None:
        f = fold_subjects(data_dir, fold, n_folds)
        return list(f.train), list(f.val), list(f.test)
    subjects = sorted({r.subject for r in read_manifest(data_dir)})
    if len(subjects) < 2:
        return subjects, [], []
    val = [s for i, s in enumerate(subjects) if i % 5 == 4] or [subjects[-1]]
    return [s for s in subjects if s not in val], val, []


def _short(ids: Sequence[str], width: int) -> str:
    s = ", ".join(ids)
    return s if len(s) <= width else s[: max(0, width - 3)].rstrip(", ") + "..."


def format_folds(folds: Sequence[Fold], width: int = 48) -> str:
    """A text table: fold, counts per role, test and validation subjects."""
    lines = [f"{'fold':>4}  {'train':>5}  {'val':>4}  {'test':>4}  {'test subjects':<{width}}  val subjects"]
    for f in folds:
        lines.append(f"{f.index:>4}  {len(f.train):>5}  {len(f.val):>4}  {len(f.test):>4}  "
                     f"{_short(f.test, width):<{width}}  {_short(f.val, width)}")
    return "\n".join(lines)
