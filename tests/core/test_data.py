"""Every dataset format, read from tiny fakes built in the real on-disk layouts."""

import pickle

import numpy as np
import pytest
import torch
import imageio.v3 as iio

from deblur_core.data import DEFAULT_TRAIN, DEFAULT_VAL, open_dataset
from deblur_core.errors import DatasetError


def _png(path, h=48, w=64, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def make_cifar(root, n=20):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "test_batch"):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n)),
             b"batch_label": name.encode()}
        with open(root / name, "wb") as f:
            pickle.dump(d, f)
    return root


def make_reds(root):
    for split in ("train", "val"):
        for clip in ("000", "001"):
            for i in range(3):
                _png(root / split / f"{split}_blur" / clip / f"{i:08d}.png", seed=i)
                _png(root / split / f"{split}_sharp" / clip / f"{i:08d}.png", seed=10 + i)
    return root


def make_gopro(root):
    for split, clips in (("train", ("GOPR0372_07_00", "GOPR0374_11_00")), ("test", ("GOPR0384_11_00",))):
        for clip in clips:
            for i in range(2):
                for sub in ("blur", "blur_gamma", "sharp"):
                    _png(root / split / clip / sub / f"{i:06d}.png", seed=i + len(sub))
    return root


def make_pairs(root, n=12):
    for i in range(n):
        _png(root / "blur" / "a" / f"f{i}.png", seed=i)
        _png(root / "sharp" / "a" / f"f{i}.png", seed=100 + i)
    return root


def make_folder(root, n=6):
    for i in range(n):
        _png(root / "x" / f"img{i}.png", 80, 96, seed=i)
    return root


MAKERS = {"cifar10": make_cifar, "reds": make_reds, "gopro": make_gopro, "pairs": make_pairs, "folder": make_folder}


@pytest.mark.parametrize("kind", ["default", *MAKERS])
def test_every_format_gives_deterministic_batches(tmp_path, kind):
    spec = "default" if kind == "default" else f"{kind}:{MAKERS[kind](tmp_path / kind)}"
    src = open_dataset(spec, blur="mix", val_patch=32, val_count=4)
    patch = 32
    b = src.train_batch(5, 3, patch, seed=1)
    assert b.blur.shape == b.sharp.shape == (3, 3, patch, patch)
    assert b.blur.dtype == torch.float32 and 0 <= b.blur.min() and b.blur.max() <= 1
    assert not torch.equal(b.blur, b.sharp)
    again = src.train_batch(5, 3, patch, seed=1)
    assert torch.equal(b.blur, again.blur) and torch.equal(b.sharp, again.sharp)
    assert not torch.equal(b.sharp, src.train_batch(6, 3, patch, seed=1).sharp)
    assert not torch.equal(b.sharp, src.train_batch(5, 3, patch, seed=1, rank=1).sharp)
    v1, v2 = list(src.val_batches(2)), list(src.val_batches(2))
    assert sum(v.blur.shape[0] for v in v1) >= 1
    assert all(torch.equal(a.blur, c.blur) and torch.equal(a.sharp, c.sharp) for a, c in zip(v1, v2))


def test_cifar_uses_the_seed_gaussian_recipe_on_whole_images(tmp_path):
    src = open_dataset(f"cifar10:{make_cifar(tmp_path / 'c')}", val_count=5)
    b = src.train_batch(0, 4, 64, seed=0)
    assert b.blur.shape == (4, 3, 32, 32)
    assert b.kernels.shape[-1] in (7, 13, 19)
    assert sum(v.blur.shape[0] for v in src.val_batches(8)) == 5


def test_synthetic_sources_keep_their_kernels_for_baselines():
    src = open_dataset("default", blur="shake", val_patch=32, val_count=3)
    v = next(src.val_batches(3))
    assert v.kernels.shape[0] == 3 and torch.allclose(v.kernels.sum((1, 2)), torch.ones(3), atol=1e-5)


def test_default_split_is_by_image():
    assert not set(DEFAULT_TRAIN) & set(DEFAULT_VAL)


def test_paired_crops_stay_aligned(tmp_path):
    root = tmp_path / "p"
    for i in range(3):
        _png(root / "blur" / f"{i}.png", seed=i)
        _png(root / "sharp" / f"{i}.png", seed=i)  # identical twins: crops must be identical too
    b = open_dataset(f"pairs:{root}").train_batch(0, 4, 16, seed=0)
    assert torch.equal(b.blur, b.sharp)


def test_malformed_datasets_fail_early_naming_the_problem(tmp_path):
    reds = make_reds(tmp_path / "reds")
    missing = reds / "train" / "train_sharp" / "001" / "00000002.png"
    missing.unlink()
    with pytest.raises(DatasetError, match="00000002.png.*no sharp twin"):
        open_dataset(f"reds:{reds}")

    pairs = make_pairs(tmp_path / "pairs")
    _png(pairs / "sharp" / "a" / "f3.png", 40, 40)
    with pytest.raises(DatasetError, match="size mismatch.*f3.png"):
        open_dataset(f"pairs:{pairs}")

    (tmp_path / "empty" / "blur").mkdir(parents=True)
    (tmp_path / "empty" / "sharp").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images under"):
        open_dataset(f"pairs:{tmp_path / 'empty'}")

    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(f"gopro:{tmp_path / 'nowhere'}")

    cifar = make_cifar(tmp_path / "cifar")
    (cifar / "test_batch").unlink()
    with pytest.raises(DatasetError, match="test_batch.*missing"):
        open_dataset(f"cifar10:{cifar}")

    with pytest.raises(DatasetError, match="unknown dataset spec 'imagenet:x'.*default"):
        open_dataset("imagenet:x")

    with pytest.raises(DatasetError, match="smaller --patch"):
        open_dataset(f"folder:{make_folder(tmp_path / 'small')}").train_batch(0, 2, 512, seed=0)
