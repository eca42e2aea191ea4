"""Sensor noise and 8-bit quantisation, applied after blur so training inputs look like real frames."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["add_gaussian_noise", "quantize_8bit", "GaussianNoise", "Quantize8bit"]


def add_gaussian_noise(x: Tensor, sigma: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add zero-mean gaussian noise of std ``sigma`` (float, or (B,) per image) and clamp to [0, 1]."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1)
    if (sigma < 0).any():
        raise ValueError(f"noise sigma must be >= 0, got {sigma.tolist()}")
    sigma = sigma.expand(x.shape[0]).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + sigma * noise).clamp(0, 1)


def quantize_8bit(x: Tensor) -> Tensor:
    """Round to the 256 levels an 8-bit file can hold."""
    return torch.round(x.clamp(0, 1) * 255) / 255


class GaussianNoise(nn.Module):
    def __init__(self, sigma: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sigma, self.generator = sigma, generator

    def forward(self, x: Tensor) -> Tensor:
        return add_gaussian_noise(x, self.sigma, self.generator)


class Quantize8bit(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return quantize_8bit(x)
