"""Deblurring one image per call (folders and videos are :mod:`deblur_core.batch`'s job).

Everything a front end working on one image at a time (the web demo) needs sits here, so it only parses
and presents:

* :func:`load_image` reads an upload safely: the pixel count is checked from the file header *before*
  the image is decoded (a small compressed file can expand to gigabytes: a decompression bomb).
* :func:`deblur_image` runs a model on an image, tiled so memory stays bounded, and reports time, device,
  whether the model has trained weights, and the no-reference blur effect before and after.
* :func:`blur_then_deblur` blurs a sharp photo with a chosen synthetic blur first (:func:`deblur_core.blur.
  synth_blur` at a given strength), so the result can be scored (PSNR/SSIM of the blurred and of the
  deblurred image against the original).
* :func:`model_choices` and :func:`example_images` list the models (trained first) and bundled samples.

Loaded models are kept in a small LRU cache keyed on the weight file and its modification time, so a
weight file that appears or changes later is picked up without a restart.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .blur import check_kind, synth_blur
from .catalog import model_catalog, trained_on
from .checkpoint import read_metadata
from .errors import DeblurError
from .inference import NON_FINITE_OUTPUT, Deblurrer, load_deblurrer, resolve_device, weights_source
from .io import Image, check_pixels, image_size, read_image, to_tensor
from .metrics import blur_effect, psnr, ssim
from .precision import check_precision
from .progress import Progress, ProgressFn
from .tta import check_tta

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DeblurResult",
    "load_image",
    "deblur_image",
    "blur_then_deblur",
    "model_choices",
    "example_images",
]

DEFAULT_MAX_PIXELS = 4096 * 4096  # 16.8 MP: any real photo; far below what would exhaust memory
_MIN_SIDE = 11  # SSIM's window; smaller images cannot be scored

WeightsArg = str | Path | None


@dataclass
class DeblurResult:
    """What one run produced and how.

    Attributes:
        input: the image the network saw (the upload, or the upload blurred by :func:`blur_then_deblur`).
        output: the deblurred image: same size, alpha channel and bit depth as ``input``.
        model: the variant's name.
        trained: False when the variant has no weights (an untrained network here is the identity).
        device: where the network ran, e.g. ``"cpu"`` or ``"cuda"``.
        precision: its arithmetic: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast.
        seconds: time taken by the network (tiles included, model loading excluded).
        tiles: how many tiles the image was cut into.
        original: the sharp upload, for :func:`blur_then_deblur`; else None.
        metrics: for :func:`blur_then_deblur`, ``{"blurred": {"psnr", "ssim"}, "deblurred": {...}}``, each
            against ``original``; else empty.
        blur_effect_before, blur_effect_after: the no-reference blur of ``input`` and of ``output``
            (:func:`deblur_core.metrics.blur_effect`: 0 sharp .. 1 blurry, on the central 512x512; NaN for
            images under 4x4 pixels), as ``deblur-cli batch`` reports for frames.
    """

    input: Image
    output: Image
    model: str
    trained: bool
    device: str
    seconds: float
    tiles: int = 1
    precision: str = "fp32"
    original: Image | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    blur_effect_before: float = math.nan
    blur_effect_after: float = math.nan


def _check_size(width: int, height: int, max_pixels: int, name: str | Path) -> None:
    check_pixels(name, width, height, max_pixels)
    if min(width, height) < 1:
        raise DeblurError(f"the image '{name}' is empty ({width}x{height})")


def load_image(source: str | Path | np.ndarray | Image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Read an image, refusing ones larger than ``max_pixels`` before decoding them.

    Args:
        source: a file path, an (H, W[, C]) uint8/uint16/float array, or an :class:`Image`.
        max_pixels: the largest width x height accepted.

    Raises:
        ImageTooLargeError: too many pixels (checked from the header for files).
        ImageReadError: the file is missing, corrupt or not an image.
        DeblurError: an array of unsupported shape or dtype.
    """
    if isinstance(source, Image):
        _check_size(source.width, source.height, max_pixels, "image")
        return source
    if isinstance(source, np.ndarray):
        h, w = source.shape[:2] if source.ndim >= 2 else (0, 0)
        _check_size(w, h, max_pixels, "array")
        try:
            data, alpha, bit_depth = to_tensor(source)
        except ValueError as err:
            raise DeblurError(str(err)) from err
        return Image(data=data, alpha=alpha, bit_depth=bit_depth)
    path = Path(source)
    height, width = image_size(path)
    _check_size(width, height, max_pixels, path)
    return read_image(path)


def _cached_deblurrer(name: str | None, weights: WeightsArg, device: str, precision: str, tta: int) -> Deblurrer:
    """The deblurrer for these arguments, loaded once and reused while its weight file stays the same."""
    try:
        check_precision(precision)
        check_tta(tta)
    except ValueError as err:  # the demo shows DeblurErrors to the user
        raise DeblurError(str(err)) from None
    name, path = weights_source(name, weights)
    stamp = path.stat().st_mtime_ns if path is not None and path.is_file() else None
    return _load_deblurrer_once(name, str(path) if path is not None else None, stamp,
                                str(resolve_device(device)), precision, tta)


@functools.lru_cache(maxsize=2)
def _load_deblurrer_once(name: str | None, weights: str | None, stamp: int | None, device: str,
                         precision: str, tta: int) -> Deblurrer:
    # stamp (the file's mtime) is part of the key only so that replaced weights are reloaded
    return load_deblurrer(name, weights, device=device, precision=precision, tta=tta)


def _run_network(
    x: Tensor,
    name: str,
    weights: WeightsArg,
    device: str,
    precision: str,
    tile: int | None,
    progress: ProgressFn | None,
    tta: int,
) -> tuple[Tensor, Deblurrer, float, int]:
    # a grayscale x needs nothing here: the networks replicate it to RGB and average back (models.base)
    deblurrer = _cached_deblurrer(name, weights, device, precision, tta)
    tiles = [1]

    def report(p: Progress) -> None:
        tiles[0] = p.total or 1
        if progress is not None:
            progress(p)

    start = time.perf_counter()
    y = deblurrer(x, tile=tile, progress=report)
    if deblurrer.device.type == "cuda":
        torch.cuda.synchronize()
    return y, deblurrer, time.perf_counter() - start, tiles[0]


def deblur_image(
    image: str | Path | np.ndarray | Image,
    model: str | None,
    *,
    weights: WeightsArg = None,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: ProgressFn | None = None,
    tta: int = 1,
) -> DeblurResult:
    """Deblur one image with variant ``model``.

    Args:
        image: a path, an array or an :class:`Image` (see :func:`load_image`).
        model: registry name of the variant; None: the network of ``weights`` (or the default model).
        weights: a checkpoint to use instead of the variant's shipped weights (None: shipped, if any), or a
            published one (see :func:`deblur_core.inference.load_deblurrer`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see
            :func:`deblur_core.precision.inference_dtype`); the output keeps the input's bit depth.
        tile: run the image in overlapping tiles of this size where larger (None: as the device's memory
            budget plans, see :func:`deblur_core.inference.deblur_tensor`).
        max_pixels: refuse images with more pixels than this.
        progress: called as tiles finish (see :class:`deblur_core.progress.Progress`).
        tta: average the network over this many flips and rotations of the image (1, 2, 4 or 8).

    Returns:
        A :class:`DeblurResult`; ``output`` keeps the input's size, alpha and bit depth.

    Raises:
        DeblurError: unreadable or oversized image, unknown model, bad weight file, an output holding NaN.
    """
    img = load_image(image, max_pixels=max_pixels)
    y, deblurrer, seconds, tiles = _run_network(img.data[None], model, weights, device, precision, tile,
                                                progress, tta)
    if not bool(torch.isfinite(y).all()):  # an image would store NaN as black
        raise DeblurError(NON_FINITE_OUTPUT)
    return DeblurResult(input=img, output=Image(data=y[0], alpha=img.alpha, bit_depth=img.bit_depth), model=deblurrer.name,
                        trained=deblurrer.trained, device=str(deblurrer.device), seconds=seconds, tiles=tiles,
                        precision=deblurrer.precision, blur_effect_before=blur_effect(img.data).item(),
                        blur_effect_after=blur_effect(y[0]).item())


def _blur_as_saved(original: Image, kind: str, strength: float, seed: int) -> Tensor:
    """(1, C, H, W): ``original`` blurred at ``strength`` and rounded to its bit depth's levels."""
    try:
        check_kind(kind, mix=False)  # one kind per photo: a mix of one sample is just a random kind
        blurred = synth_blur(original.data[None], kind, torch.Generator().manual_seed(int(seed)),
                             strength=strength).blurred
    except ValueError as err:
        raise DeblurError(str(err)) from err
    levels = 255.0 if original.bit_depth == 8 else 65535.0
    return (blurred * levels).round() / levels


def blur_then_deblur(
    image: str | Path | np.ndarray | Image,
    model: str,
    kind: str,
    strength: float,
    seed: int = 0,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **options: Any,
) -> DeblurResult:
    """Blur a sharp photo, deblur it, and score both against the photo.

    ``strength`` in [0, 1] runs from mild to strong blur of ``kind`` (``gaussian``, ``motion``, ``shake`` or
    ``video``; see :func:`deblur_core.blur.synth_blur`); directions and paths are drawn from ``seed``. The
    blurred image is quantised to the photo's bit depth first, as a saved photo would be, so the network
    sees what it would see in a file. ``max_pixels`` and ``options`` (``weights``, ``device``,
    ``precision``, ``tile``, ``progress``, ``tta``) are as for :func:`deblur_image`.

    Returns:
        A :class:`DeblurResult` with ``original`` set and ``metrics`` =
        ``{"blurred": {"psnr": dB, "ssim": s}, "deblurred": {"psnr": dB, "ssim": s}}``.

    Raises:
        DeblurError: as :func:`deblur_image`; also a bad kind or strength, or an image smaller than
            11x11 (too small to score).
    """
    original = load_image(image, max_pixels=max_pixels)
    if min(original.height, original.width) < _MIN_SIDE:
        raise DeblurError(f"the image must be at least {_MIN_SIDE}x{_MIN_SIDE} pixels to be scored")
    blurred = Image(data=_blur_as_saved(original, kind, strength, seed)[0], alpha=original.alpha,
                    bit_depth=original.bit_depth)
    result = deblur_image(blurred, model, max_pixels=max_pixels, **options)
    sharp = original.data[None]
    result.original = original
    result.metrics = {
        name: {"psnr": float(psnr(img.data[None], sharp)[0]), "ssim": float(ssim(img.data[None], sharp)[0])}
        for name, img in (("blurred", blurred), ("deblurred", result.output))
    }
    return result


def model_choices(weights: Mapping[str, str | Path] | None = None) -> list[tuple[str, str]]:
    """(label, name) for every variant, those with trained weights first, cheapest first within each
    group; the label is the variant's card line, e.g. ``"nafnet · 0.44 M params · 38 GFLOP/MP · val
    PSNR 31.02 dB (blurred 27.60) on default, gaussian blur"`` or ``"... · untrained (identity)"``.

    Args:
        weights: checkpoints overriding the shipped ones, by variant name.
    """
    weights = dict(weights or {})
    rows = []
    for row in model_catalog():
        metrics, trained, data = row["metrics"], row["weights"], row["trained_on"]
        if row["name"] in weights:
            meta = read_metadata(weights[row["name"]])
            metrics, trained, data = meta.get("metrics", {}), True, trained_on(meta.get("config", {}))
        parts = [row["name"], f"{row['params'] / 1e6:.2f} M params", f"{row['gflops_per_mp']:.0f} GFLOP/MP"]
        if not trained:
            parts.append("untrained (identity)")
        elif _finite(metrics.get("val_psnr")):
            # a validation PSNR means little without the blur it was measured on and the input's PSNR
            val = f"val PSNR {metrics['val_psnr']:.2f} dB"
            if _finite(metrics.get("input_psnr")):
                val += f" (blurred {metrics['input_psnr']:.2f})"
            parts.append(val + (f" on {data}" if data else ""))
        else:
            parts.append("trained")
        rows.append((not trained, row["gflops_per_mp"], " · ".join(parts), row["name"]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(label, name) for _, _, label, name in rows]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def example_images() -> list[Path]:
    """Real blurred samples shipped with the package: scikit-image's ``clock_motion.png`` (a photo with
    true camera motion) and two frames of the bundled REDS-layout clip (``examples/reds``: a camera pan
    over a photograph, averaged in linear light as REDS and GoPro frames are)."""
    assets = Path(str(resources.files("deblur_core") / "assets"))
    return sorted(assets.glob("*.png"))
