"""EDDenseNet: an encoder-decoder of DenseBlocks (Huang et al. 2017), as in the original project.

Growth rate 16, encoder DenseBlocks of [6, 6, 3] layers (the last one is the bottleneck), decoder
DenseBlocks of [3, 6] layers, each layer Conv -> BN -> ReLU, and a ConvTranspose at the end. Between
encoder blocks a 1x1 transition halves the channels and a stride-2 pool halves the resolution; the decoder
upsamples with ConvTranspose and concatenates the encoder features of the same scale (as in the
Tiramisu, Jegou et al. 2017).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import conv_bn_relu, zero_init
from .registry import register_model

__all__ = ["EDDenseNet", "DenseBlock", "eddensenet"]


class DenseBlock(nn.Module):
    """``layers`` Conv-BN-ReLU layers, each seeing the concatenation of all earlier feature maps."""

    def __init__(self, in_channels: int, layers: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(conv_bn_relu(in_channels + i * growth, growth) for i in range(layers))
        self.out_channels = in_channels + layers * growth

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return torch.cat(feats, dim=1)


class EDDenseNet(DeblurModel):
    """Encoder-decoder DenseNet.

    Args:
        in_channels: 1 or 3.
        growth: channels each dense layer adds.
        encoder: layers per encoder DenseBlock, finest first; the last block is the bottleneck.
        decoder: layers per decoder DenseBlock, coarsest first (one per upsampling step).
        stem: channels of the first convolution.

    Shape: (B, C, H, W) -> (B, C, H, W), values in [0, 1].
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        growth: int = 16,
        encoder: tuple[int, ...] = (6, 6, 3),
        decoder: tuple[int, ...] = (3, 6),
        stem: int = 32,
    ) -> None:
        super().__init__(in_channels=in_channels)
        if len(decoder) != len(encoder) - 1:
            raise ValueError(f"need one decoder block per downsampling: encoder {encoder}, decoder {decoder}")
        self.stride = 2 ** len(decoder)
        self.stem = conv_bn_relu(in_channels, stem)
        self.down_blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        skip_channels = []
        ch = stem
        for i, n in enumerate(encoder):
            block = DenseBlock(ch, n, growth)
            self.down_blocks.append(block)
            ch = block.out_channels
            if i < len(encoder) - 1:
                skip_channels.append(ch)
                # 1x1 compression then pooling keeps the encoder from growing without bound
                self.transitions.append(nn.Sequential(conv_bn_relu(ch, ch // 2, 1), nn.AvgPool2d(2)))
                ch //= 2
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for n, skip in zip(decoder, reversed(skip_channels)):
            self.ups.append(nn.ConvTranspose2d(ch, ch // 2, 2, stride=2))
            block = DenseBlock(ch // 2 + skip, n, growth)
            self.up_blocks.append(block)
            ch = block.out_channels
        self.head = zero_init(nn.ConvTranspose2d(ch, in_channels, 3, padding=1))

    def _forward(self, x: Tensor) -> Tensor:
        y = self.stem(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            y = block(y)
            if i < len(self.transitions):
                skips.append(y)
                y = self.transitions[i](y)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            y = block(torch.cat([up(y), skip], dim=1))
        return x + self.head(y)


@register_model("eddensenet")
def eddensenet(**kwargs) -> EDDenseNet:
    """The original project's EDDenseNet: growth 16, encoder [6, 6, 3], decoder [3, 6]."""
    return EDDenseNet(**kwargs)
