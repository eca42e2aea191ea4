"""Real blurred/sharp pairs (REDS, GoPro, ``pairs:PATH``), read lazily: REDS alone holds 24,000 720p
frames, so decoded images pass through a small byte-bounded cache."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch

from .cache import ImageCache
from ..seeding import seeded_generator
from .base import (CACHE_BYTES, Batch, PairFiles, check_train_args, chunks, concat, flip, large_enough, place_crop,
                   randint, read_channels, val_layout)

__all__ = ["PairedSource"]


class PairedSource:
    """Real blurred/sharp pairs read lazily from disk (REDS, GoPro, pairs); aligned random crops and flips."""

    def __init__(self, name: str, fmt: str, train: list[PairFiles], val: list[PairFiles], *, val_patch: int,
                 val_count: int, channels: int) -> None:
        self.name, self.fmt = name, fmt
        self._train, self._val = train, val
        self.val_patch = min(val_patch, *(p.short_side for p in val))
        self.val_count = val_count
        self._load = ImageCache(partial(read_channels, channels=channels), CACHE_BYTES)
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": self.fmt, "path": self.name.partition(":")[2], "train_images": len(self._train),
                "val_images": len(self._val), "val_crops": self.val_count, "val_patch": self.val_patch,
                "blur": "real"}

    def check_patch(self, patch: int) -> None:
        """Raise :class:`DatasetError` naming the first training pair smaller than ``patch``."""
        large_enough(self._train, patch, self.fmt, skip_small=False)

    def _crop(self, pair: PairFiles, size: int, g: torch.Generator, at: tuple[float, float] | None = None) -> Batch:
        y, x, flips = place_crop(pair.height - size, pair.width - size, g, at)
        b, s = (flip(self._load(p)[:, y : y + size, x : x + size], flips)[None] for p in (pair.blur, pair.sharp))
        return Batch(b, s)

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        check_train_args(batch_size, patch)
        self.check_patch(patch)
        g = seeded_generator("train", seed, step, rank)
        return concat([self._crop(self._train[randint(len(self._train), g)], patch, g) for _ in range(batch_size)])

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """Every held-out pair whole, named by its blurred file's path below the dataset root."""
        root = Path(self.name.partition(":")[2])
        for pair in self._val:
            name = str(pair.blur.relative_to(root)) if pair.blur.is_relative_to(root) else str(pair.blur)
            yield name, Batch(self._load(pair.blur)[None], self._load(pair.sharp)[None])

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            g = seeded_generator("val", self.fmt)
            self._val_set = tuple(self._crop(self._val[j], self.val_patch, g, at)
                                  for j, at in val_layout(len(self._val), self.val_count))
        return chunks(self._val_set, batch_size)
