"""Training and validation data in every supported on-disk format.

A training batch is a pure function of ``(seed, step, rank)``: there is no iterator state, so a resumed
run sees exactly the batches the interrupted one would have, and each rank of a distributed run draws its
own. Validation sets are fixed: the same crops (and, for synthetic blur, the same kernels) on every call.

Specs (``--data SPEC``):

=================  ========================================================================================
``default``        photographs bundled in scikit-image's wheel, blurred on the fly (split below)
``cifar10:PATH``   the ``cifar-10-batches-py`` folder; train on ``data_batch_*``, validate on the first
                   ``val_count`` images of ``test_batch``; the seed's gaussian recipe on whole 32x32 images
``reds:PATH``      REDS: ``train/train_blur/000/00000000.png`` + ``train/train_sharp/...``; ``val/val_blur``
                   + ``val/val_sharp`` for validation
``gopro:PATH``     GOPRO_Large: ``train/<clip>/blur/*.png`` + ``train/<clip>/sharp/*.png``; ``test/`` for
                   validation (``blur_gamma/`` is not used)
``pairs:PATH``     ``PATH/blur/...`` + ``PATH/sharp/...`` with the same relative paths; validation is
                   ``PATH/val/blur`` + ``PATH/val/sharp`` if present, else every 10th pair (natural order)
``folder:PATH``    a tree of sharp images, blurred on the fly; ``PATH/train`` + ``PATH/val`` if both exist
                   (whole photos held out), else every 10th image (natural order) validates
=================  ========================================================================================

Synthetic blur is applied to a crop with a margin of context that is cut away afterwards, so the
blur's border handling never reaches the pixels the model is trained or scored on. Validation crops are
spread over the validation images on an even grid per image (coverage, not a lucky draw). Paired data are read
lazily (REDS has 24,000 720p frames) through a small byte-bounded cache.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..batches import DeviceBatches
from ..blur import BLUR_KINDS, pad_kernels, quantize_8bit, seed_gaussian_blur, synth_blur
from ..errors import DatasetError
from ..frames import list_images
from ..io import image_size, read_image

__all__ = [
    "Batch",
    "PairSource",
    "SyntheticSource",
    "CifarSource",
    "PairedSource",
    "open_dataset",
    "DATASET_SPECS",
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
]

DATASET_SPECS = ("default", "cifar10:PATH", "reds:PATH", "gopro:PATH", "pairs:PATH", "folder:PATH")

# Files in scikit-image's data folder (shipped in its wheel; the fetchers of other images download, which
# is impossible here). The split is by image: coffee, rocket and motorcycle_right only validate.
# Left out on purpose: motorcycle_left (the stereo twin of motorcycle_right: training on it would leak the
# validation scene), clock_motion (already motion-blurred), cell and microaneurysms (noisy microscopy),
# color, logo, horse, phantom, chessboard (graphics, not photographs), lfw_subset (25x25 faces).
DEFAULT_TRAIN = (
    "astronaut.png", "camera.png", "chelsea.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg",
    "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png", "page.png", "text.png",
)
DEFAULT_VAL = ("coffee.png", "rocket.jpg", "motorcycle_right.png")

_MARGIN = 16  # context around a crop before blurring; the largest synthetic kernel (25x25 shake) reaches 12 px
_CACHE_BYTES = 256 * 2**20  # decoded images kept per source (about 23 RGB 720p frames)
_HOLD_OUT_EVERY = 10  # pairs/folder without a validation folder: every 10th file validates


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
        """The batch of ``step``: a pure function of (seed, step, rank), shape (B, C, patch, patch)."""
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


# ---- shared helpers ---------------------------------------------------------------------------------


def _generator(*parts: int | str) -> torch.Generator:
    """A generator seeded by a hash of ``parts``: unrelated streams for (seed, step, rank) neighbours."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _randint(high: int, g: torch.Generator) -> int:
    return int(torch.randint(0, high, (), generator=g))


def _random_flips(g: torch.Generator) -> tuple[bool, bool]:
    horizontal, vertical = (torch.rand(2, generator=g) < 0.5).tolist()
    return horizontal, vertical


def _flip(x: Tensor, flips: tuple[bool, bool]) -> Tensor:
    if flips[0]:
        x = x.flip(-1)
    if flips[1]:
        x = x.flip(-2)
    return x


def _to_channels(x: Tensor, channels: int) -> Tensor:
    """(C, H, W) or (B, C, H, W) with C in {1, 3} -> ``channels`` (gray is replicated, RGB averaged)."""
    if x.shape[-3] == channels:
        return x
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    return x.mean(dim=-3, keepdim=True)


def _check_train_args(batch_size: int, patch: int) -> None:
    if batch_size < 1 or patch < 1:
        raise ValueError(f"batch_size and patch must be positive, got batch_size={batch_size}, patch={patch}")


class _ImageCache:
    """Decoded images by path, least recently used dropped first once ``max_bytes`` is exceeded."""

    def __init__(self, channels: int, max_bytes: int = _CACHE_BYTES) -> None:
        self.channels, self.max_bytes = channels, max_bytes
        self._items: OrderedDict[Path, Tensor] = OrderedDict()
        self._bytes = 0

    def __call__(self, path: Path) -> Tensor:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        img = _to_channels(read_image(path).data, self.channels)
        self._items[path] = img
        self._bytes += img.numel() * img.element_size()
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
        return img


@dataclass(frozen=True)
class _ImageFile:
    path: Path
    height: int
    width: int

    @property
    def short_side(self) -> int:
        return min(self.height, self.width)


@dataclass(frozen=True)
class _PairFiles:
    blur: Path
    sharp: Path
    height: int
    width: int

    @property
    def short_side(self) -> int:
        return min(self.height, self.width)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder '{path}' does not exist")
    return path


def _large_enough(items: Sequence, patch: int, what: str, *, skip_small: bool) -> list:
    """Items whose short side is at least ``patch``. User datasets must all be: the first smaller file is
    named in the error. The bundled photographs (``skip_small``) simply leave the small ones out."""
    if skip_small:
        pool = [it for it in items if it.short_side >= patch]
        if not pool:
            raise DatasetError(f"{what}: no training image is at least {patch}x{patch}; use a smaller --patch")
        return pool
    for it in items:
        if it.short_side < patch:
            path = it.path if isinstance(it, _ImageFile) else it.blur
            raise DatasetError(f"{what}: '{path}' is {it.height}x{it.width}, smaller than the {patch}x{patch} "
                               "training patch; use a smaller --patch")
    return list(items)


def _place(free_h: int, free_w: int, g: torch.Generator,
           at: tuple[float, float] | None) -> tuple[int, int, tuple[bool, bool]]:
    """Top-left corner and flips of a crop with ``free_h`` x ``free_w`` room to move: random (training), or
    at the fractions ``at`` of the room and unflipped (validation)."""
    if at is None:
        return _randint(free_h + 1, g), _randint(free_w + 1, g), _random_flips(g)
    return round(at[0] * free_h), round(at[1] * free_w), (False, False)


def _val_layout(n_images: int, count: int) -> list[tuple[int, tuple[float, float]]]:
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


def _concat(chunk: Sequence[Batch]) -> Batch:
    kernels = linear = None
    if chunk[0].kernels is not None:
        kernels = pad_kernels([b.kernels for b in chunk])
        linear = torch.cat([b.linear_light for b in chunk])
    return Batch(torch.cat([b.blur for b in chunk]), torch.cat([b.sharp for b in chunk]), kernels, linear)


def _chunks(items: Sequence[Batch], batch_size: int) -> Iterator[Batch]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for i in range(0, len(items), batch_size):
        yield _concat(items[i : i + batch_size])


# ---- sources ----------------------------------------------------------------------------------------


class SyntheticSource:
    """Sharp images on disk, blurred on the fly with :func:`deblur_core.blur.synth_blur` (8-bit quantised,
    as a saved frame would be)."""

    def __init__(self, name: str, fmt: str, train: list[_ImageFile], val: list[_ImageFile], *, blur: str,
                 val_patch: int, val_count: int, channels: int, skip_small: bool = False) -> None:
        self.name, self.fmt, self.blur = name, fmt, blur
        self._train, self._val = train, val
        self.val_patch = min(val_patch, *(f.short_side for f in val))  # small validation images: smaller crops
        self.val_count, self.skip_small = val_count, skip_small
        self._load = _ImageCache(channels)
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": self.fmt, "path": self.name.partition(":")[2] or None, "train_images": len(self._train),
                "val_images": len(self._val), "val_crops": self.val_count, "val_patch": self.val_patch,
                "blur": self.blur}

    def check_patch(self, patch: int) -> None:
        """Raise :class:`DatasetError` if ``patch`` cannot be cut from the training images."""
        _large_enough(self._train, patch, self.fmt, skip_small=self.skip_small)

    def _sharp_crop(self, f: _ImageFile, size: int, g: torch.Generator,
                    at: tuple[float, float] | None = None) -> tuple[Tensor, int]:
        # crop size + 2 * margin (as much margin as the image allows) so the blur sees real context, not a
        # reflected border; ``at`` places the crop at fractions of the free range (validation), else it is
        # random and randomly flipped. Returns the (1, C, full, full) crop and its margin.
        m = min(_MARGIN, (f.short_side - size) // 2)
        full = size + 2 * m
        y, x, flips = _place(f.height - full, f.width - full, g, at)
        return _flip(self._load(f.path)[:, y : y + full, x : x + full], flips)[None], m

    def _blur_crops(self, crops: Tensor, m: int, size: int, g: torch.Generator) -> Batch:
        res = synth_blur(crops, self.blur, g, quantize=True)
        inner = (..., slice(m, m + size), slice(m, m + size))
        return Batch(res.blurred[inner], crops[inner], res.kernels, res.linear_light)

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        _check_train_args(batch_size, patch)
        pool = _large_enough(self._train, patch, self.fmt, skip_small=self.skip_small)
        g = _generator("train", seed, step, rank)
        crops = [self._sharp_crop(pool[_randint(len(pool), g)], patch, g) for _ in range(batch_size)]
        # one synth_blur call per margin (crops of a margin share a size) instead of one per crop: the
        # camera-shake trajectories are a python loop over time steps, so a batch of 16 costs as much as one
        parts, order = [], []
        for m in sorted({m for _, m in crops}):
            idx = [i for i, (_, mi) in enumerate(crops) if mi == m]
            parts.append(self._blur_crops(torch.cat([crops[i][0] for i in idx]), m, patch, g))
            order += idx
        out = _concat(parts)
        if order != sorted(order):  # put the samples back in drawing order
            inv = torch.argsort(torch.tensor(order))
            out = Batch(out.blur[inv], out.sharp[inv], out.kernels[inv], out.linear_light[inv])
        return out

    def device_batches(self, batch_size: int, patch: int, *, seed: int, rank: int = 0,
                       device: torch.device | str = "cpu", **recipe) -> DeviceBatches:
        """Training batches made on ``device`` (see :mod:`deblur_core.batches`); ``recipe``: noise,
        saturate, rotate, workers. Every training image takes part: one smaller than the crop (with the
        blur's context) is reflected out to its size and blurred as a whole, so the pair stays exact."""
        _check_train_args(batch_size, patch)
        pool = self._train
        channels = self._load.channels
        return DeviceBatches(lambda i: _to_channels(read_image(pool[i].path).data, channels),
                             [(f.height, f.width) for f in pool], blur=self.blur, batch_size=batch_size,
                             patch=patch, seed=seed, rank=rank, device=device, **recipe)

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """Every validation image whole, blurred by the project's synthesis of ``blur`` (8-bit), with its
        name: the set that evaluation scores. The blur of image ``j`` depends only on (format, blur, j)."""
        for j, f in enumerate(self._val):
            sharp = self._load(f.path)[None]
            res = synth_blur(sharp, self.blur, _generator("test", self.fmt, self.blur, j), quantize=True)
            yield f.path.name, Batch(res.blurred, sharp, res.kernels, res.linear_light)

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            # blur drawn from a fixed generator that does not depend on where the dataset lives
            g = _generator("val", self.fmt, self.blur)
            # crop by crop (not batched as in training): the validation crops every published figure was
            # measured on stay the same
            self._val_set = tuple(self._blur_crops(*self._sharp_crop(self._val[j], self.val_patch, g, at),
                                                   self.val_patch, g)
                                  for j, at in _val_layout(len(self._val), self.val_count))
        return _chunks(self._val_set, batch_size)


class CifarSource:
    """CIFAR-10 from the ``cifar-10-batches-py`` pickles, blurred with the seed's gaussian recipe (sigma
    from {1, 2, 3}, OpenCV's kernel size, 8-bit result) applied to the whole 32x32 image."""

    def __init__(self, name: str, train: np.ndarray, val: np.ndarray, *, val_count: int, channels: int) -> None:
        self.name, self.channels = name, channels
        self._train = train  # (N, 3, 32, 32) uint8: 150 MB for all 50,000 images, 4x less than float
        self._val = val[:val_count]
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": "cifar10", "path": self.name.partition(":")[2], "train_images": len(self._train),
                "val_images": len(self._val), "blur": "seed gaussian (sigma 1, 2, 3)"}

    def check_patch(self, patch: int) -> None:
        """Any patch works: larger ones are cut to the 32x32 image."""

    def _blur(self, images: np.ndarray, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        x = _to_channels(torch.from_numpy(images).float() / 255.0, self.channels)
        blurred, kernels = seed_gaussian_blur(x, g)
        return quantize_8bit(blurred).clamp(0, 1), x, kernels

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        _check_train_args(batch_size, patch)
        g = _generator("train", seed, step, rank)
        idx = torch.randint(0, len(self._train), (batch_size,), generator=g).numpy()
        blurred, sharp, kernels = self._blur(self._train[idx], g)
        p = min(patch, 32)
        blurs, sharps = [], []
        for i in range(batch_size):
            y, x = _randint(33 - p, g), _randint(33 - p, g)
            flips = _random_flips(g)
            blurs.append(_flip(blurred[i, :, y : y + p, x : x + p], flips))
            sharps.append(_flip(sharp[i, :, y : y + p, x : x + p], flips))
        return Batch(torch.stack(blurs), torch.stack(sharps), kernels, torch.zeros(batch_size, dtype=torch.bool))

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """The validation images (whole 32x32 images already), one by one, named by their index."""
        for i, b in enumerate(self.val_batches(1)):
            yield f"test_batch[{i}]", b

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            blurred, sharp, kernels = self._blur(self._val, _generator("val", "cifar10"))
            linear = torch.zeros(len(self._val), dtype=torch.bool)
            self._val_set = tuple(Batch(blurred[i : i + 1], sharp[i : i + 1], kernels[i : i + 1], linear[i : i + 1])
                                  for i in range(len(self._val)))
        return _chunks(self._val_set, batch_size)


class PairedSource:
    """Real blurred/sharp pairs read lazily from disk (REDS, GoPro, pairs); aligned random crops and flips."""

    def __init__(self, name: str, fmt: str, train: list[_PairFiles], val: list[_PairFiles], *, val_patch: int,
                 val_count: int, channels: int) -> None:
        self.name, self.fmt = name, fmt
        self._train, self._val = train, val
        self.val_patch = min(val_patch, *(p.short_side for p in val))
        self.val_count = val_count
        self._load = _ImageCache(channels)
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": self.fmt, "path": self.name.partition(":")[2], "train_images": len(self._train),
                "val_images": len(self._val), "val_crops": self.val_count, "val_patch": self.val_patch,
                "blur": "real"}

    def check_patch(self, patch: int) -> None:
        """Raise :class:`DatasetError` naming the first training pair smaller than ``patch``."""
        _large_enough(self._train, patch, self.fmt, skip_small=False)

    def _crop(self, pair: _PairFiles, size: int, g: torch.Generator, at: tuple[float, float] | None = None) -> Batch:
        y, x, flips = _place(pair.height - size, pair.width - size, g, at)
        b, s = (_flip(self._load(p)[:, y : y + size, x : x + size], flips)[None] for p in (pair.blur, pair.sharp))
        return Batch(b, s)

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        _check_train_args(batch_size, patch)
        self.check_patch(patch)
        g = _generator("train", seed, step, rank)
        return _concat([self._crop(self._train[_randint(len(self._train), g)], patch, g) for _ in range(batch_size)])

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """Every held-out pair whole, named by its blurred file's path below the dataset root."""
        root = Path(self.name.partition(":")[2])
        for pair in self._val:
            name = str(pair.blur.relative_to(root)) if pair.blur.is_relative_to(root) else str(pair.blur)
            yield name, Batch(self._load(pair.blur)[None], self._load(pair.sharp)[None])

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            g = _generator("val", self.fmt)
            self._val_set = tuple(self._crop(self._val[j], self.val_patch, g, at)
                                  for j, at in _val_layout(len(self._val), self.val_count))
        return _chunks(self._val_set, batch_size)


# ---- format readers ---------------------------------------------------------------------------------


def _image_files(paths: Sequence[Path]) -> list[_ImageFile]:
    return [_ImageFile(p, *image_size(p)) for p in paths]


def _pair_trees(blur_root: Path, sharp_root: Path, what: str) -> list[_PairFiles]:
    """Every image under ``blur_root`` with its twin at the same relative path under ``sharp_root``; the
    sizes of all pairs are checked from their headers."""
    _require_dir(blur_root, what)
    _require_dir(sharp_root, what)
    blurs = list_images(blur_root)
    if not blurs:
        raise DatasetError(f"{what}: no images under '{blur_root}'")
    pairs = []
    for b in blurs:
        s = sharp_root / b.relative_to(blur_root)
        if not s.is_file():
            raise DatasetError(f"{what}: '{b}' has no sharp twin (expected '{s}')")
        bsize, ssize = image_size(b), image_size(s)
        if bsize != ssize:
            raise DatasetError(f"{what}: size mismatch between '{b}' ({bsize[0]}x{bsize[1]}) and '{s}' "
                               f"({ssize[0]}x{ssize[1]})")
        pairs.append(_PairFiles(b, s, *bsize))
    return pairs


def _hold_out(items: list, what: str, root: Path) -> tuple[list, list]:
    if len(items) < 2:
        raise DatasetError(f"{what}: need at least 2 images under '{root}' to hold one out for validation")
    return ([it for i, it in enumerate(items) if i % _HOLD_OUT_EVERY],
            [it for i, it in enumerate(items) if i % _HOLD_OUT_EVERY == 0])


def _reds(root: Path, for_eval: bool = False) -> tuple[list, list]:
    _require_dir(root, "REDS")
    val = _pair_trees(root / "val" / "val_blur", root / "val" / "val_sharp", "REDS")
    if for_eval:  # a test set needs no training split
        return val, val
    train = _pair_trees(root / "train" / "train_blur", root / "train" / "train_sharp", "REDS")
    return train, val


def _gopro(root: Path, for_eval: bool = False) -> tuple[list, list]:
    _require_dir(root, "GoPro")

    def split(name: str) -> list[_PairFiles]:
        base = _require_dir(root / name, "GoPro")
        clips = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not clips:
            raise DatasetError(f"GoPro: no clip folders under '{base}'")
        return [pair for clip in clips for pair in _pair_trees(clip / "blur", clip / "sharp", "GoPro")]

    test = split("test")
    return (test if for_eval else split("train")), test


def _pairs(root: Path, for_eval: bool = False) -> tuple[list, list]:
    _require_dir(root, "pairs")
    if for_eval and (root / "val").is_dir():
        val = _pair_trees(root / "val" / "blur", root / "val" / "sharp", "pairs")
        return val, val
    pairs = _pair_trees(root / "blur", root / "sharp", "pairs")
    if (root / "val").is_dir():
        return pairs, _pair_trees(root / "val" / "blur", root / "val" / "sharp", "pairs")
    if for_eval:  # no split: the whole folder is the test set
        return pairs, pairs
    return _hold_out(pairs, "pairs", root)


def _folder(root: Path) -> tuple[list, list]:
    _require_dir(root, "folder")
    if (root / "train").is_dir() and (root / "val").is_dir():  # whole photos held out by the user
        train, val = list_images(root / "train"), list_images(root / "val")
        if not train or not val:
            raise DatasetError(f"folder: '{root}/train' and '{root}/val' must both hold images")
        return _image_files(train), _image_files(val)
    files = list_images(root)
    if not files:
        raise DatasetError(f"folder: no images under '{root}'")
    return _hold_out(_image_files(files), "folder", root)


def _default() -> tuple[list, list]:
    import skimage.data

    base = Path(skimage.data.__file__).parent
    missing = [n for n in DEFAULT_TRAIN + DEFAULT_VAL if not (base / n).is_file()]
    if missing:
        raise DatasetError(f"default: scikit-image's data folder '{base}' lacks {', '.join(missing)}")
    return _image_files([base / n for n in DEFAULT_TRAIN]), _image_files([base / n for n in DEFAULT_VAL])


# The python pickles of CIFAR-10 hold a dict of bytes, lists and one numpy array: nothing else may be loaded.
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def _cifar_batch(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"CIFAR-10: '{path}' is missing (expected the cifar-10-batches-py folder with "
                           "data_batch_1..5 and test_batch)")
    try:
        with path.open("rb") as fh:
            d = _CifarUnpickler(fh, encoding="bytes").load()
        data = np.asarray(d[b"data"])
    except (pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError, AttributeError) as e:
        raise DatasetError(f"CIFAR-10: '{path}' is not a CIFAR-10 python batch: {type(e).__name__}: {e}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or not len(data):
        raise DatasetError(f"CIFAR-10: '{path}' holds {data.dtype} data of shape {data.shape}, "
                           "expected (N, 3072) uint8")
    return data.reshape(-1, 3, 32, 32)  # rows are the R, G, B planes of a 32x32 image, each row-major


def _cifar(root: Path, *, val_count: int, channels: int) -> CifarSource:
    _require_dir(root, "CIFAR-10")
    names = [f"data_batch_{i}" for i in range(1, 6) if (root / f"data_batch_{i}").is_file()] or ["data_batch_1"]
    train = np.concatenate([_cifar_batch(root / n) for n in names])
    return CifarSource(f"cifar10:{root}", train, _cifar_batch(root / "test_batch"), val_count=val_count,
                       channels=channels)


_PAIRED: dict[str, Callable[[Path, bool], tuple[list, list]]] = {"reds": _reds, "gopro": _gopro, "pairs": _pairs}


def open_dataset(spec: str, *, blur: str = "mix", val_patch: int = 128, val_count: int = 48, channels: int = 3,
                 patch: int | None = None, for_eval: bool = False) -> SyntheticSource | CifarSource | PairedSource:
    """Open the dataset ``spec`` (see the module docstring for the forms and the splits).

    Everything that can be checked without decoding pixels is checked here, before training starts: the
    folders exist and hold images, every blurred image has a sharp twin of the same size, CIFAR batches
    are present and well-formed.

    Args:
        spec: ``default`` or ``FORMAT:PATH`` with FORMAT one of cifar10, reds, gopro, pairs, folder.
        blur: synthetic blur for ``default`` and ``folder`` (a kind of :func:`deblur_core.blur.synth_blur`);
            CIFAR-10 always uses the seed's gaussian recipe and paired formats carry their own blur.
        val_patch: side of the validation crops (cut to the smallest validation image if that is smaller;
            CIFAR-10 validates on whole 32x32 images).
        val_count: number of validation crops (CIFAR-10: images of ``test_batch``).
        channels: 3 (gray images are replicated) or 1 (RGB images are averaged).
        patch: when given, also check now that every training image is at least ``patch`` x ``patch``
            (``train_batch`` checks it anyway).
        for_eval: open a test set rather than a training set: only the held-out split must exist
            (``reds:`` its ``val``, ``gopro:`` its ``test``), and ``pairs:PATH`` without a ``val`` folder
            holds out every pair (all of PATH is scored), not every 10th.

    Returns:
        A :class:`PairSource`.

    Raises:
        DatasetError: unknown spec, or a dataset that does not have its format's layout; the message names
            the offending folder or file.
        ValueError: an unknown blur kind or a non-positive size.
    """
    if blur not in (*BLUR_KINDS, "mix"):
        raise ValueError(f"unknown blur kind '{blur}'; expected one of {(*BLUR_KINDS, 'mix')}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if val_patch < 1 or val_count < 1:
        raise ValueError(f"val_patch and val_count must be positive, got {val_patch} and {val_count}")
    fmt, _, path = spec.partition(":")
    root = Path(path).expanduser()
    source: SyntheticSource | CifarSource | PairedSource
    if spec == "default":
        train, val = _default()
        source = SyntheticSource("default", "default", train, val, blur=blur, val_patch=val_patch,
                                 val_count=val_count, channels=channels, skip_small=True)
    elif not path or fmt not in ("cifar10", "folder", *_PAIRED):
        raise DatasetError(f"unknown dataset spec '{spec}'; expected one of: {', '.join(DATASET_SPECS)}")
    elif fmt == "cifar10":
        source = _cifar(root, val_count=val_count, channels=channels)
    elif fmt == "folder":
        train, val = _folder(root)
        source = SyntheticSource(f"folder:{root}", "folder", train, val, blur=blur, val_patch=val_patch,
                                 val_count=val_count, channels=channels)
    else:
        train, val = _PAIRED[fmt](root, for_eval)
        source = PairedSource(f"{fmt}:{root}", fmt, train, val, val_patch=val_patch, val_count=val_count,
                              channels=channels)
    if patch is not None:
        source.check_patch(patch)
    return source
