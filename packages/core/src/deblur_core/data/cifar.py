"""CIFAR-10 from the ``cifar-10-batches-py`` pickles, read by an unpickler that loads plain data only."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..blur import synth_blur
from ..errors import DatasetError
from ..seeding import seeded_generator
from .base import Batch, check_train_args, chunks, flip, randint, random_flips, require_dir, to_channels

__all__ = ["CifarSource", "open_cifar"]


class CifarSource:
    """CIFAR-10 from the ``cifar-10-batches-py`` pickles, blurred with the original project's recipe, the
    ``gaussian`` kind (sigma from {1, 2, 3}, OpenCV's kernel size, 8-bit result), applied to the whole 32x32
    image."""

    def __init__(self, name: str, train: np.ndarray, val: np.ndarray, *, val_count: int, channels: int) -> None:
        self.name, self.channels = name, channels
        self._train = train  # (N, 3, 32, 32) uint8: 150 MB for all 50,000 images, 4x less than float
        self._val = val[:val_count]
        self._val_set: tuple[Batch, ...] | None = None

    def describe(self) -> dict:
        return {"format": "cifar10", "path": self.name.partition(":")[2], "train_images": len(self._train),
                "val_images": len(self._val), "blur": "gaussian (sigma 1, 2, 3)"}

    def check_patch(self, patch: int) -> None:
        """Any patch works: larger ones are cut to the 32x32 image."""

    def _blur(self, images: np.ndarray, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        x = to_channels(torch.from_numpy(images).float() / 255.0, self.channels)
        res = synth_blur(x, "gaussian", g, quantize=True)
        return res.blurred, x, res.kernels

    def train_batch(self, step: int, batch_size: int, patch: int, *, seed: int, rank: int = 0) -> Batch:
        check_train_args(batch_size, patch)
        g = seeded_generator("train", seed, step, rank)
        idx = torch.randint(0, len(self._train), (batch_size,), generator=g).numpy()
        blurred, sharp, kernels = self._blur(self._train[idx], g)
        p = min(patch, 32)
        blurs, sharps = [], []
        for i in range(batch_size):
            y, x = randint(33 - p, g), randint(33 - p, g)
            flips = random_flips(g)
            blurs.append(flip(blurred[i, :, y : y + p, x : x + p], flips))
            sharps.append(flip(sharp[i, :, y : y + p, x : x + p], flips))
        return Batch(torch.stack(blurs), torch.stack(sharps), kernels, torch.zeros(batch_size, dtype=torch.bool))

    def test_images(self) -> Iterator[tuple[str, Batch]]:
        """The validation images (whole 32x32 images already), one by one, named by their index."""
        for i, b in enumerate(self.val_batches(1)):
            yield f"test_batch[{i}]", b

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        if self._val_set is None:
            blurred, sharp, kernels = self._blur(self._val, seeded_generator("val", "cifar10"))
            linear_light = torch.zeros(len(self._val), dtype=torch.bool)
            self._val_set = tuple(Batch(blurred[i : i + 1], sharp[i : i + 1], kernels[i : i + 1],
                                        linear_light[i : i + 1])
                                  for i in range(len(self._val)))
        return chunks(self._val_set, batch_size)


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


def open_cifar(root: Path, *, val_count: int, channels: int) -> CifarSource:
    """The ``cifar-10-batches-py`` folder ``root``: trains on its ``data_batch_*``, validates on the first
    ``val_count`` images of ``test_batch``."""
    require_dir(root, "CIFAR-10")
    names = [f"data_batch_{i}" for i in range(1, 6) if (root / f"data_batch_{i}").is_file()] or ["data_batch_1"]
    train = np.concatenate([_cifar_batch(root / n) for n in names])
    return CifarSource(f"cifar10:{root}", train, _cifar_batch(root / "test_batch"), val_count=val_count,
                       channels=channels)
