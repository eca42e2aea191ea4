"""Long, curved motion paths with speed changes: of the camera (a pan recorded as sub-frames) or of the
scene, and their kernels.

Real video blur (GoPro, REDS) reaches 30-60 pixels, and the path is rarely a straight line crossed at
constant speed: the camera accelerates or slows during the exposure and its path bends. A path here is
``p(t)`` for ``t`` in [-1/2, 1/2]: along its direction ``L * (t + a * (t^2 - 1/12))`` (speed from ``1 - a``
to ``1 + a`` times the mean; the end points stay ``L`` apart), across it a parabola of height
``bend * L``. Uniform time samples of it are where the exposure spent equal time, so a slow stretch weighs
more in the kernel, as it does on a sensor.

Two ways to record a path:

* ``continuous`` motion (an object or a camera moving while the shutter is open): densely sampled, the
  kernel is a smooth streak;
* ``sub-frames`` (video frames averaged, as REDS and GoPro built their blurred frames): 7-15 samples, the
  kernel is a row of dots, which leaves the faint ghost edges such frames show.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._kernel import splat_points

__all__ = ["MAX_REACH", "curved_paths", "path_kernels"]

MAX_REACH = 24.0  # no path point is farther than this from the centroid: every kernel fits 2 * 24 + 3 = 51


def curved_paths(length: Tensor, generator: torch.Generator | None = None, *, points: int = 64,
                 speed: float = 0.5, bend: float = 0.25) -> Tensor:
    """(B, points, 2) positions (x, y) along paths ``length`` (B,) pixels long end to end, centred on their
    time-weighted centroid (so the blur does not shift the image).

    Args:
        length: (B,) distance from the first to the last position, in pixels.
        speed: the largest speed change: each path draws ``a`` in [-speed, speed] (0: constant speed).
        bend: the largest curvature, as the parabola's height over the length.
    """
    length = torch.as_tensor(length, dtype=torch.float32).reshape(-1)
    b = length.shape[0]
    ang = 2 * math.pi * torch.rand(b, generator=generator)
    a = speed * (2 * torch.rand(b, generator=generator) - 1)
    h = bend * (2 * torch.rand(b, generator=generator) - 1)
    t = torch.linspace(-0.5, 0.5, points)[None, :]
    along = length[:, None] * (t + a[:, None] * (t**2 - 1 / 12))
    across = (h * length)[:, None] * (4 * t**2 - 1 / 3)
    c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
    pts = torch.stack([along * c - across * s, along * s + across * c], dim=-1)
    pts = pts - pts.mean(dim=1, keepdim=True)
    # the fastest paths reach past half their length from the centroid: shrink the rare ones that leave
    # the kernel size every synthesis pads to
    reach = pts.norm(dim=-1).amax(dim=1).clamp_min(1e-6)
    return pts * (MAX_REACH / reach).clamp(max=1.0)[:, None, None]


def path_kernels(paths: Tensor, size: int | None = None) -> Tensor:
    """The (B, k, k) kernels that spend equal weight on each of a path's positions (bilinear splats).

    ``size`` defaults to the smallest odd size that holds every path with a pixel to spare.
    """
    reach = float(paths.abs().max())
    size = size or (2 * int(math.ceil(reach)) + 3) | 1
    return splat_points(paths, torch.ones(paths.shape[:2]), size)
