"""The sRGB transfer curve: images are stored gamma-encoded, while a sensor adds up light in linear intensity,
so a blur that stands for light spread over the exposure is applied between :func:`srgb_to_linear` and
:func:`linear_to_srgb`."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["srgb_to_linear", "linear_to_srgb", "average_frames"]


def srgb_to_linear(x: Tensor) -> Tensor:
    """Exact sRGB decoding (IEC 61966-2-1), piecewise linear near black."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Exact sRGB encoding, the inverse of :func:`srgb_to_linear`."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def average_frames(frames: Tensor) -> Tensor:
    """Average (B, T, C, H, W) frames in linear light, as a camera exposing over all of them records;
    returns (B, C, H, W).

    Example:
        >>> frame = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(average_frames(frame[:, None].expand(1, 5, 3, 8, 8)), frame, atol=1e-5)
        True
    """
    if frames.ndim != 5:
        raise ValueError(f"expected (B, T, C, H, W) frames, got {tuple(frames.shape)}")
    return linear_to_srgb(srgb_to_linear(frames).mean(dim=1))
