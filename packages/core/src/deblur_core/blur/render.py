"""Rendering a drawn blur: the one way every kind of :mod:`.recipe` reaches the pixels.

A :class:`BlurDraw` holds everything random about a batch's blur: a kernel per sample, whether it acts in
linear light (as a sensor adds up light) or on the sRGB values, and, for non-uniform blur, a moving
foreground's kernel and shape. :func:`render_blur` applies it wherever the pixels live (the training device),
either to crops that carry ``K - 1`` pixels of real context (training: no border handling reaches the
output) or to whole images reflected at their borders (evaluation, ``deblur-cli blur``, the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._kernel import check_image
from .layered import soft_masks
from .srgb import linear_to_srgb, srgb_to_linear

__all__ = ["BlurDraw", "render_blur", "valid_convolve", "clip_highlights"]

DIRECT_MAX = 25  # kernels up to this size convolve directly; larger ones through the FFT (exact, far cheaper)


@dataclass
class BlurDraw:
    """Everything random about the blur of a batch: small CPU tensors."""

    kernels: Tensor  # (B, K, K): the kernel of the whole image, or of its background where it has a foreground
    linear_light: Tensor  # (B,) bool: averaged in linear light (as a sensor integrates) rather than on sRGB values
    fg_kernels: Tensor | None = None  # (B, K, K): the moving foreground's kernel
    masks: Tensor | None = None  # (B, MASK_PARAMS): the foreground's shape (see layered.soft_masks)
    layered: Tensor | None = None  # (B,) bool: the samples that have a moving foreground

    @property
    def uniform(self) -> bool:
        """Whether one kernel per image describes the whole blur (a non-blind baseline can use it)."""
        return self.layered is None or not bool(self.layered.any())


def valid_convolve(x: Tensor, kernels: Tensor) -> Tensor:
    """True convolution of each image of (B, C, H, W) with its own (B, K, K) kernel, valid part only:
    (B, C, H - K + 1, W - K + 1). Large kernels go through the FFT, whose circular wrap-around never
    reaches the valid part."""
    b, c, h, w = x.shape
    k = kernels.to(device=x.device, dtype=torch.float32)
    size = k.shape[-1]
    if size <= DIRECT_MAX:
        # true convolution = correlation with the flipped kernel; one group per (sample, channel)
        weight = k.flip(-1, -2).repeat_interleave(c, dim=0)[:, None].to(x.dtype)
        return F.conv2d(x.reshape(1, b * c, h, w), weight, groups=b * c).view(b, c, h - size + 1, w - size + 1)
    spectrum = torch.fft.rfft2(x.float(), s=(h, w)) * torch.fft.rfft2(k, s=(h, w))[:, None]
    return torch.fft.irfft2(spectrum, s=(h, w))[..., size - 1 :, size - 1 :].to(x.dtype)


def _boost(light: Tensor, gain: Tensor) -> Tensor:
    """Linear-light values above 0.9 grown up to ``1 + gain`` (B,) times: highlights brighter than white."""
    return light * (1 + gain.view(-1, 1, 1, 1) * ((light - 0.9).clamp(min=0) / 0.1))


def clip_highlights(x: Tensor, gain: Tensor) -> Tensor:
    """The sharp frame of the scene :func:`render_blur` saturates with ``gain`` (B,): its highlights boosted in
    linear light and clipped at white, as the sensor records them unblurred. The training target of a saturated
    sample, so that input and target hold the same light and only the blur tells them apart."""
    saturated = (gain > 0).to(x.device).view(-1, 1, 1, 1)
    clipped = linear_to_srgb(_boost(srgb_to_linear(x), gain.to(x.device)).clamp(0, 1))
    return torch.where(saturated, clipped, x)


def render_blur(x: Tensor, draw: BlurDraw, *, context: bool = False, gain: Tensor | None = None) -> Tensor:
    """Blur sharp images (B, C, H, W) in [0, 1] as ``draw`` says.

    Args:
        context: True when ``x`` carries ``K - 1`` pixels of real context around the output (training
            crops): the output is ``K - 1`` pixels smaller and no border handling reaches it. False: the image
            is reflected at its borders and keeps its size.
        gain: (B,) highlight boost (0 = none): values above 0.9 grow up to ``1 + gain`` times before the
            blur, in linear light, and clip at white after it, as a sensor clips light streaks.

    Returns:
        (B, C, H', W') in [0, 1], before any noise or quantisation.

    Example:
        >>> k = torch.zeros(2, 3, 3); k[:, 1] = 1 / 3  # a 3 px horizontal streak
        >>> render_blur(torch.rand(2, 3, 8, 8), BlurDraw(k, torch.tensor([False, True]))).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x)
    dev = x.device
    linear_light = draw.linear_light.to(dev)
    if gain is not None:
        gain = gain.to(dev)
        linear_light = linear_light | (gain > 0)
    light = torch.where(linear_light.view(-1, 1, 1, 1), srgb_to_linear(x), x)
    if gain is not None:
        light = _boost(light, gain)
    r = draw.kernels.shape[-1] // 2  # the kernel's reach: the border a reflected render adds, a mask's margin
    padded = light
    if not context:
        small = min(light.shape[-2:]) <= r
        padded = F.pad(light, (r, r, r, r), mode="replicate" if small else "reflect")
    out = valid_convolve(padded, draw.kernels)
    if not draw.uniform:
        idx = draw.layered.nonzero().flatten().to(dev)
        # the mask's shape is placed within the output's frame, whatever context comes with it
        m = soft_masks(draw.masks[draw.layered], out.shape[-2], out.shape[-1], margin=r, device=dev,
                       dtype=light.dtype)
        c = x.shape[1]
        moved = valid_convolve(torch.cat([padded[idx] * m, m], dim=1), draw.fg_kernels[draw.layered])
        out[idx] = moved[:, :c] + (1 - moved[:, c:]) * out[idx]
    out = out.clamp(0, 1)
    return torch.where(linear_light.view(-1, 1, 1, 1), linear_to_srgb(out), out)
