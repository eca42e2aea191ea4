"""The ``video`` kind: a camera pan over a still photo, recorded as sub-frames averaged in linear light, the way
REDS and GoPro made their blurred frames from high-speed video.

A pan is drawn as the (x, y) offsets of its sub-frames (:func:`pan_paths`); its kernel is those offsets
rasterised (:func:`~deblur_core.blur.paths.path_kernels`). Whole images are rendered by shifting the image to
each offset and averaging the copies (:func:`average_shifted`), which the ``video`` and ``mix`` evaluation
figures are measured on; training crops are convolved with the rasterised kernel instead, which moves a few
pixels in a hundred thousand to the neighbouring 8-bit level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pan_paths", "average_shifted"]


def pan_paths(batch: int, generator: torch.Generator | None = None, *, max_shift: float = 15.0,
              n_sub: int = 15) -> Tensor:
    """(B, n_sub, 2) sub-frame offsets (x, y) of a camera pan: a move of random direction and length
    30-100% of ``max_shift`` pixels, with a random gentle curvature, centred on zero."""
    length = max_shift * (0.3 + 0.7 * torch.rand(batch, generator=generator))
    ang = 2 * math.pi * torch.rand(batch, generator=generator)
    bend = 0.3 * (torch.rand(batch, generator=generator) - 0.5) * length
    t = torch.linspace(-0.5, 0.5, n_sub)[None, :]
    along = t * length[:, None]
    across = bend[:, None] * (4 * t**2 - 1 / 3)  # a parabola with zero mean
    c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
    return torch.stack([along * c - across * s, along * s + across * c], dim=-1)


def _shift(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    # sample x at (u - dx, v - dy): content moves by (dx, dy); reflection at the borders
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    gx = (xs[None] - dx[:, None, None]) / max(w - 1, 1) * 2 - 1
    gy = (ys[None] - dy[:, None, None]) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def average_shifted(x: Tensor, offsets: Tensor) -> Tensor:
    """The mean of copies of (B, C, H, W) images shifted by their (B, T, 2) sub-pixel offsets (bilinear
    resampling, reflected at the borders): a pan's sub-frames averaged, in whatever light ``x`` is in."""
    acc = torch.zeros_like(x)
    for t in range(offsets.shape[1]):
        acc += _shift(x, offsets[:, t, 0].to(x), offsets[:, t, 1].to(x))
    return acc / offsets.shape[1]
