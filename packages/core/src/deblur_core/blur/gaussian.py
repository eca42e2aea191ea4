"""Gaussian blur (defocus), and the original project's CIFAR-10 recipe: sigma 1, 2 or 3 px with OpenCV's
kernel size, the ``gaussian`` kind."""

from __future__ import annotations

import torch
from torch import Tensor

from ._kernel import check_image
from .render import BlurDraw, render_blur

__all__ = [
    "opencv_gaussian_ksize",
    "gaussian_kernels",
    "gaussian_blur",
    "CIFAR_SIGMAS",
    "draw_cifar_sigmas",
]

CIFAR_SIGMAS = (1.0, 2.0, 3.0)  # the original project's CIFAR-10 recipe: each image draws one, uniformly


def opencv_gaussian_ksize(sigma: float) -> int:
    """The kernel size OpenCV's ``GaussianBlur(ksize=(0, 0))`` picks for 8-bit images.

    OpenCV: ``cvRound(sigma * 3 * 2 + 1) | 1`` (3 sigma each side for CV_8U). Sigma 1, 2, 3 give 7, 13, 19.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return int(round(sigma * 3 * 2 + 1)) | 1


def gaussian_kernels(sigma: Tensor, ksize: int | None = None) -> Tensor:
    """Normalised isotropic gaussian kernels, one per sigma.

    Args:
        sigma: (B,) standard deviations in pixels, positive.
        ksize: common odd kernel size; default OpenCV's choice for the largest sigma.

    Returns:
        (B, k, k) kernels summing to 1 (a smaller sigma's kernel is simply narrower inside the same size).
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
    if (sigma <= 0).any():
        raise ValueError(f"sigma must be positive, got {sigma.tolist()}")
    k = ksize or opencv_gaussian_ksize(float(sigma.max()))
    r = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    g = g / g.sum(dim=1, keepdim=True)
    return g[:, :, None] * g[:, None, :]


def gaussian_blur(x: Tensor, sigma: float | Tensor) -> Tensor:
    """Blur each image with its own gaussian, reflected at the borders.

    Args:
        x: (B, C, H, W) in [0, 1].
        sigma: a float for all images or a (B,) tensor, one per image.

    Example:
        >>> gaussian_blur(torch.ones(2, 3, 16, 16), torch.tensor([1.0, 3.0])).shape
        torch.Size([2, 3, 16, 16])
    """
    check_image(x)
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0])
    return render_blur(x, BlurDraw(gaussian_kernels(sigma), torch.zeros(x.shape[0], dtype=torch.bool)))


def draw_cifar_sigmas(batch: int, generator: torch.Generator | None = None) -> Tensor:
    """(B,) sigmas of the original project's CIFAR-10 recipe: 1, 2 or 3 px, drawn uniformly for each image."""
    idx = torch.randint(0, len(CIFAR_SIGMAS), (batch,), generator=generator)
    return torch.tensor(CIFAR_SIGMAS)[idx]
