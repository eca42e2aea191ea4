"""Blur synthesis: the kinds of :mod:`.recipe` (the original project's gaussian recipe, straight motion, camera
shake, camera pans recorded as video sub-frames, long curved motion, non-uniform (layered) motion, light blur
and none, and the mixes of them), drawn by :func:`draw_blur` and rendered by :func:`render_blur`; sensor
noise, JPEG and 8-bit quantisation. Batched, a kernel per sample, deterministic given a generator.

:func:`synth_blur` is the one entry point evaluation, ``deblur-cli blur`` and the demo use (training draws
ahead with :func:`draw_blur` and renders on its device): with ``strength`` it blurs by a chosen amount (mild 0
to strong 1) instead of the recipe's random sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._kernel import check_image, pad_kernels
from .gaussian import CIFAR_SIGMAS, draw_cifar_sigmas, gaussian_blur, gaussian_kernels, opencv_gaussian_ksize
from .layered import mask_params, soft_masks
from .motion import motion_kernels, random_motion_kernels
from .noise import add_gaussian_noise, jpeg_compress, quantize_8bit, sensor_noise
from .pan import pan_paths
from .paths import curved_paths, path_kernels
from .recipe import (BROAD_PARTS, EXTENTS, KINDS, LONG_KERNEL, MIX_KINDS, MIXES, REALISTIC_SHARES, SHARP_KINDS,
                     check_kind, draw_blur, kernel_size, with_sharp_samples)
from .render import BlurDraw, clip_highlights, render_blur, valid_convolve
from .shake import shake_kernels, shake_trajectories
from .srgb import average_frames, linear_to_srgb, srgb_to_linear

__all__ = [
    "BLUR_KINDS", "BROAD_PARTS", "EXTENTS", "KINDS", "MIXES", "MIX_KINDS", "SHARP_KINDS", "REALISTIC_SHARES", "LONG_KERNEL",
    "BlurResult", "BlurDraw", "check_kind", "synth_blur", "draw_blur", "render_blur", "kernel_size",
    "valid_convolve", "with_sharp_samples", "clip_highlights", "pad_kernels",
    "curved_paths", "path_kernels", "mask_params", "soft_masks", "pan_paths",
    "gaussian_blur", "gaussian_kernels", "opencv_gaussian_ksize", "CIFAR_SIGMAS", "draw_cifar_sigmas",
    "motion_kernels", "random_motion_kernels", "shake_kernels", "shake_trajectories",
    "average_frames", "linear_to_srgb", "srgb_to_linear",
    "add_gaussian_noise", "sensor_noise", "quantize_8bit", "jpeg_compress",
]

BLUR_KINDS = KINDS  # one kind per image; MIXES draw a kind per sample


@dataclass
class BlurResult:
    blurred: Tensor  # (B, C, H, W) in [0, 1]
    kernels: Tensor | None  # (B, k, k), the true kernel of each sample; None where no single kernel exists
    linear_light: Tensor  # (B,) bool: the kernel acts in linear light, as a sensor adds up light


def synth_blur(x: Tensor, kind: str, generator: torch.Generator | None = None, *, strength: float | None = None,
               noise_sigma: float = 0.0, quantize: bool = False, jpeg_quality: int = 0) -> BlurResult:
    """Blur a batch with synthetic blur of ``kind``, reflected at the image borders.

    Args:
        x: (B, C, H, W) sharp images in [0, 1].
        kind: ``gaussian`` (the original project's CIFAR-10 recipe: sigma from {1, 2, 3}), ``motion`` (a
            straight streak of 5-21 px), ``shake`` (camera-shake trajectories within a 25 px kernel), ``video``
            (a camera pan of up to 15 px, 15 sub-frames averaged in linear light), ``long`` (pans and motion
            of 25-40 px with speed changes and curvature, continuous or 7-15 sub-frames, in linear light or
            sRGB), ``nonuniform`` (a soft-edged foreground moving 8-40 px over a background moving 1-20 px),
            or a mix where each sample draws a kind: ``mix`` (the first four, a quarter each) or
            ``realistic`` (recipes of its own: defocus, curved motion and sub-frame pans of 3-40 px, wide
            shake, non-uniform; see :mod:`deblur_core.blur.recipe`); or what a deblurrer must leave alone:
            ``light`` (a defocus of sigma 0.3-0.8 px or a straight 1-2 px streak, half each) or ``none`` (the
            image itself, no kernel).
        generator: the source of all randomness; the same seed gives the same blur.
        strength: None for the sizes above; a value in [0, 1] sets the size instead, mild to strong (see
            :func:`draw_blur`; directions and paths still come from ``generator``).
        noise_sigma: std of additive gaussian noise after blurring (0 = none).
        quantize: round to 8-bit levels, as a saved frame would be.
        jpeg_quality: save as a JPEG of this quality and read it back (0 = none; implies 8 bits).

    Example:
        >>> r = synth_blur(torch.rand(2, 3, 32, 32), "mix", torch.Generator().manual_seed(0))
        >>> r.blurred.shape, r.kernels.shape[0], r.linear_light.dtype
        (torch.Size([2, 3, 32, 32]), 2, torch.bool)
    """
    check_image(x)
    check_kind(kind)
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    draw = draw_blur(x.shape[0], kind, generator, strength=strength)
    blurred = render_blur(x, draw)
    # none has no kernel to hand a non-blind baseline: its input is the sharp image itself
    kernels = draw.kernels if draw.uniform and kind != "none" else None
    if noise_sigma > 0:
        blurred = add_gaussian_noise(blurred, noise_sigma, generator)
    if quantize:
        blurred = quantize_8bit(blurred)
    if jpeg_quality:
        blurred = jpeg_compress(blurred, jpeg_quality)
    return BlurResult(blurred=blurred.clamp(0, 1), kernels=kernels, linear_light=draw.linear_light)
