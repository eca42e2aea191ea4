"""NAFNet's training forward as it was before it ran on the (B, H*W, C) view (``38d51d9``), the yardstick of
issue #23's training step: each block through its modules (1x1 convolutions, SimpleGate, channel attention,
residual scales as separate passes), the upsampling through its 1x1 convolution and PixelShuffle, on a
current ``NAFNet``'s own modules and parameters. ``test_training_nafnet.py`` times it beside today's.
"""

from __future__ import annotations

from torch import Tensor

from deblur_core.models import pad_to_multiple
from deblur_core.models.nafnet import NAFBlock, NAFNet

__all__ = ["former_train_forward"]


def _block(block: NAFBlock, x: Tensor) -> Tensor:
    y = block.gate(block.dwconv(block.conv1(block.norm1(x))))
    y = block.conv2(y * block.sca(y))
    x = x + block.beta * y
    y = block.ffn2(block.gate(block.ffn1(block.norm2(x))))
    return x + block.gamma * y


def former_train_forward(model: NAFNet, x: Tensor) -> Tensor:
    """``model(x)`` (B, 3, H, W) as training computed it before, autograd on."""
    h, w = x.shape[-2:]
    x = pad_to_multiple(x, model.stride)
    y = model.intro(x)
    skips = []
    for enc, down in zip(model.encoders, model.downs):
        for blk in enc:
            y = _block(blk, y)
        skips.append(y)
        y = down(y)
    for blk in model.middle:
        y = _block(blk, y)
    for up, dec, skip in zip(model.ups, model.decoders, reversed(skips)):
        y = up(y) + skip
        for blk in dec:
            y = _block(blk, y)
    return (x + model.ending(y))[..., :h, :w]
