"""What every source shares: the :class:`Batch` it yields, the :class:`PairSource` protocol it follows, and
the crop, flip, size and validation-layout helpers its batches are made with.

Tensors are (B, C, H, W) (one image: (C, H, W)) floats in [0, 1]. Randomness comes from a generator the
caller passes in (see :func:`deblur_core.seeding.seeded_generator`), never from global state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from ..blur import pad_kernels
from ..errors import DatasetError
from ..io import read_image

CACHE_BYTES = 256 * 2**20  # decoded images kept per source (about 23 RGB 720p frames)


@dataclass
class Batch:
    blur: Tensor  # (B, C, H, W) blurred input in [0, 1]
    sharp: Tensor  # (B, C, H, W) target in [0, 1]
    kernels: Tensor | None = None  # (B, k, k) true kernels when the blur is synthetic, else None
    linear_light: Tensor | None = None  # (B,) bool: the kernel acts in linear light (see BlurResult)


class PairSource(Protocol):
    """Anything that makes training batches and a fixed validation set."""

    name: str  # the spec it was opened from, e.g. "reds:/data/REDS"

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        """The batch of ``step``: a pure function of (seed, step, rank), shape (B, C, patch, patch).

        Sources read from disk (pairs, CIFAR-10) have it; synthetic blur has ``device_batches`` instead (a
        :class:`~.batches.DeviceBatches`, which makes the batch of a step on the training device).
        """
        ...

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        """The fixed validation set in chunks of ``batch_size``; identical on every call."""
        ...

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """Every held-out image (or pair) whole, one at a time, with its name: what evaluation scores."""
        ...

    def describe(self) -> dict:
        """Format, path and the number of training and validation images."""
        ...


class _ShortSide:
    height: int
    width: int

    @property
    def short_side(self) -> int:
        return min(self.height, self.width)


@dataclass(frozen=True)
class ImageFile(_ShortSide):
    """A sharp image on disk with its size, read from the header (pixels are decoded when first cropped)."""

    path: Path
    height: int
    width: int


@dataclass(frozen=True)
class PairFiles(_ShortSide):
    """A blurred image and its sharp twin on disk, of one size."""

    blur: Path
    sharp: Path
    height: int
    width: int


def randint(high: int, g: torch.Generator) -> int:
    return int(torch.randint(0, high, (), generator=g))


def random_flips(g: torch.Generator) -> tuple[bool, bool]:
    horizontal, vertical = (torch.rand(2, generator=g) < 0.5).tolist()
    return horizontal, vertical


def flip(x: Tensor, flips: tuple[bool, bool]) -> Tensor:
    if flips[0]:
        x = x.flip(-1)
    if flips[1]:
        x = x.flip(-2)
    return x


def to_channels(x: Tensor, channels: int) -> Tensor:
    """(C, H, W) or (B, C, H, W) with C in {1, 3} -> ``channels`` (gray is replicated, RGB averaged)."""
    if x.shape[-3] == channels:
        return x
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    return x.mean(dim=-3, keepdim=True)


def read_channels(path: Path, channels: int) -> Tensor:
    """The image at ``path`` as a (``channels``, H, W) tensor in [0, 1]."""
    return to_channels(read_image(path).data, channels)


def check_train_args(batch_size: int, patch: int) -> None:
    if batch_size < 1 or patch < 1:
        raise ValueError(f"batch_size and patch must be positive, got batch_size={batch_size}, patch={patch}")


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder '{path}' does not exist")
    return path


def large_enough(items: Sequence[ImageFile | PairFiles], patch: int, what: str, *, skip_small: bool) -> list:
    """Items whose short side is at least ``patch``. User datasets must all be: the first smaller file is
    named in the error. The bundled photographs (``skip_small``) simply leave the small ones out."""
    if skip_small:
        pool = [it for it in items if it.short_side >= patch]
        if not pool:
            raise DatasetError(f"{what}: no training image is at least {patch}x{patch}; use a smaller --patch")
        return pool
    for it in items:
        if it.short_side < patch:
            path = it.path if isinstance(it, ImageFile) else it.blur
            raise DatasetError(f"{what}: '{path}' is {it.height}x{it.width}, smaller than the {patch}x{patch} "
                               "training patch; use a smaller --patch")
    return list(items)


def place_crop(free_h: int, free_w: int, g: torch.Generator,
               at: tuple[float, float] | None) -> tuple[int, int, tuple[bool, bool]]:
    """Top-left corner and flips of a crop with ``free_h`` x ``free_w`` room to move: random (training), or
    at the fractions ``at`` of the room and unflipped (validation)."""
    if at is None:
        return randint(free_h + 1, g), randint(free_w + 1, g), random_flips(g)
    return round(at[0] * free_h), round(at[1] * free_w), (False, False)


def val_layout(n_images: int, count: int) -> list[tuple[int, tuple[float, float]]]:
    """``count`` validation crops as (image index, (fy, fx)): spread evenly over the images (over every
    clip, not the first frames of one), and an image with several crops gets them on an even grid, so the
    set covers each image instead of landing wherever a random draw put it."""
    if count <= n_images:
        owners = [i * n_images // count for i in range(count)]
    else:
        owners = [i % n_images for i in range(count)]
    per_image = {j: owners.count(j) for j in set(owners)}
    seen: dict[int, int] = {}
    layout = []
    for j in owners:
        k, t = per_image[j], seen.get(j, 0)
        seen[j] = t + 1
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        layout.append((j, ((t // cols + 0.5) / rows, (t % cols + 0.5) / cols)))
    return layout


def concat(chunk: Sequence[Batch]) -> Batch:
    """One batch of several, kernels padded to the largest."""
    kernels = linear_light = None
    if all(b.kernels is not None for b in chunk):  # a non-uniform blur has no kernel to give
        kernels = pad_kernels([b.kernels for b in chunk])
    if all(b.linear_light is not None for b in chunk):
        linear_light = torch.cat([b.linear_light for b in chunk])
    return Batch(torch.cat([b.blur for b in chunk]), torch.cat([b.sharp for b in chunk]), kernels, linear_light)


def chunks(items: Sequence[Batch], batch_size: int) -> Iterator[Batch]:
    """``items`` in order, ``batch_size`` at a time (the last chunk may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for i in range(0, len(items), batch_size):
        yield concat(items[i : i + batch_size])
