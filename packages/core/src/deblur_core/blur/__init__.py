"""Blur synthesis: gaussian (with the seed's CIFAR recipe), linear motion, camera shake, video-style
frame averaging, long curved motion and pans, non-uniform (layered) motion, sensor noise, JPEG and 8-bit
quantisation. Batched, a kernel per sample, deterministic given a generator.

:func:`synth_blur` is the one entry point training, the CLI and the demo use: with ``strength`` it blurs by a
chosen amount (mild 0 to strong 1) instead of the training recipe's random sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._kernel import check_image, convolve, pad_kernels
from ._mix import in_sample_order, per_kind
from .gaussian import (
    gaussian_blur,
    gaussian_kernels,
    opencv_gaussian_ksize,
    sample_seed_sigmas,
    seed_gaussian_blur,
)
from .layered import mask_params, soft_masks
from .motion import motion_blur, motion_kernels, random_motion_kernels
from .paths import curved_paths, path_kernels
from .noise import add_gaussian_noise, jpeg_compress, quantize_8bit, sensor_noise
from .recipe import (EXTENTS, KINDS, LONG_KERNEL, MIXES, REALISTIC_SHARES, SEED_KINDS, SHARP_KINDS, BlurDraw, check_kind,
                     clip_highlights, draw_blur, kernel_size, random_kernels, render_blur, seed_kind_kernels,
                     valid_convolve, with_sharp_samples)
from .shake import shake_blur, shake_kernels, shake_trajectories
from .video import average_frames, linear_to_srgb, pan_blur, pan_kernels, pan_paths, srgb_to_linear

__all__ = [
    "BLUR_KINDS", "EXTENTS", "KINDS", "MIXES", "SEED_KINDS", "SHARP_KINDS", "REALISTIC_SHARES", "LONG_KERNEL",
    "BlurResult", "BlurDraw", "check_kind", "synth_blur", "draw_blur", "render_blur", "kernel_size", "random_kernels",
    "valid_convolve", "with_sharp_samples", "clip_highlights",
    "convolve", "curved_paths", "path_kernels", "mask_params", "soft_masks",
    "gaussian_blur", "gaussian_kernels", "opencv_gaussian_ksize",
    "sample_seed_sigmas", "seed_gaussian_blur",
    "motion_blur", "motion_kernels", "random_motion_kernels",
    "shake_blur", "shake_kernels", "shake_trajectories",
    "average_frames", "linear_to_srgb", "pan_blur", "pan_kernels", "pan_paths", "srgb_to_linear",
    "add_gaussian_noise", "sensor_noise", "quantize_8bit", "jpeg_compress",
]

BLUR_KINDS = KINDS  # one kind per image; MIXES draw a kind per sample


@dataclass
class BlurResult:
    blurred: Tensor  # (B, C, H, W) in [0, 1]
    kernels: Tensor | None  # (B, k, k), the true kernel of each sample; None where no single kernel exists
    linear_light: Tensor  # (B,) bool: the kernel acts in linear light (video-style blur)


def _one_kind(x: Tensor, kind: str, g: torch.Generator | None,
              strength: float | None = None) -> tuple[Tensor, Tensor, bool]:
    # the seed kinds, as the shipped weights' figures were measured on them
    if kind == "video":
        # sub-frames shifted and averaged, as a camera records them (the kernel is its rasterised path)
        max_shift = 15.0 if strength is None else 3.0 + 28.0 * strength
        blurred, k = pan_blur(x, g, max_shift=max_shift)
        return blurred, k, True
    k = seed_kind_kernels(x.shape[0], kind, g, strength)
    return convolve(x, k), k, False


def _seed_mix(x: Tensor, g: torch.Generator | None, strength: float | None) -> tuple[Tensor, Tensor, Tensor]:
    choice = torch.randint(0, len(SEED_KINDS), (x.shape[0],), generator=g)
    groups = per_kind(choice, SEED_KINDS, lambda name, idx: _one_kind(x[idx], name, g, strength))
    blurred = in_sample_order([(idx, out) for idx, (out, _, _) in groups])
    kernels = in_sample_order([(idx, k) for idx, (_, k, _) in groups], pad_kernels)
    return blurred, kernels, choice == SEED_KINDS.index("video")  # video is the one kind in linear light


def synth_blur(x: Tensor, kind: str, generator: torch.Generator | None = None, *, strength: float | None = None,
               noise_sigma: float = 0.0, quantize: bool = False, jpeg_quality: int = 0) -> BlurResult:
    """Blur a batch with synthetic blur of ``kind``.

    Args:
        x: (B, C, H, W) sharp images in [0, 1].
        kind: ``gaussian`` (the seed's recipe: sigma from {1, 2, 3}), ``motion`` (linear, 5-21 px),
            ``shake`` (camera-shake trajectories within a 25 px kernel), ``video`` (a camera pan of up to
            15 px, 15 sub-frames averaged in linear light), ``long`` (pans and motion of 25-40 px with speed
            changes and curvature, continuous or 7-15 sub-frames, in linear light or sRGB),
            ``nonuniform`` (a soft-edged foreground moving 8-40 px over a background moving 1-20 px), or a
            mix where each sample draws a kind: ``mix`` (the first four) or ``realistic`` (see
            :mod:`deblur_core.blur.recipe`); or what a deblurrer must leave alone: ``light`` (a defocus of
            sigma 0.3-0.8 px or a straight 1-2 px streak, half each) or ``none`` (the image itself, no kernel).
        generator: the source of all randomness; the same seed gives the same blur.
        strength: None for the sizes above; a value in [0, 1] sets the size instead, mild to strong:
            gaussian sigma 0.5 to 4 px, motion 3 to 31 px long, shake within a 7 to 41 px kernel, a video
            pan of up to 3 to 31 px, long 25 to 40 px, a non-uniform foreground 8 to 40 px, light sigma 0.3
            to 0.8 or 1 to 2 px (directions and paths still come from ``generator``).
        noise_sigma: std of additive gaussian noise after blurring (0 = none).
        quantize: round to 8-bit levels, as a saved frame would be.
        jpeg_quality: save as a JPEG of this quality and read it back (0 = none; implies 8 bits).
    """
    check_image(x)
    check_kind(kind)
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    b = x.shape[0]
    if kind == "none":  # the input itself: no kernel, so no non-blind baseline either
        blurred, linear, k_all = x.clone(), torch.zeros(b, dtype=torch.bool), None
    elif kind == "mix":
        blurred, k_all, linear = _seed_mix(x, generator, strength)
    elif kind in SEED_KINDS:
        blurred, k_all, lin = _one_kind(x, kind, generator, strength)
        linear = torch.full((b,), lin, dtype=torch.bool)
    else:
        draw = draw_blur(b, kind, generator, strength=strength)
        blurred, linear = render_blur(x, draw), draw.linear
        k_all = draw.kernels if draw.uniform else None
    if noise_sigma > 0:
        blurred = add_gaussian_noise(blurred, noise_sigma, generator)
    if quantize:
        blurred = quantize_8bit(blurred)
    if jpeg_quality:
        blurred = jpeg_compress(blurred, jpeg_quality)
    return BlurResult(blurred=blurred.clamp(0, 1), kernels=k_all, linear_light=linear)
