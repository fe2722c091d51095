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

    The U-Net's decoder is read at half the input resolution: the second-finest up step's output
    and the (upsampled) step below it are concatenated and mapped per pixel (1x1 convolutions,
    ``head_channels`` hidden) to one logit map per landmark (68, S/2, S/2). A spatial softmax turns
    each into a distribution and its expectation (soft-argmax, "integral regression") is the point.
    The output is the same (N, 136) of normalised coordinates as :class:`LandmarkModel`
    ((x + 0.5) / S, pixel centres), so the pipeline does not change. Trained end to end (no stage 2)
    on the point distance plus a cross-entropy between each map and a Gaussian at the true point
    (``losses.heatmap_landmark_loss``). The finest decoder level is never computed.

    (A first version read 68 maps off the finest level through one 1x1 convolution: 68 maps that
    are linear mixtures of that level's 8 channels cannot peak at 68 places; it stalled at a
    validation NME of 0.12.)
    """
    n_outputs = 136
    kind = "landmark"
    end_to_end = True

    def __init__(self, widths: Sequence[int], hidden: int = 0, input_size: int = 128, n_points: int = 68,
                 head_channels: int = 64) -> None:
        super().__init__()
        if len(widths) < 3:
            raise ValueError(f"the heatmap head needs a U-Net of at least 3 levels, got widths {tuple(widths)}")
        if input_size % (2 ** (len(widths) - 1)):
            raise ValueError(f"input size {input_size} is not divisible by 2^{len(widths) - 1} "
                             f"(the U-Net has {len(widths) - 1} pooling steps)")
        self.input_size = int(input_size)
        self.n_points = int(n_points)
        self.unet = UNet(widths)
        self.levels = len(widths) - 2                      # up steps computed: down to S/2
        # the finest up step and the 1x1 output convolution are never used: drop them
        self.unet.up = self.unet.up[:self.levels]
        self.unet.up_conv = self.unet.up_conv[:self.levels]
        del self.unet.out
        self.map_size = self.input_size // 2
        cin = widths[1] + widths[2]
        self.hm_head = nn.Sequential(nn.Conv2d(cin, head_channels, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(head_channels, head_channels, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(head_channels, self.n_points, 1))
        M = self.map_size
        self.register_buffer("grid", (torch.arange(M, dtype=torch.float32) + 0.5) / M, persistent=False)

    def heatmap_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 68, S/2, S/2) logits."""
        f = self.unet.decoder_features(x, self.levels)
        fine, coarse = f[-1], f[-2]
        coarse = nn.functional.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.hm_head(torch.cat([fine, coarse], dim=1))

    def _points(self, logp: torch.Tensor) -> torch.Tensor:
        p = logp.exp()
        gx = self.grid.to(p.dtype)
        px = (p.sum(dim=2) * gx).sum(dim=-1)   # marginal over rows -> x
        py = (p.sum(dim=3) * gx).sum(dim=-1)   # marginal over columns -> y
        return torch.stack([px, py], dim=-1).reshape(p.shape[0], -1)

    def log_heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 68, M, M) log-probabilities (each map's probabilities sum to 1), M = S/2."""
        logits = self.heatmap_logits(x)
        n, k, h, w = logits.shape
        return torch.log_softmax(logits.reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_heatmaps(x).exp()

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points (N, 136), log-heatmaps) for the training loss."""
        logp = self.log_heatmaps(x)
        return self._points(logp), logp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._points(self.log_heatmaps(x))

    def head_parameters(self):
        return []
