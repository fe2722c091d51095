"""Weight files: ``model.safetensors`` (both models) + ``model.json`` (the model card).

Tensors are stored as ``boundary.<param>`` and ``landmark.<param>``; the safetensors metadata
holds ``format`` = ``dmsl-v1`` and ``config`` (the ModelConfig as JSON). Loading never unpickles.

A weights *spec* is a run folder (holding model.safetensors), a ``.safetensors`` file, or the
name of a model shipped in ``assets/models/<name>/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from torch import nn

from ..atomic import atomic_path
from .heads import BoundaryModel, LandmarkModel
from .registry import ModelConfig, build_models

FORMAT = "dmsl-v1"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model.json"
DEFAULT_MODEL = "dmsl-default"


class WeightsError(ValueError):
    """A weights file or spec that cannot be used; the message names the file and the problem."""


def assets_dir() -> Path:
    env = os.environ.get("DMSL_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "assets"


def shipped_models() -> list[str]:
    root = assets_dir() / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / WEIGHTS_NAME).exists())


def resolve_weights(spec: str | os.PathLike | None) -> Path:
    """Path of the ``.safetensors`` file a spec names (None -> the shipped default model)."""
    if spec is None or str(spec) == "":
        spec = DEFAULT_MODEL
    p = Path(spec)
    if p.is_dir():
        f = p / WEIGHTS_NAME
        if not f.exists():
            raise WeightsError(f"{p}: folder has no {WEIGHTS_NAME} (is the training run finished? "
                               f"checkpoints are under {p / 'checkpoints'})")
        return f
    if p.suffix == ".safetensors" or p.exists():
        if not p.exists():
            raise WeightsError(f"{p}: no such weights file")
        return p
    shipped = assets_dir() / "models" / str(spec) / WEIGHTS_NAME
    if shipped.exists():
        return shipped
    known = shipped_models()
    if str(spec) == DEFAULT_MODEL and not known:
        raise WeightsError(f"no shipped default model: {shipped} is missing. Train one with `dmsl train` "
                           f"and pass --weights RUN_DIR")
    raise WeightsError(f"{spec!r} is neither a run folder, a .safetensors file nor a shipped model "
                       f"(shipped: {', '.join(known) or 'none'})")


def _atomic_save(write, path: Path) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def save_weights(out: str | os.PathLike, boundary: nn.Module, landmark: nn.Module, config: ModelConfig,
                 card: Optional[dict] = None, half: bool = False) -> Path:
    """Write ``model.safetensors`` (+ ``model.json`` beside it) atomically; returns the weights path.

    ``out`` is a folder or a ``.safetensors`` path. ``half`` stores float tensors as float16.
    """
    from safetensors.torch import save_file

    out = Path(out)
    path = out if out.suffix == ".safetensors" else out / WEIGHTS_NAME
    tensors = {}
    for prefix, model in (("boundary", boundary), ("landmark", landmark)):
        for k, v in model.state_dict().items():
            t = v.detach().to("cpu")
            if half and t.is_floating_point():
                t = t.half()
            tensors[f"{prefix}.{k}"] = t.contiguous()
    meta = {"format": FORMAT, "config": json.dumps(config.to_dict())}
    _atomic_save(lambda tmp: save_file(tensors, tmp, metadata=meta), path)
    card = dict(card or {})
    card.setdefault("config", config.to_dict())
    card["weights"] = path.name
    card["dtype"] = "float16" if half else "float32"
    card_path = path.with_name(CARD_NAME) if path.name == WEIGHTS_NAME else path.with_suffix(".json")

    def write_card(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(card, fh, indent=2)
    _atomic_save(write_card, card_path)
    return path


def card_path_for(weights: Path) -> Path:
    return weights.with_name(CARD_NAME) if weights.name == WEIGHTS_NAME else weights.with_suffix(".json")


def read_safetensors(path: Path, what: str = "weights") -> tuple[dict, dict]:
    """(metadata, tensors) of a safetensors file (never unpickles); a clear error naming the file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        return meta, load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors {what} file ({exc})") from None


def load_weights(spec: str | os.PathLike | None) -> tuple[ModelConfig, BoundaryModel, LandmarkModel, dict, Path]:
    """(config, M_b, M_l, card, path) from a weights spec; clear errors for anything invalid."""
    path = resolve_weights(spec)
    meta, tensors = read_safetensors(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise WeightsError(f"{path}: not a DMSL model (safetensors metadata lacks format={FORMAT!r} and config)")
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: bad model configuration in metadata ({exc})") from None
    models = []
    try:
        fresh = build_models(config)
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:  # a diverged training: every landmark would be NaN
        raise WeightsError(f"{path}: {len(bad)} of {len(tensors)} tensors hold NaN or infinite values "
                           f"(first: {bad[0]}); the training that wrote it diverged")
    for prefix, model in zip(("boundary", "landmark"), fresh):
        state = {k[len(prefix) + 1:]: v.float() for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise WeightsError(f"{path}: {prefix} weights do not match configuration {config.name!r} ({first})") from None
        model.eval()
        models.append(model)
    card: dict = {}
    cp = card_path_for(path)
    if cp.exists():
        try:
            card = json.loads(cp.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{cp}: unreadable model card ({exc})") from None
        if not isinstance(card, dict):
            raise WeightsError(f"{cp}: the model card must be a JSON object, got a JSON {type(card).__name__}")
    return config, models[0], models[1], card, path
