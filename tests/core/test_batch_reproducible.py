"""deblur_core.batch reproduces its bytes: a frame's output does not depend on the frames batched with it, nor on
the run having been interrupted and resumed."""

import hashlib
from pathlib import Path

import numpy as np
from skimage import data as skdata

from deblur_core.batch import BatchOptions, deblur_path
from deblur_core.inference import load_deblurrer
from deblur_core.io import Image, list_images, to_tensor, write_image


def _photo_crops(root: Path, n: int, h: int, w: int) -> None:
    """``n`` crops of h x w from a photograph, each from another place, as 16-bit PNG frames under ``root``:
    at 65535 levels a difference of 1e-7 (what batching made of a frame here) changes some of the bytes, where
    8 bits would round most of them away."""
    photo = skdata.astronaut().astype(np.uint16) * 257
    root.mkdir(parents=True)
    for i in range(n):
        y, x = 23 * i % (photo.shape[0] - h), 37 * i % (photo.shape[1] - w)
        data, _, bit_depth = to_tensor(np.ascontiguousarray(photo[y : y + h, x : x + w]))
        write_image(root / f"{i:03d}.png", Image(data=data, bit_depth=bit_depth))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_images(root)}


def test_every_output_is_the_same_bytes_however_batched_and_when_resumed(tmp_path):
    """nafnet-cpu's shipped weights at --precision auto: batches of 1, the default 4, and a run whose outputs
    were partly lost (as a killed run leaves them), then resumed, with other frames in each batch."""
    src = tmp_path / "in"
    _photo_crops(src, 6, 64, 96)
    _photo_crops(src / "small", 5, 48, 40)
    deb = load_deblurrer("nafnet-cpu", device="cpu")
    runs = {}
    for name, batch_size in (("alone", 1), ("default", BatchOptions().batch_size)):
        report = deblur_path(src, tmp_path / name, BatchOptions(batch_size=batch_size), deblurrer=deb)
        assert report.done == 11
        runs[name] = _digests(tmp_path / name)
    resumed = tmp_path / "default"
    for rel in ("001.png", "002.png", "004.png", "small/003.png"):
        (resumed / rel).unlink()
    assert deblur_path(src, resumed, BatchOptions(), deblurrer=deb).done == 4
    assert _digests(resumed) == runs["alone"] == runs["default"]
