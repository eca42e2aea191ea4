"""Building blocks shared by more than one model family."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["conv_bn_relu", "ResBlockBN", "ResBlock", "ConvLSTMCell", "zero_init"]


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU, the unit of the original project's ResUNet and EDDenseNet."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ResBlockBN(nn.Module):
    """(Conv -> BN -> ReLU -> Conv -> BN) + identity, then ReLU (He et al. 2016)."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        p = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=p, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=p, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x).add_(x))  # in place: BatchNorm's backward does not need its output


class ResBlock(nn.Module):
    """Conv -> ReLU -> Conv + identity, without normalisation, as in SRN-DeblurNet."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        p = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=p),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=p),
        )

    def forward(self, x: Tensor) -> Tensor:
        # in place on the last convolution's output (its backward does not need it): at 720p a fresh
        # tensor per residual costs a measurable share of SRN's inference time in allocation and page faults
        return self.body(x).add_(x)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al. 2015): one conv over [input, hidden] gives the four gates."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def zero_init(layer: nn.Module) -> nn.Module:
    """Zero a layer's weights and bias so that a residual network starts as the identity.

    A default-initialised last layer adds noise to every output at step 0 (an untrained SRN started at
    12 dB below its input); starting from "output = input" lets training only ever improve on the blur.
    """
    for p in layer.parameters():
        nn.init.zeros_(p)
    return layer
