"""Sharp images blurred on the fly: the ``default`` photographs and ``folder:PATH`` trees.

Training batches are made on the training device (:meth:`SyntheticSource.device_batches`, see
:mod:`.batches`). Validation crops are blurred with a margin of context that is cut away afterwards, so the
blur's border handling never reaches the pixels the model is scored on.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch
from torch import Tensor

from .batches import DeviceBatches
from ..blur import kernel_size, synth_blur
from .cache import ImageCache
from ..seeding import seeded_generator
from .base import (CACHE_BYTES, Batch, ImageFile, check_train_args, chunks, flip, large_enough, place_crop,
                   read_channels, val_layout)

__all__ = ["SyntheticSource"]

_MARGIN = 16  # context around a crop before blurring; the mix kinds' largest kernel (25x25 shake) reaches 12 px


class SyntheticSource:
    """Sharp images on disk, blurred on the fly: training batches by :class:`.batches.DeviceBatches`,
    validation crops and test images by :func:`deblur_core.blur.synth_blur` (both 8-bit quantised, as a
    saved frame would be)."""

    def __init__(self, name: str, fmt: str, train: list[ImageFile], val: list[ImageFile], *, blur: str,
                 val_patch: int, val_count: int, channels: int, skip_small: bool = False) -> None:
        self.name, self.fmt, self.blur = name, fmt, blur
        self._train, self._val = train, val
        self.val_patch = min(val_patch, *(f.short_side for f in val))  # small validation images: smaller crops
        self.val_count, self.skip_small, self.channels = val_count, skip_small, channels
        # the long kinds' 51 px kernels reach 25 px; the mix kinds keep the margin their figures were measured with
        self.margin = max(_MARGIN, kernel_size(blur) // 2 + 1)
        self._load = ImageCache(partial(read_channels, channels=channels), CACHE_BYTES)
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": self.fmt, "path": self.name.partition(":")[2] or None, "train_images": len(self._train),
                "val_images": len(self._val), "val_crops": self.val_count, "val_patch": self.val_patch,
                "blur": self.blur}

    def check_patch(self, patch: int) -> None:
        """Raise :class:`DatasetError` if ``patch`` cannot be cut from the training images."""
        large_enough(self._train, patch, self.fmt, skip_small=self.skip_small)

    def _sharp_crop(self, f: ImageFile, size: int, g: torch.Generator,
                    at: tuple[float, float]) -> tuple[Tensor, int]:
        # crop size + 2 * margin (as much margin as the image allows) so the blur sees real context, not a
        # reflected border; ``at`` places the crop at fractions of the free range. Returns the
        # (1, C, full, full) crop and its margin.
        m = min(self.margin, (f.short_side - size) // 2)
        full = size + 2 * m
        y, x, flips = place_crop(f.height - full, f.width - full, g, at)
        return flip(self._load(f.path)[:, y : y + full, x : x + full], flips)[None], m

    def _blur_crops(self, crops: Tensor, m: int, size: int, g: torch.Generator) -> Batch:
        res = synth_blur(crops, self.blur, g, quantize=True)
        inner = (..., slice(m, m + size), slice(m, m + size))
        return Batch(res.blurred[inner], crops[inner], res.kernels, res.linear_light)

    def device_batches(self, batch_size: int, patch: int, *, seed: int, rank: int = 0,
                       device: torch.device | str = "cpu", **recipe) -> DeviceBatches:
        """Training batches made on ``device`` (see :mod:`deblur_core.data.batches`); ``recipe``: noise,
        saturate, rotate, jpeg, sharp_share, workers. Every training image takes part: one smaller than the crop (with the
        blur's context) is reflected out to its size and blurred as a whole, so the pair stays exact."""
        check_train_args(batch_size, patch)
        pool = self._train
        # read from disk, not through this source's cache: DeviceBatches keeps each photo on the device
        return DeviceBatches(lambda i: read_channels(pool[i].path, self.channels),
                             [(f.height, f.width) for f in pool], blur=self.blur, batch_size=batch_size,
                             patch=patch, seed=seed, rank=rank, device=device, **recipe)

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """Every validation image whole, blurred by the project's synthesis of ``blur`` (8-bit), with its
        name: the set that evaluation scores. The blur of image ``j`` depends only on (format, blur, j)."""
        for j, f in enumerate(self._val):
            sharp = self._load(f.path)[None]
            res = synth_blur(sharp, self.blur, seeded_generator("test", self.fmt, self.blur, j), quantize=True)
            yield f.path.name, Batch(res.blurred, sharp, res.kernels, res.linear_light)

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            # blur drawn from a fixed generator that does not depend on where the dataset lives
            g = seeded_generator("val", self.fmt, self.blur)
            # crop by crop (not batched as in training): the validation crops every published figure was
            # measured on stay the same
            self._val_set = tuple(self._blur_crops(*self._sharp_crop(self._val[j], self.val_patch, g, at),
                                                   self.val_patch, g)
                                  for j, at in val_layout(len(self._val), self.val_count))
        return chunks(self._val_set, batch_size)
