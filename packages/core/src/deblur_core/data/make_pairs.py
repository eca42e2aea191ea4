"""Build a paired blurred/sharp dataset from a folder of sharp images or frames.

``OUT/blur/<rel>`` and ``OUT/sharp/<rel>`` mirror each input's relative path, so the result is read back by
``--data pairs:OUT``. The blur of each image depends only on the seed and the image's relative path, so a
rerun (or a run on a subset) reproduces the same pairs, and nothing is ever written inside the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..blur import check_kind, synth_blur
from ..errors import DeblurError, ImageReadError
from ..io import Image, list_images, read_image, write_image
from ..progress import Progress, ProgressFn
from ..seeding import seeded_generator

__all__ = ["PairsReport", "make_blur_pairs"]


@dataclass
class PairsReport:
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def make_blur_pairs(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    kind: str = "mix",
    seed: int = 0,
    noise_sigma: float = 0.0,
    jpeg_quality: int = 0,
    progress: ProgressFn | None = None,
) -> PairsReport:
    """Blur every image under ``input_dir`` with synthetic blur of ``kind``; write the pairs under ``out_dir``.

    ``progress`` is called with images finished and in all after each image, read or not.
    ``jpeg_quality`` (1-100; 0: none) saves each blurred image through a JPEG of that quality first, as a
    camera or phone would (8-bit images only: a 16-bit one refuses it).

    Raises ValueError for arguments that cannot work (unknown kind, input not a folder, output inside the
    input) and DeblurError when the input holds no images. Both images of a pair keep the input's bit depth and alpha; the sharp twin is the input re-encoded
    in the same format. Unreadable inputs are reported, not fatal.
    """
    check_kind(kind)
    if not 0 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 0-100 (0: none), got {jpeg_quality}")
    src, dst = Path(input_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise ValueError(f"input '{src}' is not a folder")
    if dst == src or src in dst.parents:
        raise ValueError(f"output '{dst}' is inside the input '{src}'; choose a folder outside it")
    files = list_images(src)
    if not files:
        raise DeblurError(f"no images found under '{src}'")
    report = PairsReport()
    for i, f in enumerate(files):
        rel = f.relative_to(src)
        try:
            img = read_image(f)
        except ImageReadError as e:
            report.failed.append((str(rel), e.reason))
        else:
            if jpeg_quality and img.bit_depth != 8:
                report.failed.append((str(rel), f"--jpeg needs 8-bit images, this one has {img.bit_depth} bits"))
            else:
                _write_pair(img, rel, dst, kind, seeded_generator(seed, rel.as_posix()), noise_sigma, jpeg_quality)
                report.written += 1
        if progress:
            progress(Progress(i + 1, len(files)))
    return report


def _write_pair(img: Image, rel: Path, dst: Path, kind: str, g: torch.Generator, noise_sigma: float,
                jpeg_quality: int) -> None:
    """Blur one image (its own generator: its blur does not depend on the others) and write both twins."""
    blurred = synth_blur(img.data[None], kind, g, noise_sigma=noise_sigma, quantize=img.bit_depth == 8,
                         jpeg_quality=jpeg_quality).blurred[0]
    for sub, data in (("blur", blurred), ("sharp", img.data)):
        target = dst / sub / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, Image(data=data, alpha=img.alpha, bit_depth=img.bit_depth))
