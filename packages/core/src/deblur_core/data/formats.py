"""The on-disk layouts: each reader checks a dataset's folders and returns its (train, val) split as file
lists, sizes read from the headers (no pixel is decoded here).

The layouts and splits are listed in :mod:`deblur_core.data`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DatasetError
from ..io import image_size, list_images
from .base import ImageFile, PairFiles, require_dir

__all__ = ["DEFAULT_TRAIN", "DEFAULT_VAL", "PAIRED_FORMATS", "default_split", "folder_split", "gopro_split",
           "pairs_split", "reds_split"]

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

_HOLD_OUT_EVERY = 10  # pairs/folder without a validation folder: every 10th file validates

Split = tuple[list, list]  # (train, val): lists of ImageFile or of PairFiles


def _image_files(paths: Sequence[Path]) -> list[ImageFile]:
    return [ImageFile(p, *image_size(p)) for p in paths]


def _pair_trees(blur_root: Path, sharp_root: Path, what: str) -> list[PairFiles]:
    """Every image under ``blur_root`` with its twin at the same relative path under ``sharp_root``; the
    sizes of all pairs are checked from their headers."""
    require_dir(blur_root, what)
    require_dir(sharp_root, what)
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
        pairs.append(PairFiles(b, s, *bsize))
    return pairs


def _hold_out(items: list, what: str, root: Path) -> Split:
    if len(items) < 2:
        raise DatasetError(f"{what}: need at least 2 images under '{root}' to hold one out for validation")
    return ([it for i, it in enumerate(items) if i % _HOLD_OUT_EVERY],
            [it for i, it in enumerate(items) if i % _HOLD_OUT_EVERY == 0])


def reds_split(root: Path, for_eval: bool = False) -> Split:
    require_dir(root, "REDS")
    val = _pair_trees(root / "val" / "val_blur", root / "val" / "val_sharp", "REDS")
    if for_eval:  # a test set needs no training split
        return val, val
    train = _pair_trees(root / "train" / "train_blur", root / "train" / "train_sharp", "REDS")
    return train, val


def gopro_split(root: Path, for_eval: bool = False) -> Split:
    require_dir(root, "GoPro")

    def split(name: str) -> list[PairFiles]:
        base = require_dir(root / name, "GoPro")
        clips = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not clips:
            raise DatasetError(f"GoPro: no clip folders under '{base}'")
        return [pair for clip in clips for pair in _pair_trees(clip / "blur", clip / "sharp", "GoPro")]

    test = split("test")
    return (test if for_eval else split("train")), test


def pairs_split(root: Path, for_eval: bool = False) -> Split:
    require_dir(root, "pairs")
    if for_eval and (root / "val").is_dir():
        val = _pair_trees(root / "val" / "blur", root / "val" / "sharp", "pairs")
        return val, val
    pairs = _pair_trees(root / "blur", root / "sharp", "pairs")
    if (root / "val").is_dir():
        return pairs, _pair_trees(root / "val" / "blur", root / "val" / "sharp", "pairs")
    if for_eval:  # no split: the whole folder is the test set
        return pairs, pairs
    return _hold_out(pairs, "pairs", root)


def folder_split(root: Path) -> Split:
    require_dir(root, "folder")
    if (root / "train").is_dir() and (root / "val").is_dir():  # whole photos held out by the user
        train, val = list_images(root / "train"), list_images(root / "val")
        if not train or not val:
            raise DatasetError(f"folder: '{root}/train' and '{root}/val' must both hold images")
        return _image_files(train), _image_files(val)
    files = list_images(root)
    if not files:
        raise DatasetError(f"folder: no images under '{root}'")
    return _hold_out(_image_files(files), "folder", root)


def default_split() -> Split:
    import skimage.data

    base = Path(skimage.data.__file__).parent
    missing = [n for n in DEFAULT_TRAIN + DEFAULT_VAL if not (base / n).is_file()]
    if missing:
        raise DatasetError(f"default: scikit-image's data folder '{base}' lacks {', '.join(missing)}")
    return _image_files([base / n for n in DEFAULT_TRAIN]), _image_files([base / n for n in DEFAULT_VAL])


# the formats of real pairs, by spec prefix: root, for_eval -> (train, val) lists of PairFiles
PAIRED_FORMATS: dict[str, Callable[[Path, bool], Split]] = {"reds": reds_split, "gopro": gopro_split,
                                                            "pairs": pairs_split}
