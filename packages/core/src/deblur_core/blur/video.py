"""Video-style blur as in REDS and GoPro: the mean of consecutive sharp sub-frames, in linear light.

A camera integrates light, so the blurred frame is the average of what the sensor saw during the
exposure *in linear intensity*; frames are stored gamma-encoded, so we decode (sRGB transfer curve, the
standard that 8-bit frames use), average, and re-encode. From a still photo, a simulated camera pan
produces the sub-frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._kernel import check_image
from .paths import path_kernels

__all__ = ["srgb_to_linear", "linear_to_srgb", "average_frames", "pan_paths", "pan_kernels", "pan_blur"]


def srgb_to_linear(x: Tensor) -> Tensor:
    """Exact sRGB decoding (IEC 61966-2-1), piecewise linear near black."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Exact sRGB encoding, the inverse of :func:`srgb_to_linear`."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def average_frames(frames: Tensor) -> Tensor:
    """Average (B, T, C, H, W) sub-frames in linear light; returns (B, C, H, W).

    T identical frames give the frame back (up to float rounding).
    """
    if frames.ndim != 5:
        raise ValueError(f"expected (B, T, C, H, W) sub-frames, got {tuple(frames.shape)}")
    return linear_to_srgb(srgb_to_linear(frames).mean(dim=1))


def pan_paths(batch: int, generator: torch.Generator | None = None, *, max_shift: float = 15.0,
              n_sub: int = 15) -> Tensor:
    """(B, n_sub, 2) sub-frame offsets (x, y) of a camera pan: a straight move of random direction and
    length up to ``max_shift`` pixels, with a random gentle curvature, centred on zero."""
    length = max_shift * (0.3 + 0.7 * torch.rand(batch, generator=generator))
    ang = 2 * math.pi * torch.rand(batch, generator=generator)
    bend = 0.3 * (torch.rand(batch, generator=generator) - 0.5) * length
    t = torch.linspace(-0.5, 0.5, n_sub)[None, :]
    along = t * length[:, None]
    across = bend[:, None] * (4 * t**2 - 1 / 3)  # a parabola with zero mean
    c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
    return torch.stack([along * c - across * s, along * s + across * c], dim=-1)


def pan_kernels(paths: Tensor, size: int | None = None) -> Tensor:
    """The (B, k, k) kernel equivalent to averaging sub-frames shifted along ``paths`` (in linear light)."""
    return path_kernels(paths, size)


def _shift(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    # sample x at (u - dx, v - dy): content moves by (dx, dy); reflection at the borders
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    gx = (xs[None] - dx[:, None, None]) / max(w - 1, 1) * 2 - 1
    gy = (ys[None] - dy[:, None, None]) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def pan_blur(x: Tensor, generator: torch.Generator | None = None, *, max_shift: float = 15.0,
             n_sub: int = 15, paths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Simulate a camera pan over a still photo: average ``n_sub`` shifted copies in linear light.

    Returns:
        (blurred (B, C, H, W), kernels (B, k, k)): the kernel is the pan rasterised, which is what the
        averaging amounts to in linear light (for a classical non-blind baseline).
    """
    check_image(x)
    if paths is None:
        paths = pan_paths(x.shape[0], generator, max_shift=max_shift, n_sub=n_sub)
    lin = srgb_to_linear(x)
    acc = torch.zeros_like(lin)
    for t in range(paths.shape[1]):
        acc += _shift(lin, paths[:, t, 0].to(x), paths[:, t, 1].to(x))
    return linear_to_srgb(acc / paths.shape[1]), pan_kernels(paths)
