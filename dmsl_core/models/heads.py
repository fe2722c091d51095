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
