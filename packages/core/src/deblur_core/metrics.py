"""Per-image quality metrics: MSE, PSNR and SSIM against a reference, and the no-reference blur effect.

Every function returns one value per image, shape (B,). This differs on purpose from
``kornia.metrics.psnr``, which returns a single PSNR computed from the MSE of the whole batch: the mean of
per-image PSNRs is what deblurring papers report, and it does not depend on how images are batched.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["mse", "psnr", "ssim", "level_shift", "blur_effect", "BLUR_EFFECT_CROP"]

# blur_effect scores the central crop of a frame, not the whole frame: on a 1280x720 frame scikit-image's
# blur_effect took 60-70 ms on one core, twice a frame (before and after), as much as a 720p PNG encode and
# more than a GPU takes to deblur the frame; the central 512x512 took 15-16 ms. A crop, not a downscale: the
# measure is of blur at the pixel scale, and downscaling sharpens (a photo at 1280x720 read 0.60, at
# 640x360 0.50).
BLUR_EFFECT_CROP = 512
_LUMA = (0.2125, 0.7154, 0.0721)  # scikit-image's rgb2gray weights, which its blur_effect applies to RGB


def _as_batch(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Check that x and y are equal-shaped (B, C, H, W) or (C, H, W) tensors; return them as (B, C, H, W)."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"expected two tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim == 3:
        return x.unsqueeze(0), y.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) or (C, H, W) tensors, got shape {tuple(x.shape)}")
    return x, y


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each image pair.

    Args:
        x: images, float.
        y: reference images, same shape as ``x``.

    Returns:
        (B,) tensor, one MSE per image.

    Shape:
        x, y: (B, C, H, W) or (C, H, W) (treated as B = 1).

    Example:
        >>> mse(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5))
        tensor([0.2500, 0.2500])
    """
    x, y = _as_batch(x, y)
    return (x - y).square().flatten(1).mean(dim=1)


def psnr(x: Tensor, y: Tensor, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB of each image pair, from each image's own MSE.

    ``10 * log10(max_val**2 / mse)``; identical images have MSE 0 and give ``inf`` (left as is, so a
    mean over a batch that contains one is ``inf`` too: exclude or clip those if that matters).

    Args:
        x: images in [0, max_val]; y: reference images, both shaped as for :func:`mse`.
        max_val: the largest possible pixel value (1.0 for the [0, 1] tensors of this project).

    Returns:
        (B,) tensor, one PSNR per image.

    Example:
        >>> psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
        tensor([20.])
    """
    return 10.0 * torch.log10(max_val**2 / mse(x, y))


def level_shift(x: Tensor, y: Tensor, levels: float = 255.0) -> Tensor:
    """Mean signed difference ``x - y`` of each image pair per channel, in ``levels`` (255: 8-bit levels).

    PSNR and SSIM hide the direction of an error; this says whether an output came out darker (negative) or
    brighter (positive) than its reference, channel by channel.

    Returns:
        (B, C) tensor.

    Example:
        >>> level_shift(torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), 0.52))
        tensor([[-5.1000, -5.1000, -5.1000]])
    """
    x, y = _as_batch(x, y)
    return (x.float() - y.float()).mean(dim=(2, 3)) * levels


def ssim(x: Tensor, y: Tensor, window_size: int = 11, max_val: float = 1.0) -> Tensor:
    """Structural similarity of each image pair (Wang et al. 2004), averaged over channels and pixels.

    A Gaussian window (sigma 1.5, fixed by kornia) over the valid region only (no border padding), as
    in the reference implementation; this matches ``skimage.metrics.structural_similarity(
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=max_val)``. Colour images
    get the mean of the per-channel SSIMs.

    Args:
        x: images in [0, max_val].
        y: reference images, same shape as ``x``.
        window_size: side of the Gaussian window, odd; H and W must be at least this large.
        max_val: the dynamic range of the pixel values.

    Returns:
        (B,) tensor, one SSIM per image, 1 for identical images.

    Shape:
        x, y: (B, C, H, W) or (C, H, W) (treated as B = 1).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.])
    """
    import kornia  # here, not above: batch runs (blur_effect) do not need kornia installed

    x, y = _as_batch(x, y)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images must be at least {window_size}x{window_size} for SSIM, got {tuple(x.shape)}")
    return kornia.metrics.ssim(x, y, window_size, max_val=max_val, padding="valid").mean(dim=(1, 2, 3))


def blur_effect(x: Tensor, crop: int = BLUR_EFFECT_CROP) -> Tensor:
    """No-reference blur of each image: scikit-image's ``blur_effect`` (Crete et al. 2007, re-blurring with
    an 11-pixel box filter), from 0 (sharp) to 1 (blurry), on the luma of the central ``crop`` x ``crop``
    pixels (the whole image where smaller; see :data:`BLUR_EFFECT_CROP`).

    It needs no sharp twin, so it scores real footage; compare it between versions of one image (before and
    after deblurring), not across scenes: flat content reads as blurry.

    Args:
        x: images in [0, 1], 1 (gray) or 3 (RGB) channels.
        crop: side of the central square that is scored.

    Returns:
        (B,) float64 tensor, one value per image; NaN for images under 4 pixels high or wide (too small to
        tell).

    Shape:
        x: (B, C, H, W) or (C, H, W) (treated as B = 1).

    Example:
        >>> x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> bool(blur_effect(x) < blur_effect(torch.nn.functional.avg_pool2d(x, 5, 1, 2)))
        True
    """
    from skimage.measure import blur_effect as _blur_effect

    x, _ = _as_batch(x, x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    h, w = x.shape[-2:]
    if min(h, w) < 4:  # the measure's border and gradients leave nothing to sum
        return torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    x = x[..., top : top + crop, left : left + crop].detach().to("cpu", torch.float64)
    luma = x[:, 0] if x.shape[1] == 1 else torch.einsum("bchw,c->bhw", x, x.new_tensor(_LUMA))
    return torch.tensor([_blur_effect(np.ascontiguousarray(y.numpy())) for y in luma], dtype=torch.float64)
