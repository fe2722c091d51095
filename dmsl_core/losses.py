"""The paper's losses (eq. 1, 2 and 4). Inputs are torch tensors, coordinates normalised."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def boundary_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean squared error over the 4 values of B (and the batch)."""
    return F.mse_loss(pred, target)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2: (1/P) sum_i (x_i - x^_i)^2 + (y_i - y^_i)^2, averaged over the batch.

    ``pred``/``target``: (N, 136) or (N, 68, 2). ``valid``: optional (N, 68) bool; missing points
    (e.g. a 54-point annotation) are left out and P counts the points that exist.
    """
    p = pred.reshape(pred.shape[0], -1, 2)
    t = target.reshape(target.shape[0], -1, 2)
    sq = ((p - t) ** 2).sum(dim=2)
    if valid is None:
        return sq.mean(dim=1).mean()
    v = valid.to(sq.dtype)
    sq = torch.where(valid, sq, torch.zeros_like(sq))
    return (sq.sum(dim=1) / v.sum(dim=1).clamp_min(1)).mean()


def box_distance_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the 4 values of B (normalised units): stage 3's M_b loss."""
    return F.l1_loss(pred, target)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 4: pixel-wise binary cross-entropy between the target mask (0..1) and the predicted one."""
    return F.binary_cross_entropy_with_logits(logits, target)


def point_distance_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                        eps: float = 1e-8) -> torch.Tensor:
    """Mean Euclidean distance between predicted and true points (normalised units), over the
    points that exist and the batch: what NME measures, up to the normaliser. Used by the heatmap
    head (integral regression trains best on an L1-type loss; eq. 2's square under-weights the
    small errors that decide NME)."""
    p = pred.reshape(pred.shape[0], -1, 2)
    t = target.reshape(target.shape[0], -1, 2)
    d = torch.sqrt(((p - t) ** 2).sum(dim=2) + eps)
    if valid is None:
        return d.mean(dim=1).mean()
    v = valid.to(d.dtype)
    d = torch.where(valid, d, torch.zeros_like(d))
    return (d.sum(dim=1) / v.sum(dim=1).clamp_min(1)).mean()


def gaussian_targets(target: torch.Tensor, size: int, sigma: float = 1.0) -> torch.Tensor:
    """(N, P, size, size) distributions: a Gaussian of ``sigma`` map pixels at each normalised point
    (pixel-centre convention, as the heatmap head's soft-argmax), normalised to sum 1."""
    t = target.reshape(target.shape[0], -1, 2) * size - 0.5          # map pixel coordinates
    r = torch.arange(size, dtype=t.dtype, device=t.device)
    gx = torch.exp(-0.5 * ((r[None, None, :] - t[..., 0:1]) / sigma) ** 2)   # (N, P, size)
    gy = torch.exp(-0.5 * ((r[None, None, :] - t[..., 1:2]) / sigma) ** 2)
    g = gy[..., :, None] * gx[..., None, :]
    return g / g.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def heatmap_landmark_loss(points: torch.Tensor, log_maps: torch.Tensor, target: torch.Tensor,
                          valid: torch.Tensor | None = None, weight: float = 0.01, sigma: float = 1.0) -> torch.Tensor:
    """The heatmap head's loss: point distance (what NME measures) + ``weight`` x the cross-entropy
    between each map and a Gaussian at the true point (gives every map a sharp, local signal from
    the first step; the point term alone learns slowly). Missing points count in neither."""
    size = log_maps.shape[-1]
    q = gaussian_targets(target, size, sigma).to(log_maps.dtype)
    ce = -(q * log_maps).sum(dim=(-2, -1))                          # (N, P)
    if valid is None:
        ce_m = ce.mean()
    else:
        v = valid.to(ce.dtype)
        ce_m = ((ce * v).sum(dim=1) / v.sum(dim=1).clamp_min(1)).mean()
    return point_distance_loss(points, target, valid) + weight * ce_m
