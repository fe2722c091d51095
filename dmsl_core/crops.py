"""Training views: the same square views the Predictor uses, plus augmentations that keep the
landmarks exact (mirroring with the index permutation, scale, rotation, translation,
brightness/contrast, blur, noise).

``ViewBank`` loads each sample once, converts it to grey float and shrinks it so the face is not
much larger than the model input needs, and keeps that in memory (float16).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from . import preprocess as pp
from .data.sample import Sample
from .landmarks import MIRROR_PERM, boundary_from_points
from .masks import boundary_mask, glow_mask


@dataclass
class Augment:
    """Augmentation ranges; ``Augment.off()`` gives the deterministic views."""
    enabled: bool = True
    mirror: bool = True
    rotate_deg: float = 12.0
    scale: tuple[float, float] = (0.88, 1.12)    # multiplies crop_scale for M_l views
    shift: float = 0.05                           # fraction of the crop side
    boundary_scale: tuple[float, float] = (1.15, 3.0)  # crop_scale range of M_b's face views
    full_view_prob: float = 0.4                   # M_b: share of whole-frame views
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.8, 1.15)
    blur_prob: float = 0.25
    noise_std: tuple[float, float] = (0.0, 0.03)
    box_jitter: float = 0.0   # M_l: std of the blackout box's error, as a fraction of its w / h (0: exact)

    @classmethod
    def off(cls) -> "Augment":
        return cls(enabled=False, mirror=False)


class ViewBank:
    """Pre-loaded, pre-shrunk grey sources of a list of samples."""

    def __init__(self, samples: Sequence[Sample], input_size: int, crop_scale: float,
                 progress=None) -> None:
        self.size = input_size
        self.crop_scale = crop_scale
        self.sources: list[np.ndarray] = []
        self.points: list[np.ndarray] = []
        self.samples = list(samples)
        for i, s in enumerate(self.samples):
            g = pp.prepare_gray(s.load())
            pts = np.asarray(s.landmarks, dtype=np.float64)
            box = boundary_from_points(pts)
            # the smallest crop used in training must still have >= 1 source pixel per view pixel
            f = min(1.0, input_size / (0.8 * crop_scale * max(box[2], box[3], 1.0)))
            if f < 0.95:
                h, w = g.shape
                nh, nw = max(1, int(round(h * f))), max(1, int(round(w * f)))
                g = cv2.resize(g, (nw, nh), interpolation=cv2.INTER_AREA)
                fx, fy = nw / w, nh / h
                pts = np.stack([(pts[:, 0] + 0.5) * fx - 0.5, (pts[:, 1] + 0.5) * fy - 0.5], axis=1)
            self.sources.append(g.astype(np.float16))
            self.points.append(pts)
            if progress:
                progress(i + 1, len(self.samples))

    def __len__(self) -> int:
        return len(self.sources)

    def view(self, i: int, kind: str, rng: Optional[np.random.Generator], aug: Augment,
             full: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(normalised view image, landmarks in view pixels (68, 2), box in view pixels).

        ``kind`` is "boundary" (M_b input: whole frame if ``full`` else a face crop) or
        "landmark" (M_l input: face crop, blacked out outside B by the caller).
        """
        src = self.sources[i].astype(np.float32)
        pts = self.points[i]
        box = boundary_from_points(pts)
        S = self.size
        use_aug = aug.enabled and rng is not None
        flip = bool(use_aug and aug.mirror and rng.random() < 0.5)
        angle = float(rng.uniform(-aug.rotate_deg, aug.rotate_deg)) if use_aug else 0.0
        if kind == "boundary" and full:
            h, w = src.shape
            side = float(max(h, w))
            shift = (rng.uniform(-aug.shift, aug.shift, 2) * side) if use_aug else np.zeros(2)
            view = pp.square_view((w - 1) / 2 + shift[0], (h - 1) / 2 + shift[1], side, S,
                                  angle_deg=angle * 0.5, flip=flip)
        else:
            if kind == "boundary":
                scale = float(rng.uniform(*aug.boundary_scale)) if use_aug else self.crop_scale
                sh = tuple(rng.uniform(-3 * aug.shift, 3 * aug.shift, 2)) if use_aug else (0.0, 0.0)
            else:
                scale = self.crop_scale * (float(rng.uniform(*aug.scale)) if use_aug else 1.0)
                sh = tuple(rng.uniform(-aug.shift, aug.shift, 2)) if use_aug else (0.0, 0.0)
            view = pp.box_view(box, S, scale, angle_deg=angle, flip=flip, shift=sh)
        img = pp.normalise(pp.warp_view(src, view))
        vpts = view.to_view(pts)
        if flip:
            vpts = vpts[MIRROR_PERM]
        if use_aug:
            img = photometric(img, rng, aug)
        vbox = boundary_from_points(vpts)
        return img, vpts, vbox


def photometric(img: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    out = np.power(np.clip(img, 0, 1), rng.uniform(*aug.gamma))
    c = rng.uniform(*aug.contrast)
    out = (out - 0.5) * c + 0.5 + rng.uniform(-0.05, 0.05)
    if rng.random() < aug.blur_prob:
        out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), rng.uniform(0.5, 1.3))
    sd = rng.uniform(*aug.noise_std)
    if sd > 0:
        out = out + rng.normal(0.0, sd, out.shape)
    valid = img > 0
    return np.where(valid, np.clip(out, 0, 1), 0.0).astype(np.float32)


def make_item(bank: ViewBank, i: int, kind: str, rng: Optional[np.random.Generator], aug: Augment,
              full: bool, blackout_margin: float, with_mask: bool) -> dict:
    """One training item: ``x`` (S, S), ``target`` (4,) or (136,) normalised, ``valid`` (68,),
    and ``mask`` (S, S) in 0..1 when ``with_mask``."""
    S = bank.size
    img, vpts, vbox = bank.view(i, kind, rng, aug, full=full)
    valid = np.isfinite(vpts).all(axis=1)
    item = {"valid": valid}
    if kind == "boundary":
        item["x"] = img
        item["target"] = pp.box_to_normalised(vbox, S)
        if with_mask:
            item["mask"] = boundary_mask(vbox, S) / 255.0
    else:
        bb = vbox
        if aug.enabled and rng is not None and aug.box_jitter > 0:
            # M_b's box at inference is not the ground truth's: blacking out around a perturbed box
            # keeps M_l from reading the landmarks' extent off the blackout's edges
            e = rng.normal(0.0, aug.box_jitter, 4)
            w, h = vbox[2], vbox[3]
            bb = np.array([vbox[0] + e[0] * w, vbox[1] + e[1] * h, w * (1 + e[2]), h * (1 + e[3])])
        item["x"] = pp.blackout(img, bb, blackout_margin)
        item["target"] = np.nan_to_num(pp.to_normalised(vpts, S), nan=0.0).reshape(-1)
        if with_mask:
            item["mask"] = glow_mask(vpts, S) / 255.0
    return item
