"""Seeded random streams: one CPU generator per tuple of parts, e.g. ``("train", seed, step, rank)``.

The parts are hashed rather than added to one seed, so neighbouring steps or ranks get unrelated streams,
and a stream depends on its parts alone: a resumed run draws exactly what the interrupted one would have.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["seeded_generator"]


def seeded_generator(*parts: int | str) -> torch.Generator:
    """A generator seeded by a hash of ``parts``: unrelated streams for (seed, step, rank) neighbours."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
