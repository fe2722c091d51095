"""M_b and M_l: a U-Net feature extractor plus a fully connected head.

U-Net (logits) -> sigmoid -> flatten (S*S) -> FC(hidden) -> sigmoid -> FC(out) -> sigmoid.
The sigmoid on the U-Net output turns the stage-1 mask logits into the mask the head reads.
Outputs are normalised to [0, 1] of the model's S x S input: M_b gives B = [x, y, w, h],
M_l gives [x1, y1, ..., x68, y68].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .unet import UNet


class DMSLModel(nn.Module):
    n_outputs: int = 0
    kind: str = ""
    end_to_end = False   # True: no stage 2 (the whole model trains on the regression loss)

    def __init__(self, widths: Sequence[int], hidden: int, input_size: int = 128) -> None:
        super().__init__()
        if input_size % (2 ** (len(widths) - 1)):
            raise ValueError(f"input size {input_size} is not divisible by 2^{len(widths) - 1} "
                             f"(the U-Net has {len(widths) - 1} pooling steps)")
        self.input_size = int(input_size)
        self.unet = UNet(widths)
        self.fc1 = nn.Linear(self.input_size * self.input_size, int(hidden))
        self.fc2 = nn.Linear(int(hidden), self.n_outputs)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-1 output: (N, 1, S, S) logits of the mask."""
        return self.unet(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads: the sigmoid mask, flattened to (N, S*S)."""
        return torch.sigmoid(self.unet(x)).flatten(1)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(feats))))

    def head_parameters(self):
        return list(self.fc1.parameters()) + list(self.fc2.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BoundaryModel(DMSLModel):
    """M_b: face image -> B = [x, y, w, h] (normalised)."""
    n_outputs = 4
    kind = "boundary"


class LandmarkModel(DMSLModel):
    """M_l: blacked-out face image -> 68 (x, y) pairs (normalised)."""
    n_outputs = 136
    kind = "landmark"


class HeatmapLandmarkModel(nn.Module):
    """M_l with a heatmap head (configuration ``head="heatmap"``), our answer to the paper's
    admitted weakness (ill-shaped, compressed outputs it blames on the loss and the FC head).

    The U-Net's last 1x1 convolution gives one logit map per landmark (68, S, S); a spatial
    softmax turns each into a distribution and its expectation (soft-argmax, "integral
    regression") gives the point. The output is the same (N, 136) of normalised coordinates as
    :class:`LandmarkModel` ((x + 0.5) / S, pixel centres), so the pipeline does not change. The
    whole network is trained end to end on the point distance (``losses.point_distance_loss``);
    there is no stage 2. ``beta`` scales the logits before the softmax (learned).
    """
    n_outputs = 136
    kind = "landmark"
    end_to_end = True

    def __init__(self, widths: Sequence[int], hidden: int = 0, input_size: int = 128, n_points: int = 68) -> None:
        super().__init__()
        if input_size % (2 ** (len(widths) - 1)):
            raise ValueError(f"input size {input_size} is not divisible by 2^{len(widths) - 1} "
                             f"(the U-Net has {len(widths) - 1} pooling steps)")
        self.input_size = int(input_size)
        self.n_points = int(n_points)
        self.unet = UNet(widths, out_channels=self.n_points)
        self.log_beta = nn.Parameter(torch.zeros(()))
        S = self.input_size
        grid = (torch.arange(S, dtype=torch.float32) + 0.5) / S
        self.register_buffer("grid", grid, persistent=False)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 68, S, S) probabilities (each map sums to 1)."""
        logits = self.unet(x) * self.log_beta.exp()
        n, k, h, w = logits.shape
        return torch.softmax(logits.reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.heatmaps(x)
        gx = self.grid.to(p.dtype)
        px = (p.sum(dim=2) * gx).sum(dim=-1)   # marginal over rows -> x
        py = (p.sum(dim=3) * gx).sum(dim=-1)   # marginal over columns -> y
        return torch.stack([px, py], dim=-1).reshape(x.shape[0], -1)

    def head_parameters(self):
        return []
