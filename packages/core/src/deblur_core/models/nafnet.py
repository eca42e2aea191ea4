"""NAFNet: the nonlinear-activation-free baseline of Chen et al. (ECCV 2022).

Beyond the original project: the modern efficient reference. Each block is LayerNorm -> 1x1 -> depthwise 3x3
-> SimpleGate -> simplified channel attention -> 1x1, then LayerNorm -> 1x1 -> SimpleGate -> 1x1, both
with learnable residual scales that start at zero (so every block starts as the identity). A UNet of
such blocks with a global residual.

Inference on a CPU (no autograd, no autocast, no compiler tracing) runs each block through the kernels of
:mod:`.nafnet_cpu_inference`, with the same weights and the same result to float rounding, in place and in
strips of rows: the network does little arithmetic per byte of activations, so on a CPU its time goes to
memory traffic.

The channel attention pools over the whole frame (or tile), which on frames much larger than the training
crops is not what training showed it. TLC, the test-time local converter of Chu et al. ("Improving Image
Restoration by Revisiting Global Information Aggregation", ECCV 2022), pools over a window of 1.5 training
crops around each pixel instead (:meth:`NAFNet.set_tlc`, :func:`use_tlc`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import zero_init
from .nafnet_cpu_inference import (block_inference_, conv_matrix, eager_cpu_inference, local_attention,
                                   local_window, scratch_numel)
from .registry import register_model

__all__ = ["NAFNet", "NAFBlock", "LayerNorm2d", "SimpleGate", "TLC_TRAIN_PATCH", "nafnet", "use_tlc"]

TLC_TRAIN_PATCH = 256  # the training crop TLC assumes where a checkpoint names none: this project's usual one


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # the channels are the last dimension of channels_last memory: one fused pass, no copy
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: a gate that replaces the activation."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """LayerNorm -> 1x1 -> depthwise 3x3 -> SimpleGate -> channel attention -> 1x1, then LayerNorm -> 1x1 ->
    SimpleGate -> 1x1, each added to the input through a learnable per-channel scale (zero at first).

    ``pool_window`` (TLC, set by :meth:`NAFNet.set_tlc`): the side of the window, in this block's pixels,
    that the channel attention averages around each pixel; None: the whole input, as in training.

    Shape: (B, C, H, W) -> (B, C, H, W), channels_last.
    """

    def __init__(self, channels: int, expand: int = 2) -> None:
        super().__init__()
        hidden = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.conv2 = nn.Conv2d(hidden // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn1 = nn.Conv2d(channels, hidden, 1)
        self.ffn2 = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.pool_window: int | None = None

    def extra_repr(self) -> str:
        return "" if self.pool_window is None else f"pool_window={self.pool_window}"

    def forward(self, x: Tensor) -> Tensor:
        """The block on the (B, H*W, C) view of channels_last memory, the layout training uses.

        Every step but the depthwise convolution acts along the channels, the last dimension of that view,
        so the block is written as matrix products there: torch's CPU convolution takes a slow im2col path
        for 1x1 kernels (with a copy of the bias per output), and the channel scales broadcast along
        contiguous memory instead of across it. Each residual branch ends in one fused product-and-add
        (``baddbmm``/``addmm``) whose weights carry the branch's scale (and, in the first, the channel
        attention of each image), instead of a product, a scaling and a sum that each write a full tensor.
        Autograd differentiates it as written; inference on a CPU takes the kernels of
        :mod:`.nafnet_cpu_inference` instead (on a copy: they update their input in place).
        """
        if eager_cpu_inference(x):
            return block_inference_(self, x.clone(memory_format=torch.channels_last))
        b, c, h, w = x.shape
        p = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view where x is channels_last
        y = F.linear(F.layer_norm(p, (c,), self.norm1.weight, self.norm1.bias, self.norm1.eps),
                     conv_matrix(self.conv1), self.conv1.bias)
        y = self.dwconv(y.view(b, h, w, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        a, g = y.chunk(2, dim=-1)
        y = a * g
        beta = self.beta.view(c)
        w2 = (conv_matrix(self.conv2) * beta[:, None])[None]  # (1, C, C')
        sca, window = self.sca[1], local_window(self.pool_window, h, w)
        if window is None:  # one attention per image (B, C'): it scales the columns of conv2's matrix
            w2 = w2 * F.linear(y.mean(dim=1), conv_matrix(sca), sca.bias)[:, None, :]
        else:  # TLC: an attention per pixel, applied to the gated activations themselves
            y = y * local_attention(y.view(b, h, w, -1), window, sca).view(b, h * w, -1)
            w2 = w2.expand(b, -1, -1)
        # p + beta * (W2 (att * y) + b2), as one batched product-and-add per image
        p = torch.baddbmm(p, y, w2.transpose(1, 2)).add_(beta * self.conv2.bias)  # in place: a fresh tensor
        y = F.linear(F.layer_norm(p, (c,), self.norm2.weight, self.norm2.bias, self.norm2.eps),
                     conv_matrix(self.ffn1), self.ffn1.bias)
        a, g = y.chunk(2, dim=-1)
        gamma = self.gamma.view(c)
        w4 = conv_matrix(self.ffn2) * gamma[:, None]
        p = torch.addmm(p.reshape(-1, c), (a * g).reshape(b * h * w, -1), w4.t()).add_(gamma * self.ffn2.bias)
        return p.view(b, h, w, c).permute(0, 3, 1, 2)


class NAFNet(DeblurModel):
    """UNet of NAFBlocks.

    Args:
        in_channels: 1 or 3.
        width: channels at full resolution; doubled at every downsampling.
        enc_blocks: NAFBlocks per encoder level, finest first.
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level, coarsest first.

    Shape: (B, C, H, W) -> (B, C, H, W), values in [0, 1].
    """

    # its fp32 CPU inference path (nafnet_cpu_inference.py) outruns bf16 autocast even on AMX CPUs
    # (docs/speed.md): --precision auto stays fp32 on CPUs
    cpu_autocast = False

    def __init__(
        self,
        *,
        in_channels: int = 3,
        width: int = 16,
        enc_blocks: tuple[int, ...] = (1, 1, 2),
        middle_blocks: int = 2,
        dec_blocks: tuple[int, ...] = (1, 1, 1),
    ) -> None:
        super().__init__(in_channels=in_channels)
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks {enc_blocks} and dec_blocks {dec_blocks} need the same length")
        self.stride = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch) for _ in range(middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
        self.ending = zero_init(nn.Conv2d(width, in_channels, 3, padding=1))

    def set_tlc(self, train_patch: int | None) -> None:
        """Pool every block's channel attention over a window of 1.5 x ``train_patch`` input pixels around each
        pixel (TLC; the window shrinks with the block's resolution), for a network trained on ``train_patch``
        crops; None: over the whole input again, as in training.

        On an input no larger than the window the output does not change; a tile is windowed in its own pixels.
        """
        if train_patch is not None and train_patch < 1:
            raise ValueError(f"train_patch must be a positive number of pixels or None, got {train_patch}")
        for level, block in self._blocks_by_level():
            block.pool_window = None if train_patch is None else max(1, (3 * train_patch // 2) >> level)

    def _blocks_by_level(self) -> list[tuple[int, NAFBlock]]:
        """Every block with its level: 0 at full resolution, i at 1 / 2**i of it."""
        depth = len(self.encoders)
        levels = [(i, blk) for i, enc in enumerate(self.encoders) for blk in enc]
        levels += [(depth, blk) for blk in self.middle]
        return levels + [(depth - 1 - i, blk) for i, dec in enumerate(self.decoders) for blk in dec]

    def _forward(self, x: Tensor) -> Tensor:
        y = self.intro(x)
        # CPU inference: the blocks update the network's own tensors in place (never the caller's x, nor a skip
        # until the decoder takes it over) and share one scratch tensor, sized for the largest need of any level
        scratch = None
        if eager_cpu_inference(x):
            y = y.contiguous(memory_format=torch.channels_last)
            scratch = y.new_empty(self._scratch_numel(y.shape))
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            y = _run_blocks(enc, y, scratch)
            skips.append(y)
            y = down(y)
        y = _run_blocks(self.middle, y, scratch)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            y = _run_blocks(dec, _add_upsampled(skip, up, y, scratch), scratch)
        return x + self.ending(y)

    def _scratch_numel(self, shape: torch.Size) -> int:
        """Scratch elements the blocks and upsamplings of CPU inference need at most, for ``intro``'s output
        of ``shape`` (B, C, H, W)."""
        b, c, h, w = shape
        need = [scratch_numel(blk, (b, c << i, h >> i, w >> i)) for i, blk in self._blocks_by_level()]
        need += [b * (h >> i) * (w >> i) * up[0].out_channels for i, up in zip(range(len(self.ups), 0, -1), self.ups)]
        return max(need, default=0)


def _run_blocks(blocks: nn.Sequential, y: Tensor, scratch: Tensor | None) -> Tensor:
    """``blocks(y)``; with ``scratch`` (CPU inference), their kernels one after the other, in place on ``y``."""
    if scratch is None:
        return blocks(y)
    y = y.contiguous(memory_format=torch.channels_last)
    for block in blocks:
        y = block_inference_(block, y, scratch)
    return y


def _add_upsampled(skip: Tensor, up: nn.Sequential, y: Tensor, scratch: Tensor | None) -> Tensor:
    """``skip + up(y)`` for ``up`` = (1x1 convolution without bias, PixelShuffle): a matrix product on the
    channels of channels_last memory and a view that reorders its pixels (torch's 1x1 convolution and
    pixel_shuffle are slow on that layout). With ``scratch`` (CPU inference) the product is written there and
    added into ``skip`` in place (channels_last); ``skip`` is returned."""
    conv, shuffle = up
    r = shuffle.upscale_factor
    b, c, h, w = y.shape
    m = conv_matrix(conv)
    n, o = m.shape[0], m.shape[0] // r**2
    if scratch is None:
        t = F.linear(y.permute(0, 2, 3, 1), m)
    else:
        t = torch.mm(y.permute(0, 2, 3, 1).reshape(-1, c), m.t(), out=scratch[: b * h * w * n].view(-1, n))
    # PixelShuffle: channel k * r * r + i * r + j of pixel (y, x) becomes channel k of pixel (y * r + i, x * r + j)
    t = t.view(b, h, w, o, r, r).permute(0, 1, 4, 2, 5, 3)
    if scratch is not None:
        skip.permute(0, 2, 3, 1).view(b, h, r, w, r, o).add_(t)
        return skip
    t = skip.permute(0, 2, 3, 1).reshape(b, h, r, w, r, o) + t
    return t.reshape(b, h * r, w * r, o).permute(0, 3, 1, 2)


def use_tlc(model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Turn TLC on in ``model`` (:meth:`NAFNet.set_tlc`) for the training crops its checkpoint's ``meta`` names
    (its config's ``patch``; :data:`TLC_TRAIN_PATCH` where it names none, as for an untrained network).

    Raises:
        ValueError: ``model`` is not a NAFNet. The other networks here pool nothing over the whole frame, so
            TLC would change nothing, and a run that asked for it should not report it as applied.
    """
    if not isinstance(model, NAFNet):
        raise ValueError(f"TLC applies to the nafnet models, whose channel attention pools over the whole frame; "
                         f"{type(model).__name__} has no such pooling")
    model.set_tlc(int(meta.get("config", {}).get("patch") or TLC_TRAIN_PATCH))


@register_model("nafnet")
def nafnet(**kwargs) -> NAFNet:
    """A light NAFNet: width 16, encoder [1, 1, 2], 2 middle blocks, decoder [1, 1, 1]."""
    return NAFNet(**kwargs)


@register_model("nafnet-cpu")
def nafnet_cpu(**kwargs) -> NAFNet:
    """The network to pick on a CPU: NAFNet with four levels (width 16, encoder [1, 1, 2, 4], 6 middle blocks,
    decoder [1, 1, 1, 1]), several times faster than ``srn`` per frame on a CPU (docs/speed.md), ahead of it on
    long, non-uniform and shake blur, behind it on gaussian, linear motion and video blur (MODELS.md).

    Its blocks sit where the channels are many and the pixels few (at up to 1/16 resolution), where a CPU runs
    them fastest, and four levels see far enough for 40 px of motion (benchmarks/test_training_nafnet.py and
    test_inference.py measured the choice)."""
    return NAFNet(**{"enc_blocks": (1, 1, 2, 4), "middle_blocks": 6, "dec_blocks": (1, 1, 1, 1), **kwargs})
