"""The ``video`` kind: a camera pan over a still photo, recorded as sub-frames averaged in linear light, the way
REDS and GoPro made their blurred frames from high-speed video.

A pan is drawn as the (x, y) offsets of its sub-frames (:func:`pan_paths`); its kernel is those offsets
rasterised (:func:`~deblur_core.blur.paths.path_kernels`), rendered in linear light like every other kind.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["pan_paths"]


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
