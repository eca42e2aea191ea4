"""ResUNet: a UNet (Ronneberger et al. 2015) with ResBlocks (He et al. 2016) at every level.

As in the original project: Conv -> BN -> ReLU units, a ResBlock stack at each encoder and decoder level, and a
final ConvTranspose. A global residual (output = input + network) with a zero-initialised last layer
makes the untrained network the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import ResBlockBN, conv_bn_relu, zero_init
from .registry import register_model

__all__ = ["ResUNet", "resunet1", "resunet3"]


class ResUNet(DeblurModel):
    """UNet whose every level is a Conv-BN-ReLU followed by ``blocks`` ResBlocks.

    Args:
        in_channels: 1 or 3.
        widths: channels per level, finest first; the network downsamples ``len(widths) - 1`` times.
        blocks: ResBlocks per level.

    Shape: (B, C, H, W) -> (B, C, H, W), values in [0, 1].
    """

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128), blocks: int = 1) -> None:
        super().__init__(in_channels=in_channels)
        self.stride = 2 ** (len(widths) - 1)
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(nn.Sequential(conv_bn_relu(prev, w), *[ResBlockBN(w) for _ in range(blocks)]))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w_fine, w_coarse in zip(widths[-2::-1], widths[:0:-1]):
            self.ups.append(nn.ConvTranspose2d(w_coarse, w_fine, 2, stride=2))
            self.decoders.append(
                nn.Sequential(conv_bn_relu(2 * w_fine, w_fine), *[ResBlockBN(w_fine) for _ in range(blocks)])
            )
        # the original project's final ConvTranspose: a stride-1 transposed conv back to image channels
        self.head = zero_init(nn.ConvTranspose2d(widths[0], in_channels, 3, padding=1))

    def _forward(self, x: Tensor) -> Tensor:
        skips = []
        y = x
        for i, enc in enumerate(self.encoders):
            if i:
                y = self.pool(y)
            y = enc(y)
            skips.append(y)
        for up, dec, skip in zip(self.ups, self.decoders, skips[-2::-1]):
            y = dec(torch.cat([up(y), skip], dim=1))
        return x + self.head(y)


@register_model("resunet1")
def resunet1(**kwargs) -> ResUNet:
    """ResUNet with one ResBlock per level (a configuration of the original project)."""
    return ResUNet(**{"blocks": 1, **kwargs})


@register_model("resunet3")
def resunet3(**kwargs) -> ResUNet:
    """ResUNet with three ResBlocks per level (a configuration of the original project)."""
    return ResUNet(**{"blocks": 3, **kwargs})
