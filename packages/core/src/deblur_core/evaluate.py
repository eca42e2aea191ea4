"""Evaluation in the original project's format (MSE, PSNR, SSIM), beside the blurred input and, where the blur
kernel is known, a classical non-blind baseline: Richardson-Lucy deconvolution given the true kernel.

So every learned number stands next to what doing nothing and what a textbook method achieve.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .blur import linear_to_srgb, srgb_to_linear
from .metrics import level_shift, mse, psnr, ssim
from .progress import Progress, ProgressFn

if TYPE_CHECKING:
    from .inference import Deblurrer

__all__ = ["richardson_lucy", "evaluate"]


def richardson_lucy(blur: Tensor, kernels: Tensor, *, iterations: int = 30, linear_light: Tensor | None = None) -> Tensor:
    """Non-blind Richardson-Lucy deconvolution of each image with its own kernel (scikit-image's).

    Args:
        blur: (B, C, H, W) in [0, 1].
        kernels: (B, k, k), the true blur kernel of each image.
        iterations: RL iterations (30 balances sharpening against noise amplification on 8-bit input).
        linear_light: (B,) bool; where True the kernel acts in linear light (video, long, realistic: as a sensor adds up light), so the
            deconvolution runs there.

    Returns:
        (B, C, H, W) in [0, 1].
    """
    from skimage.restoration import richardson_lucy as _rl

    out = torch.empty_like(blur)
    for i in range(blur.shape[0]):
        img = blur[i]
        lin = linear_light is not None and bool(linear_light[i])
        if lin:
            img = srgb_to_linear(img)
        k = kernels[i].double().numpy()
        for c in range(img.shape[0]):
            # reflect-pad so the periodic-free FFT convolution inside RL does not ring at the borders
            pad = k.shape[0]
            ch = np.pad(img[c].double().numpy(), pad, mode="reflect")
            res = _rl(ch, k, num_iter=iterations, clip=True)[pad:-pad, pad:-pad]
            out[i, c] = torch.from_numpy(res).float()
        if lin:
            out[i] = linear_to_srgb(out[i])
    return out.clamp_(0, 1)


def _scores(pred: Tensor, sharp: Tensor) -> dict[str, list]:
    return {
        "mse": mse(pred, sharp).tolist(),
        "psnr": psnr(pred, sharp).tolist(),
        "ssim": ssim(pred, sharp).tolist(),
        "shift": level_shift(pred, sharp).tolist(),  # one list per image: a value per channel
    }


def _summary(scores: dict[str, list]) -> dict[str, Any]:
    """Means over the images; ``shift`` per channel, with ``max_abs_shift`` the largest over images and channels
    (a mean of shifts can hide one photo made much darker and another brighter)."""
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in scores.items() if k != "shift"}
    shifts = np.asarray(scores["shift"])
    out["shift"] = shifts.mean(axis=0).tolist()
    out["max_abs_shift"] = float(np.abs(shifts).max())
    return out


@torch.inference_mode()
def evaluate(model: torch.nn.Module | Deblurrer | None, source, *, device: str | torch.device = "cpu", precision: str = "auto",
             batch_size: int = 8, baseline: bool = True, crops: bool = False, tile: int | None = None,
             progress: ProgressFn | None = None) -> dict[str, Any]:
    """Mean per-image MSE/PSNR/SSIM and level shift (:func:`deblur_core.metrics.level_shift`) of the blurred
    input, the model (if given) and Richardson-Lucy with the true kernel (when the dataset knows its kernels).

    By default every held-out image is scored whole, as the field's test protocols (GoPro, REDS) do:
    ``source.test_images()``, the model run as :func:`deblur_core.inference.deblur_tensor` runs it (``tile``:
    in ``tile`` x ``tile`` tiles where larger; None: as the memory budget plans). ``crops=True``
    scores the fixed validation crops training reports instead (a quick look). The model runs at ``precision``
    (:func:`~deblur_core.precision.inference_dtype`), a Deblurrer in its own. ``progress`` counts whole images.

    Returns:
        ``{"dataset": ..., "images": n, "protocol": "whole images" | "crops", "rows": {"blurred": {...},
        "model": {...}, "richardson_lucy": {...}}, "per_image": [{"image": name, "blurred": {...}, ...}]}``
        (``per_image`` for whole images only). A row holds ``mse``, ``psnr``, ``ssim`` (means; an unchanged
        image's PSNR is ``inf``), ``shift`` (the mean per channel, in levels of 255) and ``max_abs_shift``.
    """
    from .inference import Deblurrer, deblur_tensor

    def deblurred(x: Tensor, tile_size: int | None) -> Tensor:
        run = model if isinstance(model, Deblurrer) else functools.partial(deblur_tensor, model, device=device,
                                                                           precision=precision)
        return run(x, tile=tile_size)
    acc: dict[str, dict[str, list]] = {}
    per_image: list[dict[str, Any]] = []

    def add(row: str, pred: Tensor, sharp: Tensor) -> dict[str, list]:
        scores = _scores(pred, sharp)
        for k, v in scores.items():
            acc.setdefault(row, {}).setdefault(k, []).extend(v)
        return scores

    def score(b, tile_size):
        rows = {"blurred": add("blurred", b.blur, b.sharp)}
        if model is not None:
            rows["model"] = add("model", deblurred(b.blur, tile_size), b.sharp)
        if baseline and b.kernels is not None:
            rows["richardson_lucy"] = add("richardson_lucy", richardson_lucy(
                b.blur, b.kernels, linear_light=b.linear_light), b.sharp)
        return rows

    n = 0
    if crops:
        for b in source.val_batches(batch_size):
            n += b.blur.shape[0]
            score(b, None)
    else:
        for name, b in source.test_images():
            n += 1
            rows = score(b, tile)
            per_image.append({"image": name, "height": b.sharp.shape[-2], "width": b.sharp.shape[-1],
                              **{row: {k: v[0] for k, v in vals.items()} for row, vals in rows.items()}})
            if progress is not None:
                progress(Progress(n, None))
    rows = {row: _summary(d) for row, d in acc.items()}
    out = {"dataset": source.name, "images": n, "protocol": "crops" if crops else "whole images", "rows": rows}
    if not crops:
        out["per_image"] = per_image
    return out
