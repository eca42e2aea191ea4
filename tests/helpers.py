"""What several test files (and the benchmarks, through ``benchmarks/harness.py``) share.

``tests/`` is on ``sys.path`` while the tests run (pytest's default ``prepend`` import mode puts the
directory of ``tests/conftest.py`` there), so a test imports this module as ``helpers``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["planned_crop", "randomise"]


def randomise(model: nn.Module, seed: int = 0, std: float = 0.01) -> nn.Module:
    """Give the parameters that start at zero (output layers, residual scales, norm biases) random values
    of standard deviation ``std``, in place, and return ``model``.

    Every network here starts as the identity: a test or benchmark that compares two paths, or a checkpoint
    that must differ from an untrained one, needs the whole network to compute.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_((torch.randn(p.shape, generator=g) * std).to(p.device, p.dtype))
    return model


def planned_crop(images: list[torch.Tensor], plan, j: int, full: int, sharp: torch.Tensor) -> torch.Tensor:
    """Sample ``j``'s sharp crop with its context (1, C, full, full), rebuilt from a training plan
    (``deblur_core.data.batches.Plan``): of its two candidate crops, flipped as planned, the one whose centre is
    the batch's sharp target ``sharp`` (1, C, patch, patch). Fails the test when neither matches."""
    import pytest

    m = (full - sharp.shape[-1]) // 2
    n = plan.image.numel() // 2
    for c in (j, j + n):
        i, y, x = int(plan.image[c]), int(plan.y[c]), int(plan.x[c])
        crop = (images[i][:, y : y + full, x : x + full][None] * 255).round() / 255
        if plan.flip_h[j]:
            crop = crop.flip(-1)
        if plan.flip_v[j]:
            crop = crop.flip(-2)
        if torch.allclose(crop[..., m:-m, m:-m], sharp, atol=1e-6):
            return crop
    pytest.fail("no candidate crop matches the sharp target")
