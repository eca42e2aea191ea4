"""Sensor noise and 8-bit quantisation, applied after blur so training inputs look like real frames."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["add_gaussian_noise", "sensor_noise", "quantize_8bit", "jpeg_compress"]


def add_gaussian_noise(x: Tensor, sigma: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add zero-mean gaussian noise of std ``sigma`` (float, or (B,) per image) and clamp to [0, 1]."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1)
    if (sigma < 0).any():
        raise ValueError(f"noise sigma must be >= 0, got {sigma.tolist()}")
    sigma = sigma.expand(x.shape[0]).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + sigma * noise).clamp(0, 1)


def sensor_noise(x: Tensor, read: Tensor, shot: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add a sensor's noise to (B, C, H, W) images and clamp to [0, 1]: read noise of std ``read`` (B,) plus
    shot noise whose variance grows with the signal, ``shot`` (B,) times the value.

    ``generator`` must live on ``x``'s device (noise is drawn where the pixels are).
    """
    read, shot = (t.to(x.device, x.dtype).view(-1, 1, 1, 1) for t in (read, shot))
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * (read**2 + shot * x.clamp(min=0)).sqrt()).clamp(0, 1)


def jpeg_compress(x: Tensor, quality: Tensor | float) -> Tensor:
    """Save each (C, H, W) image of a batch as a JPEG of ``quality`` (B,) or one value (0: leave it, else
    1-100) and read it back, with OpenCV's libjpeg (4:2:0 chroma, as cameras and phones save).

    The codec runs on the CPU; the result returns to ``x``'s device. Values come back on 8-bit levels.
    """
    import cv2
    import numpy as np

    q = torch.as_tensor(quality, dtype=torch.float32).reshape(-1).expand(x.shape[0])
    if ((q < 0) | (q > 100)).any():
        raise ValueError(f"JPEG quality must be in [0, 100] (0: none), got {q.tolist()}")
    out = x.clone()
    for i in torch.nonzero(q > 0).flatten().tolist():
        img = (x[i].detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        if img.shape[-1] == 3:
            img = img[..., ::-1]  # OpenCV stores BGR
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(q[i])])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode image {i} of shape {tuple(x[i].shape)} as JPEG")
        back = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if img.shape[-1] == 3 else cv2.IMREAD_GRAYSCALE)
        back = back.reshape(img.shape)[..., ::-1] if img.shape[-1] == 3 else back.reshape(img.shape)
        out[i] = torch.from_numpy(np.ascontiguousarray(back)).permute(2, 0, 1).to(x.device, x.dtype) / 255
    return out


def quantize_8bit(x: Tensor) -> Tensor:
    """Round to the 256 levels an 8-bit file can hold."""
    return torch.round(x.clamp(0, 1) * 255) / 255
