"""NAFNet written plainly, the yardstick of the benchmarks that time its optimized paths.

``former_forward`` computes each block as separate passes (LayerNorm as mean/var/sqrt, SimpleGate, channel
attention and residual scales each a full tensor), the arithmetic of a straightforward port of NAFNet;
``former_train_forward`` runs each block through its modules one after the other, and the upsampling through
its 1x1 convolution and PixelShuffle. Both run on a ``NAFNet``'s own modules and parameters, so they use the
same weights as the network they are compared with: ``test_inference.py::test_nafnet_former_vs_current``
times the first beside the network's forward (CPU inference), ``test_training_nafnet.py`` the second beside
its training step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from deblur_core.models import pad_to_multiple
from deblur_core.models.nafnet import NAFBlock, NAFNet

__all__ = ["former_forward", "former_train_forward"]


def _layer_norm(norm, x: Tensor) -> Tensor:
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + norm.eps)
    return y * norm.weight[:, None, None] + norm.bias[:, None, None]


def _gate(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


def _block(blk: NAFBlock, x: Tensor) -> Tensor:
    y = _gate(blk.dwconv(blk.conv1(_layer_norm(blk.norm1, x))))
    y = blk.conv2(y * blk.sca(y))
    x = x + blk.beta * y
    y = blk.ffn2(_gate(blk.ffn1(_layer_norm(blk.norm2, x))))
    return x + blk.gamma * y


def _module_block(blk: NAFBlock, x: Tensor) -> Tensor:
    # the block's modules one after the other
    y = blk.gate(blk.dwconv(blk.conv1(blk.norm1(x))))
    y = blk.conv2(y * blk.sca(y))
    x = x + blk.beta * y
    y = blk.ffn2(blk.gate(blk.ffn1(blk.norm2(x))))
    return x + blk.gamma * y


def _unet(model: NAFNet, x: Tensor, block: Callable[[NAFBlock, Tensor], Tensor]) -> Tensor:
    h, w = x.shape[-2:]
    x = pad_to_multiple(x, model.stride)
    y = model.intro(x)
    skips = []
    for enc, down in zip(model.encoders, model.downs):
        for blk in enc:
            y = block(blk, y)
        skips.append(y)
        y = down(y)
    for blk in model.middle:
        y = block(blk, y)
    for up, dec, skip in zip(model.ups, model.decoders, reversed(skips)):
        y = up(y) + skip
        for blk in dec:
            y = block(blk, y)
    return (x + model.ending(y))[..., :h, :w]


def former_forward(model: NAFNet, x: Tensor) -> Tensor:
    """``model``'s forward with each block as separate passes, padding and crop included.

    Shape: (B, C, H, W) -> (B, C, H, W), C = ``model.in_channels``.
    """
    return _unet(model, x, _block)


def former_train_forward(model: NAFNet, x: Tensor) -> Tensor:
    """``model(x)`` with each block through its modules (1x1 convolutions, SimpleGate, channel attention and
    residual scales as separate passes), the upsampling through its 1x1 convolution and PixelShuffle: the
    yardstick of the training step in ``test_training_nafnet.py``."""
    return _unet(model, x, _module_block)
