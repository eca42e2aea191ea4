"""Camera-shake blur from random trajectories in the style of Boracchi & Foi (2012).

"Modeling the performance of image restoration from motion blur" describes a camera path as a random walk
whose velocity has inertia: every step adds a gaussian perturbation and a centripetal pull back toward
the origin, the speed is kept constant, and with a small probability the direction jerks (an abrupt
shake). The path, sampled densely, is rasterised into a kernel weighted by the time spent at each point.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._kernel import splat_points

__all__ = ["shake_trajectories", "shake_kernels"]


def shake_trajectories(batch: int, generator: torch.Generator | None = None, *, steps: int = 256,
                       anxiety: float | None = None, impulse_prob: float | None = None) -> Tensor:
    """(B, steps, 2) random camera paths (x, y), unscaled, following Boracchi & Foi's recipe.

    Args:
        anxiety: strength of the random perturbations (default: uniform in [0, 0.1) per path, as in the
            paper's generator).
        impulse_prob: per-step probability of an abrupt jerk, before scaling by anxiety (default uniform
            in [0, 0.2) per path).
    """
    def draw(v, hi):
        return torch.full((batch,), float(v)) if v is not None else hi * torch.rand(batch, generator=generator)

    anx = draw(anxiety, 0.1)
    freq = draw(impulse_prob, 0.2)
    centripetal = 0.7 * torch.rand(batch, generator=generator)
    gauss = 10 * torch.rand(batch, generator=generator)
    ang = 2 * math.pi * torch.rand(batch, generator=generator)
    step_len = 1.0 / (steps - 1)
    v = torch.polar(torch.ones(batch), ang) * torch.where(anx > 0, anx, torch.full_like(anx, step_len))
    x = torch.zeros(batch, steps, dtype=torch.complex64)
    for t in range(steps - 1):
        jerk = torch.rand(batch, generator=generator) < freq * anx
        turn = torch.polar(torch.ones(batch), math.pi + (torch.rand(batch, generator=generator) - 0.5))
        abrupt = torch.where(jerk, 2 * v * turn, torch.zeros_like(v))
        noise = torch.complex(torch.randn(batch, generator=generator), torch.randn(batch, generator=generator))
        dv = abrupt + anx * (gauss * noise - centripetal * x[:, t]) * step_len
        v = v + dv
        v = v / v.abs().clamp_min(1e-12) * step_len  # constant speed: only the direction wanders
        x[:, t + 1] = x[:, t] + v
    return torch.stack([x.real, x.imag], dim=-1)


def shake_kernels(batch: int, size: int = 25, generator: torch.Generator | None = None, *,
                  extent: tuple[float, float] = (0.35, 1.0), **trajectory_kwargs) -> Tensor:
    """(B, size, size) camera-shake kernels summing to 1.

    Each path is centred on its centroid and scaled so that its farthest point reaches a random share
    (``extent``) of the usable kernel radius, so kernels range from mild to strong shake.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd number >= 3, got {size}")
    pts = shake_trajectories(batch, generator, **trajectory_kwargs)
    # centre on the centroid (the time-weighted mean position): the kernel then blurs without shifting the
    # image, so a network is not asked to undo a random translation it cannot see
    pts = pts - pts.mean(dim=1, keepdim=True)
    reach = pts.abs().amax(dim=(1, 2)).clamp_min(1e-6)
    lo, hi = extent
    target = (size - 3) / 2 * (lo + (hi - lo) * torch.rand(batch, generator=generator))
    pts = pts * (target / reach)[:, None, None]
    return splat_points(pts, torch.ones(pts.shape[:2]), size)

