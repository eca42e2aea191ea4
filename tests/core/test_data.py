"""Every dataset format, read from tiny fakes built in the real on-disk layouts."""

import os
import pickle
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import torch

from deblur_core.data import DATASET_SPECS, DEFAULT_TRAIN, DEFAULT_VAL, open_dataset
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
            pickle.dump(d, f, protocol=2)  # the real files are Python 2 pickles
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


def _train_pair(src, step, batch_size, patch, *, seed, rank=0):
    """(blurred, sharp) of ``step`` as training gets it: synthetic blur made by the source's DeviceBatches
    (on the CPU here), pairs and CIFAR-10 read by its ``train_batch``."""
    if hasattr(src, "device_batches"):
        return src.device_batches(batch_size, patch, seed=seed, rank=rank)(step)
    b = src.train_batch(step, batch_size, patch, seed=seed, rank=rank)
    return b.blur, b.sharp


@pytest.mark.parametrize("kind", ["default", *MAKERS])
def test_every_format_gives_deterministic_batches(tmp_path, kind):
    spec = "default" if kind == "default" else f"{kind}:{MAKERS[kind](tmp_path / kind)}"
    src = open_dataset(spec, blur="mix", val_patch=32, val_count=4)
    patch = 32
    blur, sharp = _train_pair(src, 5, 3, patch, seed=1)
    assert blur.shape == sharp.shape == (3, 3, patch, patch)
    assert blur.dtype == sharp.dtype == torch.float32
    assert 0 <= blur.min() and blur.max() <= 1 and 0 <= sharp.min() and sharp.max() <= 1
    assert not torch.equal(blur, sharp)
    again = _train_pair(src, 5, 3, patch, seed=1)
    assert torch.equal(blur, again[0]) and torch.equal(sharp, again[1])
    assert not torch.equal(sharp, _train_pair(src, 6, 3, patch, seed=1)[1])
    assert not torch.equal(sharp, _train_pair(src, 5, 3, patch, seed=1, rank=1)[1])
    assert not torch.equal(sharp, _train_pair(src, 5, 3, patch, seed=2)[1])
    v1, v2 = list(src.val_batches(2)), list(src.val_batches(3))
    assert sum(v.blur.shape[0] for v in v1) == 4
    assert torch.equal(torch.cat([v.blur for v in v1]), torch.cat([v.blur for v in v2]))
    assert torch.equal(torch.cat([v.sharp for v in v1]), torch.cat([v.sharp for v in v2]))
    # the validation set does not depend on the object either: a fresh open gives the same crops
    fresh = next(open_dataset(spec, blur="mix", val_patch=32, val_count=4).val_batches(2))
    assert torch.equal(fresh.blur, v1[0].blur)
    info = src.describe()
    assert info["format"] == kind and info["train_images"] >= 1 and info["val_images"] >= 1


def test_synthetic_blur_is_cut_from_a_larger_crop_and_keeps_its_kernels():
    src = open_dataset("default", blur="shake", val_patch=32, val_count=3)
    v = next(src.val_batches(3))
    assert v.blur.shape == (3, 3, 32, 32) and v.kernels.shape[0] == 3
    assert torch.allclose(v.kernels.sum((1, 2)), torch.ones(3), atol=1e-5)
    assert v.linear_light.dtype == torch.bool and not v.linear_light.any()
    plan = open_dataset("default", blur="video").device_batches(2, 24, seed=0).planner(0)
    assert plan.blur.linear_light.all() and plan.blur.kernels.shape[0] == 2


def test_default_split_is_by_image_and_loads_offline():
    assert not set(DEFAULT_TRAIN) & set(DEFAULT_VAL)
    assert "motorcycle_left.png" not in DEFAULT_TRAIN  # stereo twin of a validation photograph
    base = Path(skimage.data.__file__).parent
    assert all((base / name).is_file() for name in DEFAULT_TRAIN + DEFAULT_VAL)  # in the wheel: no download
    info = open_dataset("default").describe()
    assert (info["train_images"], info["val_images"]) == (len(DEFAULT_TRAIN), len(DEFAULT_VAL))


def test_default_check_patch_leaves_out_photographs_smaller_than_the_patch():
    open_dataset("default", blur="gaussian").check_patch(256)  # page, text are < 256 px high
    with pytest.raises(DatasetError, match="smaller --patch"):
        open_dataset("default").check_patch(2000)


def test_cifar_reads_the_pickled_planes_and_uses_the_cifar_recipe(tmp_path):
    root = make_cifar(tmp_path / "c")
    src = open_dataset(f"cifar10:{root}", val_count=5)
    b = src.train_batch(0, 4, 64, seed=0)
    assert b.blur.shape == (4, 3, 32, 32)
    assert b.kernels.shape[-1] in (7, 13, 19)
    assert torch.equal(b.blur, (b.blur * 255).round() / 255)  # 8-bit, as OpenCV on uint8 gives
    assert src.train_batch(0, 4, 16, seed=0).blur.shape == (4, 3, 16, 16)
    val = list(src.val_batches(8))
    assert sum(v.blur.shape[0] for v in val) == 5
    with open(root / "test_batch", "rb") as f:
        first = pickle.load(f, encoding="bytes")[b"data"][0]
    want = torch.from_numpy(first.reshape(3, 32, 32).astype(np.float32) / 255)  # R, G, B planes, row-major
    assert torch.equal(val[0].sharp[0], want)
    assert open_dataset(f"cifar10:{root}", val_count=5, channels=1).train_batch(0, 2, 32, seed=0).blur.shape[1] == 1


def test_cifar_refuses_pickles_that_are_not_plain_data(tmp_path):
    root = make_cifar(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(DatasetError, match="test_batch.*refusing to load '.*getcwd'"):
        open_dataset(f"cifar10:{root}")


def test_paired_crops_stay_aligned(tmp_path):
    root = tmp_path / "p"
    for i in range(3):
        _png(root / "blur" / f"{i}.png", seed=i)
        _png(root / "sharp" / f"{i}.png", seed=i)  # identical twins: crops and flips must be identical too
    src = open_dataset(f"pairs:{root}")
    for step in range(4):
        b = src.train_batch(step, 4, 16, seed=0)
        assert torch.equal(b.blur, b.sharp) and b.kernels is None
    v = next(src.val_batches(64))
    assert v.blur.shape[-2:] == (48, 48)  # val_patch 128 is cut to the smallest validation image


def test_gopro_reads_blur_not_blur_gamma(tmp_path):
    root = make_gopro(tmp_path / "g")
    for clip in (root / "train").iterdir():
        for f in (clip / "blur").iterdir():
            (clip / "sharp" / f.name).write_bytes(f.read_bytes())
    b = open_dataset(f"gopro:{root}").train_batch(0, 4, 16, seed=0)
    assert torch.equal(b.blur, b.sharp)


def test_pairs_use_a_val_folder_when_there_is_one(tmp_path):
    root = make_pairs(tmp_path / "p", n=4)
    assert open_dataset(f"pairs:{root}").describe()["train_images"] == 3  # every 10th pair is held out
    _png(root / "val" / "blur" / "v.png")
    _png(root / "val" / "sharp" / "v.png", seed=1)
    info = open_dataset(f"pairs:{root}").describe()
    assert (info["train_images"], info["val_images"]) == (4, 1)


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
    with pytest.raises(DatasetError, match="no images under.*empty"):
        open_dataset(f"pairs:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="no images under.*empty"):
        open_dataset(f"folder:{tmp_path / 'empty'}")

    with pytest.raises(DatasetError, match="nowhere.*does not exist"):
        open_dataset(f"gopro:{tmp_path / 'nowhere'}")

    cifar = make_cifar(tmp_path / "cifar")
    (cifar / "test_batch").unlink()
    with pytest.raises(DatasetError, match="test_batch.*missing"):
        open_dataset(f"cifar10:{cifar}")
    (cifar / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_1.*not a CIFAR-10 python batch"):
        open_dataset(f"cifar10:{cifar}")

    with pytest.raises(DatasetError, match="unknown dataset spec 'imagenet:x'.*" + ".*".join(DATASET_SPECS)):
        open_dataset("imagenet:x")
    with pytest.raises(DatasetError, match="unknown dataset spec 'reds'"):
        open_dataset("reds")


def test_images_smaller_than_the_patch_are_named(tmp_path):
    folder = make_folder(tmp_path / "small")
    with pytest.raises(DatasetError, match="img1.png' is 80x96, smaller than the 512x512"):
        open_dataset(f"folder:{folder}").check_patch(512)
    with pytest.raises(DatasetError, match="00000000.png' is 48x64, smaller than the 64x64"):
        open_dataset(f"reds:{make_reds(tmp_path / 'reds')}").check_patch(64)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="unknown blur kind 'defocus'"):
        open_dataset("default", blur="defocus")
    with pytest.raises(ValueError, match="channels"):
        open_dataset("default", channels=4)
