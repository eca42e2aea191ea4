"""A mix's samples grouped by the kind each drew: how ``mix``, ``realistic`` and :func:`random_kernels` blur a
batch, one call per kind rather than one per sample (camera-shake paths are a Python loop over time steps,
so a group of 16 costs about as much as one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

__all__ = ["per_kind", "in_sample_order"]

T = TypeVar("T")


def per_kind(choice: Tensor, kinds: Sequence[str], fn: Callable[[str, Tensor], T]) -> list[tuple[Tensor, T]]:
    """``fn(kind, idx)`` for each kind of ``kinds`` that ``choice`` holds, on the samples that drew it.

    Args:
        choice: (B,) the kind each sample drew, as an index into ``kinds``.
        kinds: the mix's kinds; groups are made in this order (and ``fn`` draws from its generator in it).
        fn: called once per kind drawn, with ``idx``: the (n,) ascending indices of its samples.

    Returns:
        ``[(idx, fn(kind, idx)), ...]`` for the kinds drawn, in the order of ``kinds``.
    """
    groups = []
    for i, kind in enumerate(kinds):
        idx = (choice == i).nonzero().flatten()
        if idx.numel():
            groups.append((idx, fn(kind, idx)))
    return groups


def in_sample_order(groups: Sequence[tuple[Tensor, Tensor]],
                    join: Callable[[list[Tensor]], Tensor] = torch.cat) -> Tensor:
    """Results made group by group, a (n, ...) tensor for the samples ``idx`` of each, back in sample order.

    ``join`` makes one (B, ...) tensor of the groups' results (e.g. :func:`pad_kernels` for kernels of
    several sizes); its rows are then put where their samples stand.
    """
    order = torch.cat([idx for idx, _ in groups])
    values = join([v for _, v in groups])
    return values[torch.argsort(order).to(values.device)]
