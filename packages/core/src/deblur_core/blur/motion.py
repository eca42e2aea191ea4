"""Linear motion blur: a straight streak of a given length and angle."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._kernel import check_image, convolve, splat_points

__all__ = ["motion_kernels", "motion_blur", "random_motion_kernels"]


def motion_kernels(length: Tensor, angle: Tensor, size: int | None = None) -> Tensor:
    """Anti-aliased line kernels centred on the kernel centre.

    Args:
        length: (B,) streak lengths in pixels (>= 1).
        angle: (B,) angles in degrees, counter-clockwise from the x axis.
        size: odd kernel size; default the smallest odd size >= max length + 2.

    Returns:
        (B, k, k) kernels summing to 1.
    """
    length = torch.as_tensor(length, dtype=torch.float32).reshape(-1)
    angle = torch.as_tensor(angle, dtype=torch.float32).reshape(-1).expand_as(length)
    if (length < 1).any():
        raise ValueError(f"length must be >= 1 pixel, got {length.tolist()}")
    size = size or (int(math.ceil(float(length.max()))) + 2) | 1
    n = 4 * size  # several samples per pixel so the splatted line has no gaps
    t = torch.linspace(-0.5, 0.5, n)[None, :] * length[:, None]
    a = torch.deg2rad(angle)[:, None]
    pts = torch.stack([t * torch.cos(a), -t * torch.sin(a)], dim=-1)  # image y points down
    return splat_points(pts, torch.ones_like(t), size)


def motion_blur(x: Tensor, length: float | Tensor, angle: float | Tensor) -> Tensor:
    """Blur each image of (B, C, H, W) along a straight line of ``length`` pixels at ``angle`` degrees."""
    check_image(x)
    b = x.shape[0]
    length = torch.as_tensor(length, dtype=torch.float32).reshape(-1).expand(b)
    angle = torch.as_tensor(angle, dtype=torch.float32).reshape(-1).expand(b)
    return convolve(x, motion_kernels(length, angle))


def random_motion_kernels(batch: int, generator: torch.Generator | None = None,
                          length_range: tuple[float, float] = (5.0, 21.0)) -> Tensor:
    """(B, k, k) linear motion kernels of uniform random length and direction."""
    lo, hi = length_range
    length = lo + (hi - lo) * torch.rand(batch, generator=generator)
    angle = 180.0 * torch.rand(batch, generator=generator)
    return motion_kernels(length, angle, size=(int(math.ceil(hi)) + 2) | 1)
