"""Blur synthesis: gaussian (with the seed's CIFAR recipe), linear motion, camera shake, video-style
frame averaging, noise and quantisation. Batched, a kernel per sample, deterministic given a generator.

:func:`synth_blur` is the one entry point training and the CLI use.
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
    "BLUR_KINDS", "BlurResult", "synth_blur", "random_kernels", "convolve",
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


def _kind_kernels(batch: int, kind: str, g: torch.Generator | None) -> Tensor:
    if kind == "gaussian":
        return gaussian_kernels(sample_seed_sigmas(batch, g))
    if kind == "motion":
        return random_motion_kernels(batch, g)
    if kind == "shake":
        return shake_kernels(batch, 25, g)
    return pan_kernels(pan_paths(batch, g))


def _one_kind(x: Tensor, kind: str, g: torch.Generator | None) -> tuple[Tensor, Tensor, bool]:
    if kind == "video":
        # sub-frames shifted and averaged, as a camera records them (the kernel is its rasterised path)
        blurred, k = pan_blur(x, g)
        return blurred, k, True
    k = _kind_kernels(x.shape[0], kind, g)
    return convolve(x, k), k, False


def _check_kind(kind: str) -> None:
    kinds = (*BLUR_KINDS, "mix")
    if kind not in kinds:
        raise ValueError(f"unknown blur kind '{kind}'; expected one of {kinds}")


def random_kernels(batch: int, kind: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw the kernels of ``batch`` synthetic blurs of ``kind`` without applying them.

    The training pipeline draws these small kernels on the CPU and convolves the crops wherever they
    live (a GPU): see :mod:`deblur_core.batches`. ``video`` kernels act in linear light.

    Returns:
        ((B, k, k) kernels zero-padded to a common size, (B,) bool: the kernel acts in linear light).
    """
    _check_kind(kind)
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


def synth_blur(x: Tensor, kind: str, generator: torch.Generator | None = None, *, noise_sigma: float = 0.0,
               quantize: bool = False) -> BlurResult:
    """Blur a batch with synthetic blur of ``kind``.

    Args:
        x: (B, C, H, W) sharp images in [0, 1].
        kind: ``gaussian`` (the seed's recipe: sigma from {1, 2, 3}), ``motion`` (linear, 5-21 px),
            ``shake`` (camera-shake trajectories), ``video`` (a camera pan averaged in linear light), or
            ``mix`` (each sample draws one of the four).
        generator: the source of all randomness; the same seed gives the same blur.
        noise_sigma: std of additive gaussian noise after blurring (0 = none).
        quantize: round to 8-bit levels, as a saved frame would be.
    """
    check_image(x)
    _check_kind(kind)
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
            out, k, lin = _one_kind(x[idx], name, generator)
            blurred[idx] = out
            linear[idx] = lin
            for j, n in enumerate(idx.tolist()):
                kernels[n] = k[j]
        k_all = pad_kernels([k for k in kernels if k is not None])
    else:
        blurred, k_all, lin = _one_kind(x, kind, generator)
        linear = torch.full((b,), lin, dtype=torch.bool)
    if noise_sigma > 0:
        blurred = add_gaussian_noise(blurred, noise_sigma, generator)
    if quantize:
        blurred = quantize_8bit(blurred)
    return BlurResult(blurred=blurred.clamp(0, 1), kernels=k_all, linear_light=linear)
