"""The U-Net of the paper, with configurable depth and channel widths.

Down path: per step two 3x3 stride-1 convolutions (ReLU) then a 2x2 stride-2 max-pool.
Bottom: two 3x3 convolutions at the last width. Up path: per step a 2x2 stride-2 transposed
convolution, concatenation with the down-path features of the same size, two 3x3 convolutions.
A final 1x1 convolution to one channel. Padding 1 keeps sizes, so a 128x128 input gives a
128x128 output. The output is a logit map (stage 1 trains it with pixel-wise BCE).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512, 1024), in_channels: int = 1,
                 out_channels: int = 1) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2:
            raise ValueError(f"a U-Net needs at least two widths, got {widths}")
        self.widths = widths
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2, 2)
        self.bottom = DoubleConv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        cin = widths[-1]
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.up_conv.append(DoubleConv(2 * w, w))
            cin = w
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def decoder_features(self, x: torch.Tensor, levels: int) -> list[torch.Tensor]:
        """The bottom's output then the outputs of the first ``levels`` up steps (coarse to fine);
        the finer steps and the output convolution are not computed (a head that reads a coarser
        level skips them)."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        out = [x]
        for up, conv, skip in list(zip(self.up, self.up_conv, reversed(skips)))[:levels]:
            x = up(x)
            x = conv(torch.cat([skip, x], dim=1))
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.decoder_features(x, len(self.up))[-1])
