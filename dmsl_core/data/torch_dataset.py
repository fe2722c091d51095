"""A torch Dataset over a dataset folder, with the paper's pre-processing and augmentation.

Each item is one model input, exactly as the trainer builds it (``dmsl_core.crops``): a square
view around the face (or the whole frame for M_b), intensity-normalised, optionally mirrored
(with the landmark index permutation), scaled, rotated, shifted, and with brightness/contrast,
blur and noise changes - all of which keep the landmarks exact. Black "lights off" visible
images are dropped, and counted in ``dataset.report.dropped_dark``.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models import get_config
from ..crops import Augment, ViewBank, make_item
from .folder import LoadReport, load_samples


class DMSLDataset(Dataset):
    """Items: dict of ``x`` (1, S, S) float, ``target`` ((4,) box or (136,) points, normalised),
    ``valid`` (68,) bool, ``mask`` (1, S, S) stage-1 target, ``index``.

    ``kind``: "landmark" (M_l input: face crop blacked out outside B) or "boundary" (M_b input:
    face crop, or the whole frame when ``full_frame``). With ``augment`` each access draws a new
    random augmentation from ``seed``, the epoch (``set_epoch``) and the index.
    """

    def __init__(self, root: str | os.PathLike, spectra: Sequence[str] = ("vis", "th"), *,
                 config: str = "dmsl-compact", kind: str = "landmark", augment: bool = True,
                 mirror: bool = True, subjects: Optional[Iterable[str]] = None, drop_dark: bool = True,
                 full_frame: bool = False, with_mask: bool = True, seed: int = 0) -> None:
        if kind not in ("landmark", "boundary"):
            raise ValueError(f"kind must be 'landmark' or 'boundary', got {kind!r}")
        self.report = LoadReport()
        self.samples = load_samples(root, spectra, subjects=subjects, drop_dark=drop_dark, report=self.report)
        self.cfg = get_config(config)
        self.bank = ViewBank(self.samples, self.cfg.input_size, self.cfg.crop_scale)
        self.kind = kind
        self.aug = Augment(mirror=mirror) if augment else Augment.off()
        self.full_frame = full_frame
        self.with_mask = with_mask
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.bank)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.aug.enabled else None
        item = make_item(self.bank, i, self.kind, rng, self.aug, self.full_frame, self.cfg.blackout_margin,
                         self.with_mask)
        out = {"x": torch.from_numpy(item["x"][None].astype(np.float32)),
               "target": torch.from_numpy(item["target"].astype(np.float32)),
               "valid": torch.from_numpy(item["valid"]), "index": i}
        if "mask" in item:
            out["mask"] = torch.from_numpy(item["mask"][None].astype(np.float32))
        return out
