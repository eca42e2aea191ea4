"""Straight motion blur: a streak of a given length and angle (the ``motion`` kind draws 5-21 px)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._kernel import splat_points

__all__ = ["motion_kernels", "random_motion_kernels"]


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


def random_motion_kernels(batch: int, generator: torch.Generator | None = None,
                          length_range: tuple[float, float] = (5.0, 21.0)) -> Tensor:
    """(B, k, k) straight streaks of uniform random length in ``length_range`` and direction."""
    lo, hi = length_range
    length = lo + (hi - lo) * torch.rand(batch, generator=generator)
    angle = 180.0 * torch.rand(batch, generator=generator)
    return motion_kernels(length, angle, size=(int(math.ceil(hi)) + 2) | 1)
