"""What every deblurring network in the registry shares: input checks, padding, channel adaptation.

Concrete networks implement ``_forward`` on inputs whose height and width are multiples of
``self.stride``; :meth:`DeblurModel.forward` pads any H x W up to that (reflect, as NAFNet does), and crops
the result back, so callers never think about strides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DeblurModel", "pad_to_multiple"]


def pad_to_multiple(x: Tensor, multiple: int, *, zeros: bool = False) -> Tensor:
    """Pad the bottom and right of ``x`` so that H and W are multiples of ``multiple``.

    Reflection avoids a dark border that zero padding would teach the network to "deblur"; for inputs
    smaller than the pad, where reflection is undefined, the edge is replicated instead. ``zeros``: pad with
    zeros, for weights trained elsewhere with that padding (the official NAFNet's).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if zeros:
        return F.pad(x, (0, pw, 0, ph))
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class DeblurModel(nn.Module):
    """Base class: ``forward`` maps a blurred (B, C, H, W) batch in [0, 1] to a sharp one of equal shape.

    ``in_channels`` is what the network was built for (3 for RGB, 1 for grayscale). A 1-channel input to
    an RGB network is replicated to RGB and the result averaged back; a 3-channel input to a grayscale
    network is processed channel by channel. Multi-scale networks (SRN) return a list of outputs, coarse
    to fine, in training mode; everything else returns one tensor.
    """

    stride: int = 1
    # pad inputs to the stride with zeros instead of reflection: set on weights trained that way elsewhere
    pad_zeros: bool = False
    # whether --precision auto may run this network under bf16 autocast on a CPU with AMX; a network with a
    # faster fp32 path of its own there says False
    cpu_autocast: bool = True

    def __init__(self, *, in_channels: int) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.in_channels = in_channels

    def _forward(self, x: Tensor) -> Tensor | list[Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected a (B, C, H, W) tensor, got {shape}")
        if not x.is_floating_point():
            raise TypeError(f"expected a float tensor in [0, 1], got dtype {x.dtype}")
        b, c, h, w = x.shape
        if c != self.in_channels:
            if c == 1 and self.in_channels == 3:
                out = self.forward(x.expand(b, 3, h, w))
                return _map(out, lambda t: t.mean(dim=1, keepdim=True))
            if c == 3 and self.in_channels == 1:
                out = self.forward(x.reshape(b * 3, 1, h, w))
                return _map(out, lambda t: t.reshape(b, 3, *t.shape[-2:]))
            raise ValueError(f"expected 1 or 3 channels, got {c}")
        out = self._forward(pad_to_multiple(x, self.stride, zeros=self.pad_zeros))
        if isinstance(out, list):
            # scale i of n is 2**(n-1-i) times smaller; crop it to the matching share of the input
            n = len(out)
            return [
                o[..., : -(-h // 2 ** (n - 1 - i)), : -(-w // 2 ** (n - 1 - i))] for i, o in enumerate(out)
            ]
        return out[..., :h, :w]


def _map(out, fn):
    return [fn(o) for o in out] if isinstance(out, list) else fn(out)
