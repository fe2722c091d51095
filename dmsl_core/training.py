"""Two-stage training of M_b and M_l (the paper's procedure), with events, checkpoints and resume.

For each model: stage 1 trains the U-Net alone on its mask (pixel-wise BCE: the box mask for
M_b, Algorithm 1's glow for M_l); stage 2 freezes the U-Net and trains the fully connected head
on the regression loss (eq. 1 / eq. 2). Because the U-Net is frozen in stage 2 its outputs are
computed once and cached (``cache_features``), which makes stage 2 fast.

The run folder holds ``config.json``, ``metrics.jsonl`` (one line per epoch),
``checkpoints/last.pt`` (written atomically after every epoch: models, optimiser, phase, epoch,
the best weights so far), ``checkpoints/best-<phase>.pt`` and, when done, ``model.safetensors`` +
``model.json``. ``train(..., resume=True)`` continues from ``last.pt`` after a crash or kill
(the epoch in progress is redone). Checkpoints are loaded with ``weights_only=True``.
"""
from __future__ import annotations

import copy
import dataclasses
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

from . import __version__
from .atomic import atomic_path, atomic_write_text
from .data.sample import Sample
from .device import describe_device, resolve_device
from .evaluation import evaluate_predictor
from .losses import boundary_loss, landmark_loss, mask_loss
from .models import create_models, get_config
from .models.weights import load_weights, save_weights
from .views import Augment, ViewBank, make_item

log = logging.getLogger("dmsl.training")

PHASES = [("boundary", 1), ("boundary", 2), ("landmark", 1), ("landmark", 2)]


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
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    mirror: bool = True                  # the paper's mirrored copies (with the index permutation)
    cache_features: bool = True
    head_aug_copies: int = 3             # augmented views per image cached for stage 2 (augment on)
    num_threads: Optional[int] = None
    init_weights: Optional[str] = None   # start from these weights (fine-tuning)
    data: str = ""                       # what the data is (for the model card)
    spectra: tuple[str, ...] = ("vis", "th")
    fold: Optional[int] = None
    name: str = ""                       # model name for the card (default: the run folder's name)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        d["spectra"] = list(self.spectra)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k != "dmsl_version"}  # written beside the config for the record
        bad = set(kw) - known
        if bad:
            raise ValueError(f"unknown training configuration keys {sorted(bad)}")
        for k in ("stages", "spectra"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def phases(self) -> list[tuple[str, int]]:
        which = {"both": ("boundary", "landmark"), "boundary": ("boundary",), "landmark": ("landmark",)}
        if self.train_models not in which:
            raise ValueError(f"train_models must be both, boundary or landmark, got {self.train_models!r}")
        return [(m, s) for m, s in PHASES if m in which[self.train_models] and s in self.stages]


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
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _state_cpu(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


class Trainer:
    """Trains M_b and M_l on ``train`` samples, validating on ``val`` samples every epoch."""

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, train: Sequence[Sample],
                 val: Sequence[Sample] = (), test: Sequence[Sample] = (),
                 on_event: Optional[Callable[[TrainEvent], None]] = None,
                 control: Optional[StopControl] = None) -> None:
        if not train:
            raise ValueError("no training samples")
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.train_samples = list(train)
        self.val_samples = list(val)
        self.test_samples = list(test)
        self.on_event = on_event or (lambda e: None)
        self.control = control or StopControl()
        self.mcfg = get_config(config.model)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"

    # ------------------------------------------------------------------ helpers
    def _emit(self, **kw) -> None:
        try:
            self.on_event(TrainEvent(**kw))
        except TrainingCancelled:
            raise
        except Exception:  # a broken listener must not kill training
            log.exception("progress callback failed")

    def _batches(self, bank: ViewBank, kind: str, stage: int, epoch: int, phase_idx: int, augment: bool):
        """Yield (x, mask|None, target, valid) batches for one epoch."""
        cfg = self.cfg
        aug = Augment(mirror=cfg.mirror) if augment else Augment.off()
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
        rng = np.random.default_rng([cfg.seed, phase_idx, epoch]) if augment else None
        bs = cfg.batch_size
        for start in range(0, len(order), bs):
            batch = [make_item(bank, items[j][0], kind, rng, aug, items[j][1], self.mcfg.blackout_margin,
                               with_mask=(stage == 1)) for j in order[start:start + bs]]
            yield self._collate(batch)

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

    # ------------------------------------------------------------------ main
    def run(self, resume: bool = False) -> Path:
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        device = resolve_device(cfg.device)
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
            atomic_write_text(cfg_path, json.dumps({**cfg.to_dict(), "dmsl_version": __version__}, indent=2))

        # models
        if cfg.init_weights:
            icfg, mb, ml, _, _ = load_weights(cfg.init_weights)
            if icfg.name != self.mcfg.name:
                raise ValueError(f"{cfg.init_weights}: configuration {icfg.name!r} differs from {self.mcfg.name!r}")
        else:
            mb, ml = create_models(self.mcfg, seed=cfg.seed)
        models = self.models = {"boundary": mb.to(device), "landmark": ml.to(device)}
        phases = cfg.phases()
        state = {"phase": 0, "epoch": 0, "best": None, "best_state": None, "opt": None}
        if resume and last.exists():
            ck = torch.load(last, map_location="cpu", weights_only=True)
            mb.load_state_dict(ck["boundary"])
            ml.load_state_dict(ck["landmark"])
            state.update(phase=int(ck["phase"]), epoch=int(ck["epoch"]), best=ck.get("best"),
                         best_state=ck.get("best_state"), opt=ck.get("opt"))
            log.info("resuming at phase %d epoch %d", state["phase"], state["epoch"] + 1)
            self._truncate_metrics(state["phase"], state["epoch"])
        if state["phase"] >= len(phases) and (self.run_dir / "model.safetensors").exists():
            self._emit(kind="done", n_phases=len(phases), message="run already complete")
            return self.run_dir / "model.safetensors"

        S, cs = self.mcfg.input_size, self.mcfg.crop_scale
        t0 = time.perf_counter()
        self._emit(kind="start", n_phases=len(phases), message=f"loading {len(self.train_samples)} training and "
                   f"{len(self.val_samples)} validation images",
                   extra={"device": str(device), "device_name": describe_device(device), "run_dir": str(self.run_dir),
                          "resumed": bool(resume and last.exists())})
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

        return self._finish(models, device, phases)

    def _run_phase(self, pi, n_phases, kind, stage, model, train_bank, val_bank, device, start_epoch, state):
        cfg = self.cfg
        epochs = cfg.epochs if stage == 1 else cfg.head_epochs
        if stage == 1:
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
        part = model.unet if stage == 1 else torch.nn.ModuleList([model.fc1, model.fc2])
        self._emit(kind="phase_start", phase=pi, n_phases=n_phases, model=kind, stage=stage,
                   epoch=start_epoch, epochs=epochs)
        cache = None
        if stage == 2 and cfg.cache_features:
            cache = self._feature_cache(model, kind, train_bank, val_bank, device, pi)
        steps = math.ceil((len(cache[0][0]) if cache else self._n_items(train_bank, kind, cfg.augment)) / cfg.batch_size)
        step_times: list[float] = []
        end_phase = False
        for epoch in range(start_epoch, epochs):
            model.train()
            tot, n_img, t_ep = 0.0, 0, time.perf_counter()
            if cache is not None:
                feats, targets, valids = cache[0]
                g = torch.Generator().manual_seed(cfg.seed * 7919 + pi * 131 + epoch)
                perm = torch.randperm(len(feats), generator=g)
                batches = ((feats[perm[s:s + cfg.batch_size]].float().to(device), None,
                            targets[perm[s:s + cfg.batch_size]].to(device), valids[perm[s:s + cfg.batch_size]].to(device))
                           for s in range(0, len(feats), cfg.batch_size))
            else:
                batches = self._batches(train_bank, kind, stage, epoch, pi, cfg.augment)
            for step, (x, m, t, v) in enumerate(batches, start=1):
                ts = time.perf_counter()
                if self.control.cancelled:
                    return "cancelled"
                x, t, v = x.to(device), t.to(device), v.to(device)
                opt.zero_grad(set_to_none=True)
                if stage == 1:
                    loss = mask_loss(model.mask_logits(x), m.to(device))
                else:
                    out = model.head(x) if cache is not None else model(x)
                    loss = boundary_loss(out, t) if kind == "boundary" else landmark_loss(out, t, v)
                loss.backward()
                opt.step()
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"loss became {lv} at {kind} stage {stage} epoch {epoch + 1} step {step}; "
                                             f"lower the learning rate")
                tot += lv * len(x)
                n_img += len(x)
                step_times.append(time.perf_counter() - ts)
                step_times = step_times[-50:]
                per_step = float(np.mean(step_times))
                remaining = (epochs - epoch - 1) * steps + (steps - step)
                self._emit(kind="step", phase=pi, n_phases=n_phases, model=kind, stage=stage, epoch=epoch + 1,
                           epochs=epochs, step=step, steps=steps, loss=lv, eta_s=remaining * per_step,
                           images_per_s=len(x) / max(per_step, 1e-9))
                if self.control.take_early():
                    end_phase = True  # finish this epoch's bookkeeping, then end the phase
                    epochs = epoch + 1
                    break
            train_loss = tot / max(n_img, 1)
            val_loss, val_nme = self._validate(model, kind, stage, val_bank, device, cache)
            score = val_nme if (val_nme is not None and stage == 2 and kind == "landmark") else \
                (val_loss if val_loss is not None else train_loss)
            improved = best is None or score < best
            if improved:
                best = score
                best_state = _state_cpu(part)
                _atomic_torch_save({"phase": pi, "epoch": epoch + 1, "kind": kind, "stage": stage, "score": best,
                                    "state": best_state}, self.ckpt_dir / f"best-{kind}-s{stage}.pt")
            rec = {"phase": pi, "model": kind, "stage": stage, "epoch": epoch + 1, "epochs": epochs,
                   "train_loss": train_loss, "val_loss": val_loss, "val_nme": val_nme, "best": improved,
                   "seconds": time.perf_counter() - t_ep, "time": time.time()}
            _append_jsonl(self.metrics_path, rec)
            self._save_checkpoint(pi, epoch + 1, self.models, opt.state_dict(), best, best_state)
            self._emit(kind="epoch", phase=pi, n_phases=n_phases, model=kind, stage=stage, epoch=epoch + 1,
                       epochs=epochs, loss=train_loss, val_loss=val_loss, val_nme=val_nme, best=improved,
                       eta_s=(epochs - epoch - 1) * steps * (float(np.mean(step_times)) if step_times else 0.0))
            if end_phase:
                break
        if best_state is not None:
            part.load_state_dict(best_state)
        self._emit(kind="phase_end", phase=pi, n_phases=n_phases, model=kind, stage=stage, epochs=epochs,
                   val_loss=best if not (stage == 2 and kind == "landmark") else None,
                   val_nme=best if (stage == 2 and kind == "landmark") else None)
        return "ok"

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
        if val_bank is None:
            return None, None
        model.eval()
        tot, n, nmes = 0.0, 0, []
        S = self.mcfg.input_size
        with torch.inference_mode():
            if cache is not None and cache[1] is not None:
                feats, targets, valids = cache[1]
                batches = ((feats[s:s + 64].float(), None, targets[s:s + 64], valids[s:s + 64])
                           for s in range(0, len(feats), 64))
            else:
                batches = self._batches(val_bank, kind, stage, 0, 0, False)
            for x, m, t, v in batches:
                x, t, v = x.to(device), t.to(device), v.to(device)
                if stage == 1:
                    loss = mask_loss(model.mask_logits(x), m.to(device))
                else:
                    out = model.head(x) if cache is not None else model(x)
                    loss = boundary_loss(out, t) if kind == "boundary" else landmark_loss(out, t, v)
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
            "dmsl_version": __version__,
        }
        pred = Predictor(copy.deepcopy(models["boundary"]).cpu(), copy.deepcopy(models["landmark"]).cpu(),
                         self.mcfg, device=device)
        for tag, samples in (("val", self.val_samples), ("test", self.test_samples)):
            if samples:
                rep = evaluate_predictor(pred, samples)
                card[f"nme_{tag}"] = {**rep["nme"], "n_images": rep["n_images"],
                                      "per_variation": {k: v["all"] for k, v in rep["per_variation"].items()}}
        path = save_weights(self.run_dir, models["boundary"], models["landmark"], self.mcfg, card)
        self._emit(kind="done", n_phases=len(phases), message=f"model written to {path}",
                   val_nme=(card.get("nme_val") or {}).get("all"), extra={"weights": str(path), "card": card})
        return path


def train(config: TrainConfig, run_dir, train: Sequence[Sample], val: Sequence[Sample] = (),
          test: Sequence[Sample] = (), on_event=None, control: Optional[StopControl] = None,
          resume: bool = False) -> Path:
    """Train both models (as ``config`` says) and write the run folder; returns the weights path."""
    return Trainer(config, run_dir, train, val, test, on_event, control).run(resume=resume)
