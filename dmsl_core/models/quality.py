"""The landmark stage's own confidence: a small network that looks at the final M_l crop and the
68 points M_l put on it, and says how likely the points sit on a face (NME < 0.08).

Why a separate network and not a head on M_l: it reads only what every backend gives (the crop
the pipeline cut and the points that came back), so it works the same for plain torch, the
speed options and ONNX Runtime, and it ships beside a model without retraining it.

Inputs (:func:`quality_inputs`):

- a 2 x Q x Q image (Q = 48): channel 0 the final pass's crop (the face box's square view,
  normalised, *before* the blackout), channel 1 the 68 points drawn into that view as small
  Gaussian dots - so the network can check that dots sit on eyes, nose, mouth and jaw;
- a vector: the points in the view centred on their mean and divided by their spread (136), the
  mean (2) and spread (1) in view units, and the flip disagreement (the mean distance between the
  crop's and its mirror's point sets over the spread) with a flag that says whether it was
  measured (1) or not (0: no mirrored pass).

Outputs: (logit of P(NME < 0.08), predicted log NME). :class:`QualityModel` wraps the network,
its threshold and its provenance; ``quality.safetensors`` beside a model's weights holds it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

QUALITY_FORMAT = "dmsl-quality-v1"
QUALITY_NAME = "quality.safetensors"
Q = 48                 # side of the quality network's image input
N_VEC = 136 + 3 + 2    # points (136), centre (2), spread (1), flip disagreement + its flag (2)
SUCCESS_NME = 0.08     # the failure threshold the reports use: a face with NME >= this is a failure

_GRID = (np.arange(Q, dtype=np.float32) + 0.5)


class QualityNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c = [2, 16, 32, 64, 64]
        layers: list[nn.Module] = []
        for a, b in zip(c[:-1], c[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*layers)                       # 48 -> 3
        self.img_fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.ReLU(inplace=True))
        self.vec_fc = nn.Sequential(nn.Linear(N_VEC, 128), nn.ReLU(inplace=True), nn.Linear(128, 64),
                                    nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Linear(192, 64), nn.ReLU(inplace=True), nn.Linear(64, 2))

    def forward(self, img: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.img_fc(self.conv(img)), self.vec_fc(vec)], dim=1))


def quality_inputs(crop: np.ndarray, points_view: np.ndarray, size: int,
                   flip_dev: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """(image (2, Q, Q), vector (N_VEC,)) float32 for one face: ``crop`` is the S x S normalised view
    of the final M_l pass (before the blackout), ``points_view`` the 68 points in that view's pixels,
    ``flip_dev`` the mean distance (view pixels) between the crop's and the mirror's point sets, or
    None when no mirrored pass ran. Non-finite points are drawn nowhere and count as 0 in the vector
    (the caller gives such a face confidence 0 anyway)."""
    import cv2
    c = np.nan_to_num(np.asarray(crop, dtype=np.float32), nan=0.0)
    img0 = cv2.resize(c, (Q, Q), interpolation=cv2.INTER_AREA) if c.shape[0] != Q else c
    p = np.asarray(points_view, dtype=np.float64).reshape(68, 2) / float(size)   # view units [0, 1]
    ok = np.isfinite(p).all(axis=1)
    img1 = np.zeros((Q, Q), np.float32)
    if ok.any():
        q = (p[ok] * Q).astype(np.float32)                                        # Q-pixel coordinates
        gx = np.exp(-((_GRID[None, :] - q[:, :1]) ** 2) / 2.0)                  # sigma 1 px
        gy = np.exp(-((_GRID[None, :] - q[:, 1:]) ** 2) / 2.0)
        img1 = (gy[:, :, None] * gx[:, None, :]).max(axis=0).astype(np.float32)
    vec = np.zeros(N_VEC, np.float32)
    if ok.any():
        centre = p[ok].mean(axis=0)
        spread = float(np.sqrt(((p[ok] - centre) ** 2).sum(axis=1).mean())) or 1e-3
        pn = np.where(ok[:, None], (p - centre) / spread, 0.0)
        vec[:136] = pn.reshape(-1)
        vec[136:138] = centre
        vec[138] = spread
        if flip_dev is not None and math.isfinite(flip_dev):
            vec[139] = min(float(flip_dev) / float(size) / spread, 5.0)
            vec[140] = 1.0
    return np.stack([img0, img1]).astype(np.float32), vec


class QualityModel:
    """The trained network, the confidence under which a face is not a face (``threshold``) and
    the card that says what it was trained and measured on."""

    def __init__(self, net: QualityNet, threshold: float = 0.5, card: Optional[dict] = None,
                 source: str = "") -> None:
        self.net = net.eval()
        self.threshold = float(threshold)
        self.card = card or {}
        self.source = source

    def __call__(self, imgs: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence = P(NME < 0.08) in [0, 1], predicted NME) per face."""
        if len(imgs) == 0:
            return np.zeros(0), np.zeros(0)
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(imgs, np.float32)),
                           torch.from_numpy(np.ascontiguousarray(vecs, np.float32))).float().numpy()
        return 1.0 / (1.0 + np.exp(-out[:, 0].astype(np.float64))), np.exp(out[:, 1].astype(np.float64))

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file
        from ..atomic import atomic_path
        path = Path(path)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        meta = {"format": QUALITY_FORMAT, "threshold": repr(self.threshold), "card": json.dumps(self.card)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=meta)
        return path


def load_quality(path: str | os.PathLike) -> QualityModel:
    """A :class:`QualityModel` from a ``quality.safetensors`` file (clear errors for a bad one)."""
    from .weights import WeightsError, read_safetensors
    path = Path(path)
    meta, tensors = read_safetensors(path, "quality")
    if meta.get("format") != QUALITY_FORMAT:
        raise WeightsError(f"{path}: not a DMSL quality model (metadata format is {meta.get('format')!r}, "
                           f"expected {QUALITY_FORMAT!r})")
    net = QualityNet()
    try:
        net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
        threshold = float(meta.get("threshold", "0.5"))
        card = json.loads(meta.get("card", "{}"))
    except (RuntimeError, ValueError) as exc:
        raise WeightsError(f"{path}: quality weights do not fit this version's network ({str(exc).splitlines()[0]})") from None
    if not 0.0 <= threshold <= 1.0:
        raise WeightsError(f"{path}: threshold {threshold} is not in [0, 1]")
    return QualityModel(net, threshold, card, source=str(path))
