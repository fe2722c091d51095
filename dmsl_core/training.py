"""Two-stage training of M_b and M_l (the paper's procedure), with events, checkpoints and resume.

For each model: stage 1 trains the U-Net alone on its mask (pixel-wise BCE: the box mask for
M_b, Algorithm 1's glow for M_l); stage 2 freezes the U-Net and trains the fully connected head
on the regression loss (eq. 1 / eq. 2). Because the U-Net is frozen in stage 2 its outputs are
computed once and cached (``cache_features``), which makes stage 2 fast.

Stage 3 (ours, not the paper's; opt in with ``stages=(1, 2, 3)`` or ``(3,)`` after ``init_weights``)
fine-tunes the whole model - U-Net and head together - on the distances NME measures (mean point
distance for M_l, mean absolute box error for M_b), at ``joint_lr`` for ``joint_epochs``. The
frozen U-Net of stage 2 is what limits the paper's models: their training NME (ground-truth
boxes) is about their test NME, i.e. they underfit. ``box_jitter`` perturbs the box M_l's input
is blacked out with during training (M_b's boxes at inference are not the ground truth's).

The run folder holds ``config.json``, ``metrics.jsonl`` (one line per epoch),
``checkpoints/last.pt`` (written atomically after every epoch: models, optimiser, phase, epoch,
the best weights so far), ``checkpoints/best-<phase>.pt`` and, when done, ``model.safetensors`` +
``model.json``. ``train(..., resume=True)`` continues from ``last.pt`` after a crash or kill
(the epoch in progress is redone). Checkpoints are loaded with ``weights_only=True``.

**Several processes** (``torchrun``; pass ``dist=dmsl_core.distributed.init_from_env()``): the part
being trained (U-Net in stage 1, head in stage 2) is wrapped in DistributedDataParallel; every
rank draws the same permutation of each epoch's items and takes a contiguous share of each
*global* batch of ``batch_size`` items, and each rank's loss is weighted by its share so the
averaged gradient equals the one-process gradient of the whole batch (also for an uneven last
batch). Augmentations are drawn per item (seeded by seed, phase, epoch and item), so the
training path does not depend on the number of processes. Train loss and validation figures are
all-reduced sums and counts. Each rank computes the whole stage-2 feature cache itself (simple and
deterministic; it costs one U-Net forward pass per cached view on every rank). Rank 0 alone writes
files and emits events; the others wait at a barrier after each write. Checkpoints hold plain
(non-DDP) state dicts, so a run can be resumed with any number of processes.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from . import __version__, configio
from .atomic import atomic_write_bytes, atomic_write_text
from .data.sample import Sample
from .device import describe_device, resolve_device
from .distributed import DistContext, shard_range
from .evaluation import card_nme, evaluate_predictor
from .losses import (boundary_loss, box_distance_loss, heatmap_landmark_loss, landmark_loss, mask_loss,
                     point_distance_loss)
from .models import create_models, get_config
from .models.weights import load_weights, save_weights
from .crops import Augment, ViewBank, make_item

log = logging.getLogger("dmsl.training")

PHASES = [("boundary", 1), ("boundary", 2), ("boundary", 3), ("landmark", 1), ("landmark", 2), ("landmark", 3)]


@dataclass
class TrainConfig:
    model: str = "dmsl-compact"          # a registered configuration name
    train_models: str = "both"           # both | boundary | landmark
    stages: tuple[int, ...] = (1, 2)
    epochs: int = 30                     # stage-1 (U-Net) epochs
    head_epochs: int = 30                # stage-2 (FC head) epochs
    batch_size: int = 16
    lr: float = 1e-3
    head_lr: float = 1e-3
    joint_epochs: int = 20               # stage-3 (joint fine-tuning, not in the paper) epochs
    joint_lr: float = 2e-4               # stage-3 learning rate
    box_jitter: float = 0.0              # M_l: std of the blackout box's error (fraction of its w, h)
    lr_schedule: str = "constant"        # constant | cosine (per stage: lr -> 5% of lr over its epochs)
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    mirror: bool = True                  # the paper's mirrored copies (with the index permutation)
    cache_features: bool = True
    head_aug_copies: int = 3             # augmented views per image cached for stage 2 (augment on)
    num_threads: Optional[int] = None
    init_weights: Optional[str] = None   # start from these weights (fine-tuning)
    init_models: str = "both"            # which models take init_weights: both | boundary | landmark
    data: str = ""                       # what the data is (for the model card)
    spectra: tuple[str, ...] = ("vis", "th")
    fold: Optional[int] = None
    name: str = ""                       # model name for the card (default: the run folder's name)

    def to_dict(self) -> dict:
        return configio.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "TrainConfig":
        """A configuration from :meth:`to_dict`'s keys (``dmsl_version``, written beside it, is ignored);
        an unknown key or a value of the wrong type is a ``ValueError`` (:mod:`dmsl_core.configio`)."""
        return configio.from_dict(cls, d, strict=True, where=where, skip=("dmsl_version",))

    def phases(self) -> list[tuple[str, int]]:
        which = {"both": ("boundary", "landmark"), "boundary": ("boundary",), "landmark": ("landmark",)}
        if self.train_models not in which:
            raise ValueError(f"train_models must be both, boundary or landmark, got {self.train_models!r}")
        return [(m, s) for m, s in PHASES if m in which[self.train_models] and s in self.stages]


#: the job file the Train tab writes into a new run folder (``dmsl train --job RUN/job.json``)
JOB_FILE = "job.json"


def write_job(run_dir: str | os.PathLike, cfg: TrainConfig) -> Path:
    """Write ``cfg`` as ``RUN/job.json`` (:meth:`TrainConfig.to_dict`'s keys; the folder is made) for
    ``dmsl train --job``; returns the file."""
    path = Path(run_dir) / JOB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2) + "\n")
    return path


def read_job(path: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` of a job file (one JSON object with :meth:`TrainConfig.to_dict`'s
    keys; any left out take the dataclass's defaults; a run's ``config.json`` is one too). An
    unknown key, a value of the wrong type or a file that is not such an object is a ``ValueError``
    naming the file and the key."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not a JSON job file ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{p}: a job file holds one JSON object (the training configuration), "
                         f"not a {type(d).__name__}")
    cfg = configio.from_dict(TrainConfig, d, strict=True, where=str(p), what="in the job file",
                             skip=("dmsl_version",))
    for k, v in d.items():
        want = None
        if k == "stages" and any(s not in (1, 2, 3) for s in v):
            want = "a list of stages from 1, 2, 3"
        if k == "spectra" and any(s not in ("vis", "th") for s in v):
            want = 'a list of "vis" and / or "th"'
        if k in ("train_models", "init_models") and v not in ("both", "boundary", "landmark"):
            want = '"both", "boundary" or "landmark"'
        if want:
            raise ValueError(f"{p}: key {k!r} in the job file must be {want}, not {json.dumps(v)}")
    return cfg


@dataclass
class TrainEvent:
    kind: str                    # start | phase_start | step | epoch | phase_end | status | done | cancelled
    phase: int = 0
    n_phases: int = 0
    model: str = ""
    stage: int = 0
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: Optional[float] = None
    val_loss: Optional[float] = None
    val_nme: Optional[float] = None
    best: bool = False
    eta_s: Optional[float] = None
    images_per_s: Optional[float] = None
    message: str = ""
    extra: dict = field(default_factory=dict)


class TrainingCancelled(Exception):
    pass


class StopControl:
    """Cooperative stop: ``early()`` ends the current stage at its best epoch and goes on to the
    next; ``cancel()`` stops after the current step (resumable from the last checkpoint)."""

    def __init__(self) -> None:
        self._early = threading.Event()
        self._cancel = threading.Event()

    def early(self) -> None:
        self._early.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def take_early(self) -> bool:
        if self._early.is_set():
            self._early.clear()
            return True
        return False


STOP_EARLY_FILE = "STOP_EARLY"
CANCEL_FILE = "CANCEL"


class FileStopControl(StopControl):
    """A :class:`StopControl` that another process can drive through files in the run folder:
    ``STOP_EARLY`` (ends the current stage at its best epoch; the file is removed when taken) and
    ``CANCEL`` (stops after the current step; resumable). Used by ``dmsl train`` so a GUI (or a
    user with ``touch``) can stop a training subprocess on every OS; see :func:`request_stop`."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)

    def clear_requests(self) -> None:
        for name in (STOP_EARLY_FILE, CANCEL_FILE):
            try:
                (self.run_dir / name).unlink()
            except FileNotFoundError:
                pass

    @property
    def cancelled(self) -> bool:
        if not self._cancel.is_set() and (self.run_dir / CANCEL_FILE).exists():
            self._cancel.set()
        return self._cancel.is_set()

    def take_early(self) -> bool:
        f = self.run_dir / STOP_EARLY_FILE
        if f.exists():
            try:
                f.unlink()
            except FileNotFoundError:
                pass
            self._early.set()
        return super().take_early()


def request_stop(run_dir: str | os.PathLike, kind: str = "early") -> Path:
    """Ask a ``dmsl train`` process working on ``run_dir`` to stop: ``early`` or ``cancel``."""
    names = {"early": STOP_EARLY_FILE, "cancel": CANCEL_FILE}
    if kind not in names:
        raise ValueError(f"stop kind must be early or cancel, got {kind!r}")
    path = Path(run_dir) / names[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return path


def event_to_json(e: "TrainEvent") -> str:
    """One line of JSON for a :class:`TrainEvent` (non-finite floats become null)."""
    d = dataclasses.asdict(e)

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.floating,)):
            return clean(float(v))
        if isinstance(v, (np.integer,)):
            return int(v)
        return v
    return json.dumps(clean(d), default=str)


def event_from_dict(d: dict) -> "TrainEvent":
    known = {f.name for f in dataclasses.fields(TrainEvent)}
    return TrainEvent(**{k: v for k, v in d.items() if k in known})


def _atomic_torch_save(obj, path: Path) -> None:
    """Serialise in memory, then a verified atomic write: a full disk is an ``OSError`` naming ``path``
    (torch.save into a file says only "file write failed") and the previous checkpoint stays."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class CheckpointError(ValueError):
    """A ``last.pt`` that cannot be resumed from; the message names it and says why."""


_CHECKPOINT_KEYS = ("phase", "epoch", "boundary", "landmark")


def load_checkpoint(path: Path, model: str, boundary: torch.nn.Module, landmark: torch.nn.Module) -> dict:
    """The training state of ``path`` (a ``last.pt``) loaded into the two models; anything unusable (not a
    checkpoint, empty, cut off, a pickle needing code, missing keys, another configuration) is a
    :class:`CheckpointError` naming the file. Loaded with ``weights_only=True``: nothing is unpickled."""
    import pickle
    import zipfile

    hint = "delete it (the run restarts from the last finished stage) or train into a new folder"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    if size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes); {hint}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a checkpoint this program loads (it needs code to unpickle: "
                              f"{first[:160]}); {hint}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the checkpoint is unreadable (cut off or corrupt: {first[:160]}); "
                              f"{hint}") from None
    if not isinstance(ck, dict) or any(k not in ck for k in _CHECKPOINT_KEYS):
        have = sorted(map(str, ck)) if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path}: not a DMSL training checkpoint (expected keys {list(_CHECKPOINT_KEYS)}, "
                              f"found {have}); {hint}")
    try:
        saved = json.loads(ck["config"]).get("model") if ck.get("config") else None
    except (TypeError, ValueError, AttributeError):
        saved = None
    if saved is not None and saved != model:
        raise CheckpointError(f"{path}: the checkpoint is of configuration {saved!r}, this run trains {model!r}; "
                              f"{hint}")
    try:
        boundary.load_state_dict(_plain_state(ck["boundary"]))
        landmark.load_state_dict(_plain_state(ck["landmark"]))
        state = {"phase": int(ck["phase"]), "epoch": int(ck["epoch"])}
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the checkpoint's weights do not fit configuration {model!r} "
                              f"({first[:160]}); {hint}") from None
    return {**state, "best": ck.get("best"), "best_state": ck.get("best_state"), "opt": ck.get("opt")}


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _state_cpu(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def _plain_state(state: dict) -> dict:
    """A state dict without DistributedDataParallel's ``module.`` prefixes."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


class _Call(torch.nn.Module):
    """``model.<method>(x)`` as a module's forward, so DDP can wrap the trained part of a model."""

    def __init__(self, model: torch.nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


def joint_loss(kind: str, out: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Stage 3's loss: the distances NME measures (mean point distance for M_l, mean absolute
    error of B for M_b) rather than eq. 1/2's squares, which under-weight the small errors."""
    return box_distance_loss(out, target) if kind == "boundary" else point_distance_loss(out, target, valid)


class Trainer:
    """Trains M_b and M_l on ``train`` samples, validating on ``val`` samples every epoch."""

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, train: Sequence[Sample],
                 val: Sequence[Sample] = (), test: Sequence[Sample] = (),
                 on_event: Optional[Callable[[TrainEvent], None]] = None,
                 control: Optional[StopControl] = None, dist: Optional[DistContext] = None) -> None:
        if not train:
            raise ValueError("no training samples")
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.train_samples = list(train)
        self.val_samples = list(val)
        self.test_samples = list(test)
        self.on_event = on_event or (lambda e: None)
        self.control = control or StopControl()
        self.dist = dist or DistContext()
        self.mcfg = get_config(config.model)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"

    # ------------------------------------------------------------------ helpers
    def _emit(self, **kw) -> None:
        if not self.dist.is_main:
            return  # progress comes from rank 0 only
        try:
            self.on_event(TrainEvent(**kw))
        except TrainingCancelled:
            raise
        except Exception:  # a broken listener must not kill training
            log.exception("progress callback failed")

    def _epoch_items(self, bank: ViewBank, kind: str, epoch: int, phase_idx: int, augment: bool):
        """(items, order, aug) of one epoch: ``items`` are (view index, whole frame?) pairs, ``order``
        the epoch's permutation of them (the same on every rank)."""
        cfg = self.cfg
        aug = Augment(mirror=cfg.mirror, box_jitter=cfg.box_jitter) if augment else Augment.off()
        n = len(bank)
        items: list[tuple[int, bool]]
        if kind == "boundary":
            if augment:
                rng0 = np.random.default_rng([cfg.seed, phase_idx, epoch, 7])
                items = [(i, bool(rng0.random() < aug.full_view_prob)) for i in range(n)]
            else:
                items = [(i, f) for i in range(n) for f in (True, False)]
        else:
            items = [(i, False) for i in range(n)]
        g = torch.Generator().manual_seed(cfg.seed * 1000003 + phase_idx * 1009 + epoch)
        order = torch.randperm(len(items), generator=g).tolist() if augment else list(range(len(items)))
        return items, order, aug

    def _make(self, bank, items, j, kind, stage, epoch, phase_idx, aug):
        # one generator per item (not one per epoch): the views do not depend on how the epoch's
        # items are split over batches or processes
        rng = np.random.default_rng([self.cfg.seed, phase_idx, epoch, j]) if aug.enabled else None
        return make_item(bank, items[j][0], kind, rng, aug, items[j][1], self.mcfg.blackout_margin,
                         with_mask=(stage == 1 and not self._end_to_end(kind)))

    def _batches(self, bank: ViewBank, kind: str, stage: int, epoch: int, phase_idx: int, augment: bool,
                 span: Optional[tuple[int, int]] = None):
        """Yield (x, mask|None, target, valid) batches for one epoch (of items ``span`` of the order)."""
        items, order, aug = self._epoch_items(bank, kind, epoch, phase_idx, augment)
        if span is not None:
            order = order[span[0]:span[1]]
        bs = self.cfg.batch_size
        for start in range(0, len(order), bs):
            yield self._collate([self._make(bank, items, j, kind, stage, epoch, phase_idx, aug)
                                 for j in order[start:start + bs]])

    def _train_batches(self, bank: ViewBank, kind: str, stage: int, epoch: int, phase_idx: int, augment: bool):
        """Yield (x, mask|None, target, valid, n_local, n_global) for this rank: its contiguous share
        of every global batch. A rank whose share is empty (a last batch smaller than the world)
        gets the batch's first item with n_local 0 (its loss is weighted 0, DDP still needs a pass)."""
        items, order, aug = self._epoch_items(bank, kind, epoch, phase_idx, augment)
        bs, d = self.cfg.batch_size, self.dist
        for start in range(0, len(order), bs):
            chunk = order[start:start + bs]
            lo, hi = shard_range(len(chunk), d.rank, d.world_size)
            local = chunk[lo:hi]
            n_local = len(local)
            if not local:
                local = chunk[:1]
            x, m, t, v = self._collate([self._make(bank, items, j, kind, stage, epoch, phase_idx, aug)
                                        for j in local])
            yield x, m, t, v, n_local, len(chunk)

    def _end_to_end(self, kind: str) -> bool:
        return kind == "landmark" and self.mcfg.head != "fc"

    @staticmethod
    def _collate(batch: list[dict]):
        x = torch.from_numpy(np.stack([b["x"] for b in batch])[:, None].astype(np.float32))
        t = torch.from_numpy(np.stack([b["target"] for b in batch]).astype(np.float32))
        v = torch.from_numpy(np.stack([b["valid"] for b in batch]))
        m = (torch.from_numpy(np.stack([b["mask"] for b in batch])[:, None].astype(np.float32))
             if "mask" in batch[0] else None)
        return x, m, t, v

    def _n_items(self, bank: ViewBank, kind: str, augment: bool) -> int:
        return len(bank) * (2 if (kind == "boundary" and not augment) else 1)

    def phases(self) -> list[tuple[str, int]]:
        """The configuration's phases; an end-to-end M_l (heatmap head) has no stage 2 or 3 (its
        stage 1 already trains the whole model on the points)."""
        e2e = self.mcfg.head != "fc"
        return [(m, s) for m, s in self.cfg.phases() if not (e2e and m == "landmark" and s in (2, 3))]

    def _init_from(self, spec: str, mb: torch.nn.Module, ml: torch.nn.Module) -> None:
        """Load ``spec``'s weights into the models ``init_models`` names. A model whose architecture
        differs (another configuration: e.g. an FC M_l into a heatmap M_l) keeps its fresh weights;
        that is logged and announced, never silent. Nothing loadable at all is an error."""
        which = {"both": ("boundary", "landmark"), "boundary": ("boundary",), "landmark": ("landmark",)}
        if self.cfg.init_models not in which:
            raise ValueError(f"init_models must be both, boundary or landmark, got {self.cfg.init_models!r}")
        icfg, imb, iml, _, ipath = load_weights(spec)
        loaded, skipped = [], []
        for kind, dst, src in (("boundary", mb, imb), ("landmark", ml, iml)):
            if kind not in which[self.cfg.init_models]:
                continue
            a, b = dst.state_dict(), src.state_dict()
            if a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a):
                dst.load_state_dict(b)
                loaded.append(kind)
            else:
                skipped.append(kind)
        if not loaded:
            raise ValueError(f"{ipath}: configuration {icfg.name!r} has no model that fits {self.mcfg.name!r} "
                             f"(asked for {self.cfg.init_models})")
        self.init_report = {"from": str(ipath), "config": icfg.name, "loaded": loaded, "fresh": skipped}
        msg = f"initialised {', '.join(loaded)} from {ipath} ({icfg.name})"
        if skipped:
            msg += f"; {', '.join(skipped)} start fresh (architecture of {icfg.name!r} differs)"
        log.info(msg)
        self._pending_status = msg

    # ------------------------------------------------------------------ main
    def run(self, resume: bool = False) -> Path:
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        d = self.dist
        device = d.device if d.device is not None else resolve_device(cfg.device)
        self.device = device
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.run_dir / "config.json"
        last = self.ckpt_dir / "last.pt"
        if resume:
            if not cfg_path.exists():
                raise ValueError(f"{self.run_dir}: nothing to resume (no config.json)")
            saved = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
            if saved.model != cfg.model:
                raise ValueError(f"{self.run_dir}: run was started with configuration {saved.model!r}, "
                                 f"not {cfg.model!r}")
        else:
            if last.exists():
                raise ValueError(f"{self.run_dir}: already holds a training run; use --resume to continue it "
                                 f"or choose another output folder")
            d.barrier()  # every rank has looked for last.pt before rank 0 writes anything
            if d.is_main:
                atomic_write_text(cfg_path, json.dumps({**cfg.to_dict(), "dmsl_version": __version__}, indent=2))

        # models
        mb, ml = create_models(self.mcfg, seed=cfg.seed)
        if cfg.init_weights:
            self._init_from(cfg.init_weights, mb, ml)
        models = self.models = {"boundary": mb.to(device), "landmark": ml.to(device)}
        phases = self.phases()
        state = {"phase": 0, "epoch": 0, "best": None, "best_state": None, "opt": None}
        if resume and last.exists():
            state.update(load_checkpoint(last, cfg.model, mb, ml))
            log.info("resuming at phase %d epoch %d", state["phase"], state["epoch"] + 1)
            d.barrier()  # every rank has read last.pt before rank 0 rewrites anything
            if d.is_main:
                self._truncate_metrics(state["phase"], state["epoch"])
                self._remove_stale_temporaries()
        if state["phase"] >= len(phases) and (self.run_dir / "model.safetensors").exists():
            self._emit(kind="done", n_phases=len(phases), message="run already complete")
            return self.run_dir / "model.safetensors"

        S, cs = self.mcfg.input_size, self.mcfg.crop_scale
        t0 = time.perf_counter()
        self._emit(kind="start", n_phases=len(phases), message=f"loading {len(self.train_samples)} training and "
                   f"{len(self.val_samples)} validation images",
                   extra={"device": str(device), "device_name": describe_device(device), "run_dir": str(self.run_dir),
                          "resumed": bool(resume and last.exists()), "world_size": d.world_size,
                          "backend": d.backend})
        if getattr(self, "_pending_status", None):
            self._emit(kind="status", message=self._pending_status)
        train_bank = ViewBank(self.train_samples, S, cs)
        val_bank = ViewBank(self.val_samples, S, cs) if self.val_samples else None
        log.info("loaded images in %.1fs", time.perf_counter() - t0)

        for pi in range(state["phase"], len(phases)):
            kind, stage = phases[pi]
            model = models[kind]
            start_epoch = state["epoch"] if pi == state["phase"] else 0
            result = self._run_phase(pi, len(phases), kind, stage, model, train_bank, val_bank, device,
                                     start_epoch, state if pi == state["phase"] else None)
            if result == "cancelled":
                self._emit(kind="cancelled", phase=pi, n_phases=len(phases), model=kind, stage=stage,
                           message=f"cancelled; resume with --resume from {self.run_dir}")
                raise TrainingCancelled(f"training cancelled; resume from {self.run_dir}")
            state = {"phase": pi + 1, "epoch": 0, "best": None, "best_state": None, "opt": None}
            self._save_checkpoint(pi + 1, 0, models, None, None, None)
            d.barrier()

        path = self.run_dir / "model.safetensors"
        if d.is_main:
            path = self._finish(models, device, phases)
        d.barrier()  # the other ranks return once the weights are written
        return path

    def _run_phase(self, pi, n_phases, kind, stage, model, train_bank, val_bank, device, start_epoch, state):
        cfg, d = self.cfg, self.dist
        epochs = {1: cfg.epochs, 2: cfg.head_epochs, 3: cfg.joint_epochs}[stage]
        e2e = bool(getattr(model, "end_to_end", False))
        joint = stage == 3 or (stage == 1 and e2e)   # the whole model trains on the points / box
        if joint:
            for p in model.parameters():
                p.requires_grad_(True)
            params = list(model.parameters())
            lr = cfg.joint_lr if stage == 3 else cfg.lr
        elif stage == 1:
            for p in model.parameters():
                p.requires_grad_(False)
            for p in model.unet.parameters():
                p.requires_grad_(True)
            params = list(model.unet.parameters())
            lr = cfg.lr
        else:
            for p in model.parameters():
                p.requires_grad_(False)
            params = model.head_parameters()
            for p in params:
                p.requires_grad_(True)
            lr = cfg.head_lr
        opt = torch.optim.Adam(params, lr=lr)
        best = None
        best_state = None
        if state is not None and state.get("opt") is not None:
            opt.load_state_dict(state["opt"])
            best, best_state = state.get("best"), state.get("best_state")
        part = model if joint else (model.unet if stage == 1 else torch.nn.ModuleList([model.fc1, model.fc2]))
        self._emit(kind="phase_start", phase=pi, n_phases=n_phases, model=kind, stage=stage,
                   epoch=start_epoch, epochs=epochs)
        cache = None
        if stage == 2 and cfg.cache_features:
            cache = self._feature_cache(model, kind, train_bank, val_bank, device, pi)
        # the module that is trained: the U-Net (stage 1) or the head (stage 2); DDP only sees the
        # parameters that require a gradient, i.e. exactly that part
        net: torch.nn.Module = _Call(model, "forward_train" if e2e else "forward" if stage == 3 else
                                     "mask_logits" if stage == 1 else ("head" if cache is not None else "forward"))
        if d.active:
            from torch.nn.parallel import DistributedDataParallel
            net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        steps = math.ceil((len(cache[0][0]) if cache else self._n_items(train_bank, kind, cfg.augment)) / cfg.batch_size)
        step_times: list[float] = []
        end_phase = False
        bs = cfg.batch_size
        for epoch in range(start_epoch, epochs):
            if cfg.lr_schedule == "cosine":  # a function of the epoch alone, so resume needs no scheduler state
                f = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs)))
                for g_ in opt.param_groups:
                    g_["lr"] = lr * f
            elif cfg.lr_schedule != "constant":
                raise ValueError(f"unknown lr schedule {cfg.lr_schedule!r} (constant or cosine)")
            model.train()
            tot, n_img, t_ep = 0.0, 0, time.perf_counter()
            if cache is not None:
                feats, targets, valids = cache[0]
                g = torch.Generator().manual_seed(cfg.seed * 7919 + pi * 131 + epoch)
                perm = torch.randperm(len(feats), generator=g)

                def cached_batches(perm=perm, feats=feats, targets=targets, valids=valids):
                    for s in range(0, len(perm), bs):
                        chunk = perm[s:s + bs]
                        lo, hi = shard_range(len(chunk), d.rank, d.world_size)
                        idx = chunk[lo:hi] if hi > lo else chunk[:1]
                        yield (feats[idx].float().to(device), None, targets[idx].to(device), valids[idx].to(device),
                               hi - lo, len(chunk))
                batches = cached_batches()
            else:
                batches = self._train_batches(train_bank, kind, stage, epoch, pi, cfg.augment)
            for step, (x, m, t, v, n_local, n_global) in enumerate(batches, start=1):
                ts = time.perf_counter()
                if not d.active and self.control.cancelled:
                    return "cancelled"
                x, t, v = x.to(device), t.to(device), v.to(device)
                opt.zero_grad(set_to_none=True)
                out = net(x)
                if e2e:
                    loss = heatmap_landmark_loss(out[0], out[1], t, v)
                elif stage == 3:
                    loss = joint_loss(kind, out, t, v)
                elif stage == 1:
                    loss = mask_loss(out, m.to(device))
                else:
                    loss = boundary_loss(out, t) if kind == "boundary" else landmark_loss(out, t, v)
                if d.active:
                    # DDP averages gradients over ranks; weighting each rank's per-item mean by its
                    # share makes that average the gradient of the mean over the whole global batch
                    (loss * (n_local * d.world_size / n_global)).backward()
                else:
                    loss.backward()
                opt.step()
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"loss became {lv} at {kind} stage {stage} epoch {epoch + 1} step {step}; "
                                             f"lower the learning rate")
                tot += lv * n_local
                n_img += n_local
                step_times.append(time.perf_counter() - ts)
                step_times = step_times[-50:]
                per_step = float(np.mean(step_times))
                remaining = (epochs - epoch - 1) * steps + (steps - step)
                self._emit(kind="step", phase=pi, n_phases=n_phases, model=kind, stage=stage, epoch=epoch + 1,
                           epochs=epochs, step=step, steps=steps, loss=lv, eta_s=remaining * per_step,
                           images_per_s=n_global / max(per_step, 1e-9))
                early = self.control.take_early()
                if d.active:  # every rank must take the same branch
                    cancel, early = d.any(self.control.cancelled, early)
                    if cancel:
                        return "cancelled"
                if early:
                    end_phase = True  # finish this epoch's bookkeeping, then end the phase
                    epochs = epoch + 1
                    break
            if d.active:
                per_rank = d.all_reduce_sum([n_img if r == d.rank else 0 for r in range(d.world_size)])
                tot, n_all = d.all_reduce_sum([tot, n_img])
                n_img = int(round(n_all))
            train_loss = tot / max(n_img, 1)
            val_loss, val_nme = self._validate(model, kind, stage, val_bank, device, cache)
            score = val_nme if (val_nme is not None and kind == "landmark" and (stage >= 2 or e2e)) else \
                (val_loss if val_loss is not None else train_loss)
            improved = best is None or score < best
            if improved:
                best = score
                best_state = _state_cpu(part)
                if d.is_main:
                    _atomic_torch_save({"phase": pi, "epoch": epoch + 1, "kind": kind, "stage": stage, "score": best,
                                        "state": best_state}, self.ckpt_dir / f"best-{kind}-s{stage}.pt")
            seconds = time.perf_counter() - t_ep
            rec = {"phase": pi, "model": kind, "stage": stage, "epoch": epoch + 1, "epochs": epochs,
                   "train_loss": train_loss, "val_loss": val_loss, "val_nme": val_nme, "best": improved,
                   "seconds": seconds, "time": time.time(), "images": n_img, "world_size": d.world_size}
            if d.active:
                rec["images_per_rank"] = [int(round(c)) for c in per_rank]
            if d.is_main:
                _append_jsonl(self.metrics_path, rec)
            self._save_checkpoint(pi, epoch + 1, self.models, opt.state_dict(), best, best_state)
            d.barrier()  # nobody starts the next epoch before rank 0 has written this one
            self._emit(kind="epoch", phase=pi, n_phases=n_phases, model=kind, stage=stage, epoch=epoch + 1,
                       epochs=epochs, loss=train_loss, val_loss=val_loss, val_nme=val_nme, best=improved,
                       eta_s=(epochs - epoch - 1) * steps * (float(np.mean(step_times)) if step_times else 0.0),
                       images_per_s=n_img / max(seconds, 1e-9), extra={"world_size": d.world_size})
            if end_phase:
                break
        if best_state is not None:
            part.load_state_dict(best_state)
        nme_scored = kind == "landmark" and (stage >= 2 or e2e)
        self._emit(kind="phase_end", phase=pi, n_phases=n_phases, model=kind, stage=stage, epochs=epochs,
                   val_loss=best if not nme_scored else None, val_nme=best if nme_scored else None)
        return "ok"

    def _remove_stale_temporaries(self) -> None:
        """Temporaries of atomic writes cut short by a kill (``.last.pt.*.tmp``...); resuming redoes them."""
        for folder in (self.run_dir, self.ckpt_dir):
            for tmp in folder.glob(".*.tmp"):
                try:
                    tmp.unlink()
                    log.info("removed %s (left by an interrupted write)", tmp)
                except OSError:
                    pass

    def _truncate_metrics(self, phase: int, epoch: int) -> None:
        """Drop metric lines of epochs after the checkpoint (they are redone on resume)."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if rec["phase"] < phase or (rec["phase"] == phase and rec["epoch"] <= epoch):
                keep.append(line)
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in keep))

    def _save_checkpoint(self, phase, epoch, models, opt_state, best, best_state):
        if not self.dist.is_main:
            return
        _atomic_torch_save({"phase": phase, "epoch": epoch,
                            "boundary": _state_cpu(models["boundary"]), "landmark": _state_cpu(models["landmark"]),
                            "opt": opt_state, "best": best, "best_state": best_state,
                            "config": json.dumps(self.cfg.to_dict())}, self.ckpt_dir / "last.pt")

    def _feature_cache(self, model, kind, train_bank, val_bank, device, pi):
        """U-Net outputs (frozen) for the training and validation views, computed once."""
        cfg = self.cfg
        model.eval()

        def build(bank, copies, augment, tag):
            feats, targets, valids = [], [], []
            for c in range(copies):
                for x, _, t, v in self._batches(bank, kind, 2, 10_000 + c, pi, augment):
                    with torch.inference_mode():
                        feats.append(model.features(x.to(device)).to("cpu", torch.float16))
                    targets.append(t)
                    valids.append(v)
            self._emit(kind="status", model=kind, stage=2, message=f"cached U-Net outputs of {tag}")
            return torch.cat(feats), torch.cat(targets), torch.cat(valids)

        copies = max(1, cfg.head_aug_copies) if cfg.augment else 1
        train = build(train_bank, copies, cfg.augment, "training views")
        val = build(val_bank, 1, False, "validation views") if val_bank is not None else None
        return train, val

    def _validate(self, model, kind, stage, val_bank, device, cache):
        """(validation loss, validation NME or None). Under several processes each rank takes a
        contiguous share of the validation items and the sums and counts are all-reduced."""
        if val_bank is None:
            return None, None
        d = self.dist
        model.eval()
        tot, n, nmes = 0.0, 0, []
        S = self.mcfg.input_size
        with torch.inference_mode():
            if cache is not None and cache[1] is not None:
                feats, targets, valids = cache[1]
                lo, hi = shard_range(len(feats), d.rank, d.world_size)
                batches = ((feats[s:min(s + 64, hi)].float(), None, targets[s:min(s + 64, hi)],
                            valids[s:min(s + 64, hi)]) for s in range(lo, hi, 64))
            else:
                span = None
                if d.active:
                    span = shard_range(self._n_items(val_bank, kind, False), d.rank, d.world_size)
                batches = self._batches(val_bank, kind, stage, 0, 0, False, span=span)
            e2e = self._end_to_end(kind)
            for x, m, t, v in batches:
                x, t, v = x.to(device), t.to(device), v.to(device)
                if stage == 1 and not e2e:
                    loss = mask_loss(model.mask_logits(x), m.to(device))
                else:
                    out = model.head(x) if cache is not None else model(x)
                    loss = (point_distance_loss(out, t, v) if e2e else joint_loss(kind, out, t, v) if stage == 3 else
                            boundary_loss(out, t) if kind == "boundary" else landmark_loss(out, t, v))
                    if kind == "landmark":
                        from .evaluation import nme_per_image
                        p = out.float().cpu().numpy().reshape(-1, 68, 2) * S
                        g = t.float().cpu().numpy().reshape(-1, 68, 2) * S
                        vv = v.cpu().numpy()
                        for pi_, gi, vi in zip(p, g, vv):
                            gi = gi.copy()
                            gi[~vi] = np.nan
                            nmes.append(nme_per_image(pi_, gi))
                tot += float(loss) * len(x)
                n += len(x)
        if d.active:
            tot, n, nme_sum, nme_n = d.all_reduce_sum([tot, n, float(np.sum(nmes)) if nmes else 0.0, len(nmes)])
            return tot / max(n, 1), (nme_sum / nme_n if nme_n else None)
        return tot / max(n, 1), (float(np.mean(nmes)) if nmes else None)

    def _finish(self, models, device, phases) -> Path:
        from .pipeline import Predictor
        cfg = self.cfg
        card = {
            "name": cfg.name or self.run_dir.name,
            "config": self.mcfg.to_dict(),
            "training": {**cfg.to_dict(), "n_train_images": len(self.train_samples),
                         "n_val_images": len(self.val_samples),
                         "train_subjects": sorted({s.subject for s in self.train_samples}),
                         "val_subjects": sorted({s.subject for s in self.val_samples})},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"init": self.init_report} if getattr(self, "init_report", None) else {}),
            "dmsl_version": __version__,
        }
        pred = Predictor(copy.deepcopy(models["boundary"]).cpu(), copy.deepcopy(models["landmark"]).cpu(),
                         self.mcfg, device=device)
        for tag, samples in (("val", self.val_samples), ("test", self.test_samples)):
            if samples:
                rep = evaluate_predictor(pred, samples)
                card[f"nme_{tag}"] = card_nme(rep)
        path = save_weights(self.run_dir, models["boundary"], models["landmark"], self.mcfg, card)
        self._emit(kind="done", n_phases=len(phases), message=f"model written to {path}",
                   val_nme=(card.get("nme_val") or {}).get("all"), extra={"weights": str(path), "card": card})
        return path


def train(config: TrainConfig, run_dir, train: Sequence[Sample], val: Sequence[Sample] = (),
          test: Sequence[Sample] = (), on_event=None, control: Optional[StopControl] = None,
          resume: bool = False, dist: Optional[DistContext] = None) -> Path:
    """Train both models (as ``config`` says) and write the run folder; returns the weights path.

    ``dist``: the process's place in a torchrun job (``dmsl_core.distributed.init_from_env()``);
    None trains in this process alone."""
    return Trainer(config, run_dir, train, val, test, on_event, control, dist).run(resume=resume)
