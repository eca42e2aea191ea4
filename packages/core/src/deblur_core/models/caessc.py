"""CAESSC / RED-Net: convolutional auto-encoder with symmetric skip connections (Mao et al. 2016).

A chain of ``depth // 2`` convolutions and ``depth // 2`` transposed convolutions. Every ``skip_every``
layers the decoder adds the encoder feature map of the mirrored layer, and a highway skip adds the input
image to the last layer's output. ``half=True`` is the original project's variant whose first convolution has
stride 2 and last transposed convolution upsamples back, so the inner layers run at half resolution
(4x fewer FLOPs).

The output layer follows the original project's options: ``"sigmoid"`` applies the sigmoid to the highway sum taken in
logit space, ``sigmoid(logit(x) + r)``, so that a zero residual still returns the input; ``"relu"`` is
``relu(x + r)`` as in RED-Net; ``"none"`` is ``x + r``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import zero_init
from .registry import register_model

__all__ = ["CAESSC", "caessc_d22_f128_half", "caessc_d22_f128_half_nosigmoid", "caessc_d30_f64", "red30"]

_OUTPUTS = ("sigmoid", "relu", "none")


class CAESSC(DeblurModel):
    """RED-Net style conv/deconv chain with symmetric skips.

    Args:
        in_channels: 1 or 3.
        depth: total number of layers (convolutions + transposed convolutions), even.
        filters: channels of every inner layer.
        kernel_size: spatial size of every kernel.
        skip_every: add a symmetric skip every this many decoder layers.
        half: run the inner layers at half resolution.
        output: last-layer activation, one of ``"sigmoid"``, ``"relu"``, ``"none"``.

    Shape: (B, C, H, W) -> (B, C, H, W), values in [0, 1].
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        depth: int = 30,
        filters: int = 64,
        kernel_size: int = 3,
        skip_every: int = 2,
        half: bool = False,
        output: str = "sigmoid",
    ) -> None:
        super().__init__(in_channels=in_channels)
        if depth < 4 or depth % 2:
            raise ValueError(f"depth must be an even number >= 4, got {depth}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got '{output}'")
        self.output, self.skip_every = output, skip_every
        self.stride = 2 if half else 1
        n, p = depth // 2, kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else filters, filters, kernel_size, stride=2 if half and i == 0 else 1, padding=p)
            for i in range(n)
        )
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(filters, filters, kernel_size, padding=p) for _ in range(n - 1))
        last = nn.ConvTranspose2d(filters, in_channels, 4, stride=2, padding=1) if half else nn.ConvTranspose2d(
            filters, in_channels, kernel_size, padding=p
        )
        self.deconvs.append(zero_init(last))
        self.act = nn.ReLU(inplace=True)

    def _forward(self, x: Tensor) -> Tensor:
        feats = []
        y = x
        for conv in self.convs:
            y = self.act(conv(y))
            feats.append(y)
        n = len(self.deconvs)
        for j, deconv in enumerate(self.deconvs[:-1]):
            y = deconv(y)
            mirror = n - 2 - j  # the encoder output with this decoder output's shape and depth
            if (j + 1) % self.skip_every == 0:
                y = y + feats[mirror]
            y = self.act(y)
        r = self.deconvs[-1](y)
        if self.output == "sigmoid":
            return torch.sigmoid(torch.logit(x.clamp(0, 1), eps=1e-4) + r)
        if self.output == "relu":
            return torch.relu(x + r)
        return x + r


@register_model("caessc-d22-f128-half")
def caessc_d22_f128_half(**kwargs) -> CAESSC:
    """22 layers, 128 filters, half-resolution inner layers, sigmoid output (a configuration of the original project)."""
    return CAESSC(**{"depth": 22, "filters": 128, "half": True, "output": "sigmoid", **kwargs})


@register_model("caessc-d22-f128-half-nosigmoid")
def caessc_d22_f128_half_nosigmoid(**kwargs) -> CAESSC:
    """As ``caessc-d22-f128-half`` with a ReLU output instead of the sigmoid."""
    return CAESSC(**{"depth": 22, "filters": 128, "half": True, "output": "relu", **kwargs})


@register_model("caessc-d30-f64")
def caessc_d30_f64(**kwargs) -> CAESSC:
    """30 layers, 64 filters, full resolution, sigmoid output (a configuration of the original project)."""
    return CAESSC(**{"depth": 30, "filters": 64, "half": False, "output": "sigmoid", **kwargs})


@register_model("red30")
def red30(**kwargs) -> CAESSC:
    """RED-Net 30 (Mao et al. 2016): 30 layers, 128 filters, 3x3, skips every 2 layers, no downsampling."""
    return CAESSC(**{"depth": 30, "filters": 128, "half": False, "output": "relu", **kwargs})
