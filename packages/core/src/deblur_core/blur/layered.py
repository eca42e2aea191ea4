"""Non-uniform blur: a foreground region that moves on its own path over a differently moving background.

Real frames mix a camera's motion with objects that move on their own, so no single kernel describes
them. The two-layer model of the layered-blur literature: the foreground ``F`` (a soft-edged region
``m`` of the photo) moves with kernel ``k_f`` and hides what is behind it; the background moves with
``k_b``::

    blurred = (m * x) (*) k_f + (1 - m (*) k_f) * (x (*) k_b)

``m (*) k_f`` is how much of each pixel's exposure the moving foreground covered. The sharp target is the
photo itself: both layers are centred on their paths' centroids, so each sits in the sharp frame where it
was at mid-exposure.

A mask is drawn as a few numbers (:func:`mask_params`) and rendered at any size on any device
(:func:`soft_masks`): a blob whose radius wobbles with the angle (harmonics 2 and 3), edges softened over a
few pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MASK_PARAMS", "mask_params", "soft_masks"]

MASK_PARAMS = 10  # centre y, x; radius; aspect; angle; 2 harmonic amplitudes, 2 phases; edge width


def mask_params(batch: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, MASK_PARAMS) random foreground shapes: centred within the middle 60% of the image, radius 12-35%
    of its short side (about 5-40% of its area), elongated up to 2:1, edges 1-4 px wide."""
    r = torch.rand(batch, MASK_PARAMS, generator=generator)
    return torch.stack([
        0.2 + 0.6 * r[:, 0], 0.2 + 0.6 * r[:, 1],  # centre, as fractions of the height and width
        0.12 + 0.23 * r[:, 2],  # radius / short side
        0.5 + 1.5 * r[:, 3],  # aspect (x radius over y radius): 0.5 to 2
        math.pi * r[:, 4],  # orientation
        0.25 * r[:, 5], 0.15 * r[:, 6],  # wobble of the outline: amplitudes of harmonics 2 and 3
        2 * math.pi * r[:, 7], 2 * math.pi * r[:, 8],
        1.0 + 3.0 * r[:, 9],  # edge width in pixels
    ], dim=1)


def soft_masks(params: Tensor, height: int, width: int, *, margin: int = 0, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, 1, height + 2 * margin, width + 2 * margin) masks in [0, 1] (1 inside the foreground) of the shapes
    ``params`` describes, placed within the ``height`` x ``width`` frame; ``margin`` pixels of the frame's
    surroundings come with it (a crop's context, a reflected border), so the shape does not depend on them."""
    p = params.to(device=device, dtype=dtype)
    ys = torch.arange(-margin, height + margin, device=p.device, dtype=dtype)[None, :, None]
    xs = torch.arange(-margin, width + margin, device=p.device, dtype=dtype)[None, None, :]

    def col(i: int) -> Tensor:
        return p[:, i, None, None]

    short = min(height, width)
    dy, dx = ys - col(0) * (height - 1), xs - col(1) * (width - 1)
    c, s = torch.cos(col(4)), torch.sin(col(4))
    u, v = dx * c + dy * s, -dx * s + dy * c  # in the shape's own axes
    aspect = col(3).sqrt()
    theta = torch.atan2(v * aspect, u / aspect)
    radius = col(2) * short * (1 + col(5) * torch.cos(2 * theta + col(7)) + col(6) * torch.cos(3 * theta + col(8)))
    dist = torch.sqrt((u / aspect) ** 2 + (v * aspect) ** 2)
    return torch.sigmoid((radius - dist) / (col(9) / 4))[:, None]
