"""Training losses: pixel losses by name (:data:`LOSSES`), an L1 loss on the 2-D FFT, and their sum over a
multi-scale network's outputs (:func:`multiscale_loss`, what :func:`deblur_core.train.train` minimises).

Every loss takes (B, C, H, W) outputs and targets in [0, 1] and returns a scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "charbonnier", "fft_l1", "multiscale_loss"]


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of ``sqrt((x - y)^2 + eps^2)``: L1 that stays smooth at zero."""
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "charbonnier": charbonnier}  # TrainConfig.loss names one


def fft_l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference of the 2-D real FFTs (real and imaginary parts), in fp32."""
    fx, fy = torch.fft.rfft2(x.float()), torch.fft.rfft2(y.float())
    return (torch.view_as_real(fx) - torch.view_as_real(fy)).abs().mean()


def multiscale_loss(outputs: Tensor | list[Tensor], sharp: Tensor, loss: str = "mse", fft: float = 0.0) -> Tensor:
    """Sum over scales of the loss between each output and the sharp image resized to its size (SRN);
    a single output is compared with the sharp image directly. ``fft`` > 0 adds that weight times
    :func:`fft_l1` at every scale (MIMO-UNet's frequency loss)."""
    fn = LOSSES[loss]
    outs = outputs if isinstance(outputs, list) else [outputs]
    total = sharp.new_zeros((), dtype=torch.float32)
    for o in outs:
        o = o.float()
        target = sharp
        if o.shape[-2:] != sharp.shape[-2:]:
            target = F.interpolate(sharp, size=o.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        total = total + fn(o, target)
        if fft > 0:
            total = total + fft * fft_l1(o, target)
    return total
