"""Shared helpers for blur kernels: the image check, splatting points into a kernel, padding kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_image", "splat_points", "pad_kernels"]


def check_image(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a (B, C, H, W) image tensor, got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"expected a float image tensor in [0, 1], got dtype {x.dtype}")


def splat_points(points: Tensor, weights: Tensor, size: int) -> Tensor:
    """Rasterise (B, N, 2) sub-pixel (x, y) offsets from the kernel centre into (B, size, size) kernels by
    bilinear splatting (each point spreads its weight over its 4 neighbouring pixels), normalised to 1.

    Bilinear splatting keeps short or slow trajectories smooth instead of snapping them to whole pixels.
    """
    b, n, _ = points.shape
    c = size // 2
    p = points + c
    x0, y0 = p[..., 0].floor(), p[..., 1].floor()
    fx, fy = p[..., 0] - x0, p[..., 1] - y0
    k = torch.zeros(b, size * size, dtype=points.dtype)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        idx = (yi.clamp(0, size - 1) * size + xi.clamp(0, size - 1))
        k.scatter_add_(1, idx, w * weights * ok)
    k = k.view(b, size, size)
    return k / k.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def pad_kernels(kernels: list[Tensor] | Tensor, size: int | None = None) -> Tensor:
    """Zero-pad odd square kernels (each (k, k) or (B, k, k)) to one common odd size and stack them."""
    ks = [k if k.ndim == 3 else k[None] for k in (kernels if isinstance(kernels, list) else [kernels])]
    size = size or max(k.shape[-1] for k in ks)
    out = []
    for k in ks:
        p = (size - k.shape[-1]) // 2
        out.append(F.pad(k, (p, p, p, p)))
    return torch.cat(out)

