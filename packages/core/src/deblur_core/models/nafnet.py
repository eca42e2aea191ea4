"""NAFNet: the nonlinear-activation-free baseline of Chen et al. (ECCV 2022).

Beyond the seed project: the modern efficient reference. Each block is LayerNorm -> 1x1 -> depthwise 3x3
-> SimpleGate -> simplified channel attention -> 1x1, then LayerNorm -> 1x1 -> SimpleGate -> 1x1, both
with learnable residual scales that start at zero (so every block starts as the identity). A UNet of
such blocks with a global residual.

Inference on a CPU (no autograd, no autocast, no compiler tracing) takes another path with the same weights
and the same result to float rounding, in place and in strips of rows, in :mod:`.nafnet_cpu_inference`:
the network does little arithmetic per byte of activations, so on a CPU its time goes to memory traffic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import zero_init
from .nafnet_cpu_inference import eager_cpu_inference, forward_inplace
from .registry import register_model

__all__ = ["NAFNet", "NAFBlock", "LayerNorm2d", "SimpleGate", "nafnet"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # the channels are the last dimension of channels_last memory: one fused pass, no copy
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: a gate that replaces the activation."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    def __init__(self, channels: int, expand: int = 2) -> None:
        super().__init__()
        hidden = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.conv2 = nn.Conv2d(hidden // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn1 = nn.Conv2d(channels, hidden, 1)
        self.ffn2 = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.gate(self.dwconv(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y


class NAFNet(DeblurModel):
    """UNet of NAFBlocks.

    Args:
        in_channels: 1 or 3.
        width: channels at full resolution; doubled at every downsampling.
        enc_blocks: NAFBlocks per encoder level, finest first.
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level, coarsest first.

    Shape: (B, C, H, W) -> (B, C, H, W), values in [0, 1].
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        width: int = 16,
        enc_blocks: tuple[int, ...] = (1, 1, 2),
        middle_blocks: int = 2,
        dec_blocks: tuple[int, ...] = (1, 1, 1),
    ) -> None:
        super().__init__(in_channels=in_channels)
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks {enc_blocks} and dec_blocks {dec_blocks} need the same length")
        self.stride = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch) for _ in range(middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
        self.ending = zero_init(nn.Conv2d(width, in_channels, 3, padding=1))

    def _forward(self, x: Tensor) -> Tensor:
        if eager_cpu_inference(x):  # the same result in a fraction of the memory traffic
            return forward_inplace(self, x)
        y = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.middle(y)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            y = dec(up(y) + skip)
        return x + self.ending(y)


@register_model("nafnet")
def nafnet(**kwargs) -> NAFNet:
    """A light NAFNet: width 16, encoder [1, 1, 2], 2 middle blocks, decoder [1, 1, 1]."""
    return NAFNet(**kwargs)
