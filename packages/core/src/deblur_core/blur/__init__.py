"""Blur synthesis: gaussian (with the seed's CIFAR recipe), linear motion, camera shake, video-style
frame averaging, noise and quantisation. Batched, a kernel per sample, deterministic given a generator.

:func:`synth_blur` is the one entry point training, the CLI and the demo use: with ``strength`` it blurs by a
chosen amount (mild 0 to strong 1) instead of the training recipe's random sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._kernel import check_image, convolve, pad_kernels
from .gaussian import (
    GaussianBlur,
    SeedGaussianBlur,
    gaussian_blur,
    gaussian_kernels,
    opencv_gaussian_ksize,
    sample_seed_sigmas,
    seed_gaussian_blur,
)
from .motion import MotionBlur, motion_blur, motion_kernels, random_motion_kernels
from .noise import GaussianNoise, Quantize8bit, add_gaussian_noise, quantize_8bit
from .shake import ShakeBlur, shake_blur, shake_kernels, shake_trajectories
from .video import PanBlur, average_frames, linear_to_srgb, pan_blur, pan_kernels, pan_paths, srgb_to_linear

__all__ = [
    "BLUR_KINDS", "BlurResult", "check_kind", "synth_blur", "random_kernels", "convolve",
    "GaussianBlur", "SeedGaussianBlur", "gaussian_blur", "gaussian_kernels", "opencv_gaussian_ksize",
    "sample_seed_sigmas", "seed_gaussian_blur",
    "MotionBlur", "motion_blur", "motion_kernels", "random_motion_kernels",
    "ShakeBlur", "shake_blur", "shake_kernels", "shake_trajectories",
    "PanBlur", "average_frames", "linear_to_srgb", "pan_blur", "pan_kernels", "pan_paths", "srgb_to_linear",
    "GaussianNoise", "Quantize8bit", "add_gaussian_noise", "quantize_8bit",
]

BLUR_KINDS = ("gaussian", "motion", "shake", "video")


@dataclass
class BlurResult:
    blurred: Tensor  # (B, C, H, W) in [0, 1]
    kernels: Tensor  # (B, k, k), the true kernel of each sample
    linear_light: Tensor  # (B,) bool: the kernel acts in linear light (video-style blur)


def _kind_kernels(batch: int, kind: str, g: torch.Generator | None, strength: float | None = None) -> Tensor:
    # strength None: the training recipe's sizes, drawn from g; else sizes set by strength, directions from g
    if kind == "gaussian":
        sigma = sample_seed_sigmas(batch, g) if strength is None else torch.full((batch,), 0.5 + 3.5 * strength)
        return gaussian_kernels(sigma)
    if kind == "motion":
        if strength is None:
            return random_motion_kernels(batch, g)
        return motion_kernels(torch.full((batch,), 3.0 + 28.0 * strength), 180.0 * torch.rand(batch, generator=g))
    if kind == "shake":
        if strength is None:
            return shake_kernels(batch, 25, g)
        # the path reaches 90-100% of the kernel's radius, so the size strength sets is the blur's size
        return shake_kernels(batch, 2 * round(3 + 17 * strength) + 1, g, extent=(0.9, 1.0))
    return pan_kernels(pan_paths(batch, g))


def _one_kind(x: Tensor, kind: str, g: torch.Generator | None,
              strength: float | None = None) -> tuple[Tensor, Tensor, bool]:
    if kind == "video":
        # sub-frames shifted and averaged, as a camera records them (the kernel is its rasterised path)
        max_shift = 15.0 if strength is None else 3.0 + 28.0 * strength
        blurred, k = pan_blur(x, g, max_shift=max_shift)
        return blurred, k, True
    k = _kind_kernels(x.shape[0], kind, g, strength)
    return convolve(x, k), k, False


def check_kind(kind: str, *, mix: bool = True) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`BLUR_KINDS` or (when ``mix``) ``"mix"``."""
    kinds = (*BLUR_KINDS, "mix") if mix else BLUR_KINDS
    if kind not in kinds:
        raise ValueError(f"unknown blur kind '{kind}'; expected one of {kinds}")




def random_kernels(batch: int, kind: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw the kernels of ``batch`` synthetic blurs of ``kind`` without applying them.

    The training pipeline draws these small kernels on the CPU and convolves the crops wherever they
    live (a GPU): see :mod:`deblur_core.batches`. ``video`` kernels act in linear light.

    Returns:
        ((B, k, k) kernels zero-padded to a common size, (B,) bool: the kernel acts in linear light).
    """
    check_kind(kind)
    if kind != "mix":
        return _kind_kernels(batch, kind, generator), torch.full((batch,), kind == "video")
    choice = torch.randint(0, len(BLUR_KINDS), (batch,), generator=generator)
    kernels: list[Tensor | None] = [None] * batch
    for i, name in enumerate(BLUR_KINDS):
        idx = (choice == i).nonzero().flatten().tolist()
        if idx:
            for n, k in zip(idx, _kind_kernels(len(idx), name, generator)):
                kernels[n] = k
    return pad_kernels([k for k in kernels if k is not None]), choice == BLUR_KINDS.index("video")


def synth_blur(x: Tensor, kind: str, generator: torch.Generator | None = None, *, strength: float | None = None,
               noise_sigma: float = 0.0, quantize: bool = False) -> BlurResult:
    """Blur a batch with synthetic blur of ``kind``.

    Args:
        x: (B, C, H, W) sharp images in [0, 1].
        kind: ``gaussian`` (the seed's recipe: sigma from {1, 2, 3}), ``motion`` (linear, 5-21 px),
            ``shake`` (camera-shake trajectories), ``video`` (a camera pan averaged in linear light), or
            ``mix`` (each sample draws one of the four).
        generator: the source of all randomness; the same seed gives the same blur.
        strength: None for the sizes above; a value in [0, 1] sets the size instead, mild to strong:
            gaussian sigma 0.5 to 4 px, motion 3 to 31 px long, shake within a 7 to 41 px kernel, a video
            pan of up to 3 to 31 px (directions and paths still come from ``generator``).
        noise_sigma: std of additive gaussian noise after blurring (0 = none).
        quantize: round to 8-bit levels, as a saved frame would be.
    """
    check_image(x)
    check_kind(kind)
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    b = x.shape[0]
    if kind == "mix":
        choice = torch.randint(0, len(BLUR_KINDS), (b,), generator=generator)
        blurred = torch.empty_like(x)
        kernels: list[Tensor | None] = [None] * b
        linear = torch.zeros(b, dtype=torch.bool)
        for i, name in enumerate(BLUR_KINDS):
            idx = (choice == i).nonzero().flatten()
            if idx.numel() == 0:
                continue
            out, k, lin = _one_kind(x[idx], name, generator, strength)
            blurred[idx] = out
            linear[idx] = lin
            for j, n in enumerate(idx.tolist()):
                kernels[n] = k[j]
        k_all = pad_kernels([k for k in kernels if k is not None])
    else:
        blurred, k_all, lin = _one_kind(x, kind, generator, strength)
        linear = torch.full((b,), lin, dtype=torch.bool)
    if noise_sigma > 0:
        blurred = add_gaussian_noise(blurred, noise_sigma, generator)
    if quantize:
        blurred = quantize_8bit(blurred)
    return BlurResult(blurred=blurred.clamp(0, 1), kernels=k_all, linear_light=linear)
