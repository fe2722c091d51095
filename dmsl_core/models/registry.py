"""Named model configurations, created by name and listed (timm-style registry)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .. import configio
from .heads import BoundaryModel, HeatmapLandmarkModel, LandmarkModel


@dataclass(frozen=True)
class ModelConfig:
    name: str
    widths: tuple[int, ...]
    hidden: int
    input_size: int = 128
    # Inference/training geometry (shared by the trainer and the Predictor so both see the same views):
    crop_scale: float = 1.5        # side of the square crop around the face box, in units of max(w, h)
    blackout_margin: float = 0.0   # grow B by this fraction of (w, h) on each side before blacking out
    head: str = "fc"               # M_l's head: "fc" (the paper's) or "heatmap" (soft-argmax, end to end)
    landmark_hidden: int = 0       # M_l's FC hidden width when it differs from M_b's (0: ``hidden`` for both)
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return configio.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "ModelConfig":
        """A configuration from :meth:`to_dict`'s keys; an unknown key, a value of the wrong type or an
        unknown head is a ``ValueError`` (:mod:`dmsl_core.configio`)."""
        cfg = configio.from_dict(cls, d, strict=True, where=where)
        if cfg.head not in HEADS:
            raise ValueError(f"unknown landmark head {cfg.head!r} (known: {', '.join(HEADS)})")
        return cfg


_REGISTRY: dict[str, ModelConfig] = {}
HEADS = {"fc": LandmarkModel, "heatmap": HeatmapLandmarkModel}


def register_config(cfg: ModelConfig, overwrite: bool = False) -> ModelConfig:
    if cfg.name in _REGISTRY and not overwrite:
        raise ValueError(f"model configuration {cfg.name!r} is already registered")
    _REGISTRY[cfg.name] = cfg
    return cfg


def get_config(name: str) -> ModelConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model configuration {name!r}; known: {', '.join(list_configs())}") from None


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def build_models(cfg: ModelConfig) -> tuple[BoundaryModel, LandmarkModel]:
    """(M_b, M_l) for a configuration (M_l's class follows ``cfg.head``)."""
    if cfg.head not in HEADS:
        raise ValueError(f"configuration {cfg.name!r}: unknown landmark head {cfg.head!r} (known: {', '.join(HEADS)})")
    return (BoundaryModel(cfg.widths, cfg.hidden, cfg.input_size),
            HEADS[cfg.head](cfg.widths, cfg.landmark_hidden or cfg.hidden, cfg.input_size))


def create_models(cfg: ModelConfig | str, seed: Optional[int] = None) -> tuple[BoundaryModel, LandmarkModel]:
    """(M_b, M_l) with fresh weights; ``seed`` makes the initialisation reproducible."""
    if isinstance(cfg, str):
        cfg = get_config(cfg)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_models(cfg)
    return build_models(cfg)


register_config(ModelConfig(
    "dmsl-paper", (64, 128, 256, 512, 1024), 1024, 128,
    description="The paper's models: classic U-Net widths 64-1024, FC hidden 1024 (about 48M parameters each).",
    tags=("paper",)))
register_config(ModelConfig(
    "dmsl-compact", (16, 32, 64, 128, 256), 256, 128, blackout_margin=0.05,
    description="Same architecture at a quarter of the widths and a 256-node hidden layer, for CPUs.",
    tags=("cpu",)))
register_config(ModelConfig(
    "dmsl-fast", (8, 16, 32, 64), 256, 96, blackout_margin=0.05,
    description="A real-time CPU size: four U-Net levels of widths 8-64, 96x96 input, FC hidden 256.",
    tags=("cpu", "realtime")))
register_config(ModelConfig(
    "dmsl-tiny", (4, 8, 16), 32, 64, blackout_margin=0.05,
    description="A toy size for tests and smoke runs (64x64 input); not for real use.",
    tags=("test",)))
register_config(ModelConfig(
    "dmsl-fast-hm", (8, 16, 32, 64), 256, 96, blackout_margin=0.05, head="heatmap",
    description="dmsl-fast with a heatmap head on M_l: 68 U-Net output maps, soft-argmax, trained end to end "
                "on the point distance (M_b is dmsl-fast's).",
    tags=("cpu", "realtime", "heatmap")))
register_config(ModelConfig(
    "dmsl-compact-hm", (16, 32, 64, 128, 256), 256, 128, blackout_margin=0.05, head="heatmap",
    description="dmsl-compact with the heatmap head on M_l (soft-argmax, end to end).",
    tags=("cpu", "heatmap")))
register_config(ModelConfig(
    "dmsl-tiny-hm", (4, 8, 16), 32, 64, blackout_margin=0.05, head="heatmap",
    description="dmsl-tiny with the heatmap head, for tests.",
    tags=("test", "heatmap")))
