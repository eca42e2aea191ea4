"""Training and validation data in every supported on-disk format.

A training batch is a pure function of (seed, step, rank): no iterator state, so a resumed run sees
exactly the batches the interrupted one would have, and each rank of a distributed run draws its own.

Specs (``--data``):
    default         real photographs bundled with scikit-image, blurred on the fly
    cifar10:PATH    the ``cifar-10-batches-py`` folder, blurred with the seed's gaussian recipe
    reds:PATH       REDS: ``train/train_blur/000/00000000.png`` + ``train/train_sharp/...``, and ``val/``
    gopro:PATH      GOPRO_Large: ``train/<clip>/blur|sharp/*.png``, and ``test/``
    pairs:PATH      any ``blur/`` and ``sharp/`` trees with the same relative paths
    folder:PATH     a tree of sharp images, blurred on the fly
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from .blur import synth_blur
from .errors import DatasetError
from .frames import list_images
from .io import read_image

__all__ = ["Batch", "open_dataset", "DEFAULT_TRAIN", "DEFAULT_VAL", "SPECS"]

SPECS = ("default", "cifar10:PATH", "reds:PATH", "gopro:PATH", "pairs:PATH", "folder:PATH")
# scikit-image photographs that ship inside its wheel (others download, which is not allowed here).
# The split is by image, fixed: no photograph is in both.
DEFAULT_TRAIN = ("astronaut", "chelsea", "hubble_deep_field", "immunohistochemistry", "retina", "camera",
                 "brick", "grass", "gravel", "moon", "coins", "colorwheel", "page", "text", "clock")
DEFAULT_VAL = ("coffee", "rocket", "stereo_motorcycle")
_MARGIN = 16  # extra context around a training crop before blurring, so the crop sees no border effects


@dataclass
class Batch:
    blur: Tensor  # (B, C, H, W) in [0, 1]
    sharp: Tensor  # (B, C, H, W) in [0, 1]
    kernels: Tensor | None = None  # (B, k, k) true kernels when the blur is synthetic
    linear_light: Tensor | None = None  # (B,) bool, see deblur_core.blur.BlurResult


def _generator(*parts: int | str) -> torch.Generator:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _to_channels(x: Tensor, channels: int) -> Tensor:
    if x.shape[0] == channels:
        return x
    if channels == 3:
        return x.expand(3, *x.shape[1:]).contiguous()
    return x.mean(dim=0, keepdim=True)


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-1)
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-2)
    return x


def _crop_box(h: int, w: int, size: int, g: torch.Generator) -> tuple[int, int]:
    y = int(torch.randint(0, h - size + 1, (), generator=g))
    x = int(torch.randint(0, w - size + 1, (), generator=g))
    return y, x


class SyntheticSource:
    """Sharp images in memory or on disk, blurred on the fly with ``deblur_core.blur.synth_blur``."""

    def __init__(self, name: str, train: list, val: list, *, blur: str, val_patch: int, val_count: int,
                 channels: int, whole_image: bool = False) -> None:
        self.name, self._train, self._val, self.blur = name, train, val, blur
        self.val_patch, self.val_count, self.channels = val_patch, val_count, channels
        self.whole_image = whole_image  # CIFAR: blur the whole 32x32 image, as the seed did

    def _image(self, item) -> Tensor:
        img = item() if callable(item) else item
        return _to_channels(img, self.channels)

    def describe(self) -> dict:
        return {"name": self.name, "train_images": len(self._train), "val_images": len(self._val), "blur": self.blur}

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        g = _generator(seed, step, rank)
        pool = self._train if self.whole_image else self._large_enough(patch)
        crops = []
        for _ in range(batch_size):
            img = self._image(pool[int(torch.randint(0, len(pool), (), generator=g))])
            if self.whole_image:
                crops.append(_augment(img, g))
                continue
            size = patch + 2 * _MARGIN
            if min(img.shape[-2:]) < size:
                size = patch  # small image: no margin, reflect borders are used instead
            y, x = _crop_box(*img.shape[-2:], size, g)
            crops.append(_augment(img[:, y : y + size, x : x + size], g))
        sharp = torch.stack(crops)
        res = synth_blur(sharp, self.blur, g, quantize=True)
        blur = res.blurred
        if not self.whole_image and sharp.shape[-1] > patch:
            m = _MARGIN
            blur, sharp = blur[..., m:-m, m:-m], sharp[..., m:-m, m:-m]
        return Batch(blur.contiguous(), sharp.contiguous(), res.kernels, res.linear_light)

    @lru_cache(maxsize=4)  # noqa: B019
    def _large_enough(self, patch: int) -> list:
        pool = [item for item in self._train if min(self._image(item).shape[-2:]) >= patch]
        if not pool:
            raise DatasetError(f"{self.name}: no training image is at least {patch}x{patch}; use a smaller --patch")
        return pool

    @lru_cache(maxsize=1)  # noqa: B019
    def _val_set(self) -> tuple[Batch, ...]:
        # fixed crops spread evenly over the validation images, blurred with a fixed seed
        g = _generator("validation", self.name, self.blur)
        out = []
        for i in range(self.val_count):
            img = self._image(self._val[i % len(self._val)])
            if self.whole_image:
                crop = img
            else:
                size = min(self.val_patch + 2 * _MARGIN, *img.shape[-2:])
                y, x = _crop_box(*img.shape[-2:], size, g)
                crop = img[:, y : y + size, x : x + size]
            res = synth_blur(crop[None], self.blur, g, quantize=True)
            blur, sharp = res.blurred, crop[None]
            if not self.whole_image and size > self.val_patch:
                m = (size - self.val_patch) // 2
                blur = blur[..., m : m + self.val_patch, m : m + self.val_patch]
                sharp = sharp[..., m : m + self.val_patch, m : m + self.val_patch]
            out.append(Batch(blur, sharp, res.kernels, res.linear_light))
        return tuple(out)

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        items = self._val_set()
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            kernels = _stack_kernels([b.kernels for b in chunk])
            yield Batch(torch.cat([b.blur for b in chunk]), torch.cat([b.sharp for b in chunk]), kernels,
                        torch.cat([b.linear_light for b in chunk]))


def _stack_kernels(ks: list[Tensor]) -> Tensor:
    from .blur._kernel import pad_kernels

    return pad_kernels(ks)


class PairedSource:
    """Real blurred/sharp pairs read lazily from disk (REDS, GoPro, pairs)."""

    def __init__(self, name: str, train: list[tuple[Path, Path]], val: list[tuple[Path, Path]], *, val_patch: int,
                 val_count: int, channels: int) -> None:
        self.name, self._train, self._val = name, train, val
        self.val_patch, self.val_count, self.channels = val_patch, val_count, channels

    def describe(self) -> dict:
        return {"name": self.name, "train_pairs": len(self._train), "val_pairs": len(self._val)}

    @lru_cache(maxsize=64)  # noqa: B019 (one source per run; frames are re-read often)
    def _load(self, path: Path) -> Tensor:
        return _to_channels(read_image(path).data, self.channels)

    def _crop_pair(self, pair, size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        b, s = self._load(pair[0]), self._load(pair[1])
        size = min(size, *b.shape[-2:])
        y, x = _crop_box(*b.shape[-2:], size, g)
        return b[:, y : y + size, x : x + size], s[:, y : y + size, x : x + size]

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        g = _generator(seed, step, rank)
        blurs, sharps = [], []
        for _ in range(batch_size):
            pair = self._train[int(torch.randint(0, len(self._train), (), generator=g))]
            b, s = self._crop_pair(pair, patch, g)
            flip_state = g.get_state()
            blurs.append(_augment(b, g))
            g.set_state(flip_state)  # the same flips for both images of the pair
            sharps.append(_augment(s, g))
        return Batch(torch.stack(blurs), torch.stack(sharps))

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        g = _generator("validation", self.name)
        n = min(self.val_count, max(len(self._val), 1) * 4)
        crops = [self._crop_pair(self._val[i % len(self._val)], self.val_patch, g) for i in range(n)]
        for i in range(0, len(crops), batch_size):
            chunk = crops[i : i + batch_size]
            yield Batch(torch.stack([c[0] for c in chunk]), torch.stack([c[1] for c in chunk]))


# ---- format readers -------------------------------------------------------------------------------


def _skimage_photo(name: str) -> Tensor:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        arr = arr[0]
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    t = torch.from_numpy(arr.astype(np.float32) / 255.0)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder '{path}' does not exist")
    return path


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:  # reads the header only
            return im.size
    except OSError as e:
        raise DatasetError(f"cannot read '{path}': {e}") from None


def _pair_trees(blur_root: Path, sharp_root: Path, what: str) -> list[tuple[Path, Path]]:
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
        if _image_size(b) != _image_size(s):
            raise DatasetError(f"{what}: size mismatch between '{b}' {_image_size(b)} and '{s}' {_image_size(s)}")
        pairs.append((b, s))
    return pairs


def _reds(root: Path) -> tuple[list, list]:
    train = _pair_trees(root / "train" / "train_blur", root / "train" / "train_sharp", "REDS")
    val = _pair_trees(root / "val" / "val_blur", root / "val" / "val_sharp", "REDS")
    return train, val


def _gopro(root: Path) -> tuple[list, list]:
    def split(name: str) -> list:
        base = _require_dir(root / name, "GoPro")
        clips = sorted(p for p in base.iterdir() if p.is_dir())
        if not clips:
            raise DatasetError(f"GoPro: no clip folders under '{base}'")
        pairs = []
        for clip in clips:
            pairs += _pair_trees(clip / "blur", clip / "sharp", "GoPro")
        return pairs

    return split("train"), split("test")


def _pairs(root: Path) -> tuple[list, list]:
    if (root / "val" / "blur").is_dir():
        return _pair_trees(root / "blur", root / "sharp", "pairs"), _pair_trees(root / "val" / "blur", root / "val" / "sharp", "pairs")
    allp = _pair_trees(root / "blur", root / "sharp", "pairs")
    if len(allp) < 2:
        raise DatasetError(f"pairs: need at least 2 pairs under '{root}' to hold one out for validation")
    # every 10th pair (by natural order) is held out, so the split is fixed and spread over the set
    val = allp[::10]
    train = [p for i, p in enumerate(allp) if i % 10]
    return train, val


def _cifar(root: Path) -> tuple[list, list]:
    _require_dir(root, "CIFAR-10")

    def load(name: str) -> np.ndarray:
        f = root / name
        if not f.is_file():
            raise DatasetError(f"CIFAR-10: '{f}' is missing (expected the cifar-10-batches-py folder)")
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError) as e:
            raise DatasetError(f"CIFAR-10: '{f}' is not a CIFAR batch: {e}") from None

    train = np.concatenate([load(f"data_batch_{i}") for i in range(1, 6) if (root / f"data_batch_{i}").exists()] or [load("data_batch_1")])
    test = load("test_batch")
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return list(to_t(train)), list(to_t(test))


def _folder(root: Path) -> tuple[list, list]:
    _require_dir(root, "folder")
    files = list_images(root)
    if len(files) < 2:
        raise DatasetError(f"folder: need at least 2 images under '{root}' (one is held out for validation)")
    val = files[::10]
    train = [f for i, f in enumerate(files) if i % 10]
    loader = lambda p: (lambda: read_image(p).data)  # noqa: E731
    return [loader(p) for p in train], [loader(p) for p in val]


def open_dataset(spec: str, *, blur: str = "mix", val_patch: int = 128, val_count: int = 48, channels: int = 3):
    """Open the dataset ``spec`` (see the module docstring); malformed data raise :class:`DatasetError`
    here, before any training starts."""
    kind, _, path = spec.partition(":")
    root = Path(path).expanduser() if path else None
    if kind == "default" and not path:
        train = [_skimage_photo(n) for n in DEFAULT_TRAIN]
        val = [_skimage_photo(n) for n in DEFAULT_VAL]
        return SyntheticSource("default", train, val, blur=blur, val_patch=val_patch, val_count=val_count,
                               channels=channels)
    if root is None or kind not in {"cifar10", "reds", "gopro", "pairs", "folder"}:
        raise DatasetError(f"unknown dataset spec '{spec}'; expected one of: {', '.join(SPECS)}")
    if kind == "cifar10":
        train, val = _cifar(root)
        return SyntheticSource(f"cifar10:{root}", train, val, blur="gaussian", val_patch=32, val_count=val_count,
                               channels=channels, whole_image=True)
    if kind == "folder":
        train, val = _folder(root)
        return SyntheticSource(f"folder:{root}", train, val, blur=blur, val_patch=val_patch, val_count=val_count,
                               channels=channels)
    train, val = {"reds": _reds, "gopro": _gopro, "pairs": _pairs}[kind](root)
    return PairedSource(f"{kind}:{root}", train, val, val_patch=val_patch, val_count=val_count, channels=channels)
