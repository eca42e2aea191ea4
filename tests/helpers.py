"""What several test files (and the benchmarks, through ``benchmarks/harness.py``) share.

``tests/`` is on ``sys.path`` while the tests run (pytest's default ``prepend`` import mode puts the
directory of ``tests/conftest.py`` there), so a test imports this module as ``helpers``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["randomise"]


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
