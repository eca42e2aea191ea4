"""NAFNet: the nonlinear-activation-free baseline of Chen et al. (ECCV 2022).

Beyond the seed project: the modern efficient reference. Each block is LayerNorm -> 1x1 -> depthwise 3x3
-> SimpleGate -> simplified channel attention -> 1x1, then LayerNorm -> 1x1 -> SimpleGate -> 1x1, both
with learnable residual scales that start at zero (so every block starts as the identity). A UNet of
such blocks with a global residual.

The network does little arithmetic per byte of activations, so on a CPU its time goes to memory traffic:
to the dozen elementwise passes of a block written plainly, and above all to fresh full-resolution tensors,
each of which costs a page fault per 4 KiB on first touch. Inference on a CPU (no autograd, no autocast, no
compiler tracing) therefore takes another path, :meth:`NAFNet._forward_inplace`, with the same weights and
the same result to float rounding:

- each block updates the residual stream in place (:meth:`NAFBlock.forward_`), a strip of rows at a time,
  so the hidden activations stay in the cache; its temporaries live in one scratch tensor that every block
  reuses, and the channel attention's means are summed from each strip while it is in the cache;
- the LayerNorms' scale and shift, the channel attention and the residual scales fold into the weights of
  the 1x1 convolutions, and the two residual sums accumulate into the stream in one pass each (oneDNN's
  in-place convolution with a fused add, where the torch build has it; else ``addmm_``);
- the upsampling's PixelShuffle is a view, added into the skip connection in place.

tests/core/test_nafnet.py checks it against the forward as it was before (``benchmarks/nafnet_former.py``,
to 1e-4), and the benchmark suite times the two (``test_nafnet_former_vs_current``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import zero_init
from .registry import register_model

__all__ = ["NAFNet", "NAFBlock", "LayerNorm2d", "SimpleGate", "nafnet"]


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


def _pixels(x: Tensor) -> Tensor:
    """The (B, H*W, C) view of a channels_last (B, C, H, W) tensor (or of channels sliced from one).

    A view, never a copy: in-place updates of it update ``x``; ``view`` raises where that is impossible.
    """
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).view(b, h * w, c)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: a gate that replaces the activation."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
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

    def forward(self, x: Tensor) -> Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:
            return self._forward_pixels(x)
        y = self.gate(self.dwconv(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y

    def _forward_pixels(self, x: Tensor) -> Tensor:
        """:meth:`forward` on the (B, H*W, C) view of channels_last memory, the layout training uses.

        Every step but the depthwise convolution acts along the channels, the last dimension of that view,
        so the block is written as matrix products there: torch's CPU convolution takes a slow im2col path
        for 1x1 kernels (with a copy of the bias per output), and the channel scales broadcast along
        contiguous memory instead of across it. Each residual branch ends in one fused product-and-add
        (``baddbmm``/``addmm``) whose weights carry the branch's scale (and, in the first, the channel
        attention of each image), instead of a product, a scaling and a sum that each write a full tensor.
        The same weights, the same result to float rounding; autograd differentiates it as written.
        """
        b, c, h, w = x.shape
        p = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view: x is channels_last
        y = F.linear(F.layer_norm(p, (c,), self.norm1.weight, self.norm1.bias, self.norm1.eps),
                     _matrix(self.conv1), self.conv1.bias)
        y = self.dwconv(y.view(b, h, w, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        a, g = y.chunk(2, dim=-1)
        y = a * g
        att = F.linear(y.mean(dim=1), _matrix(self.sca[1]), self.sca[1].bias)  # (B, C')
        beta = self.beta.view(c)
        # p + beta * (W2 (att * y) + b2), as one batched product-and-add per image
        w2 = (_matrix(self.conv2) * beta[:, None])[None] * att[:, None, :]  # (B, C, C')
        p = torch.baddbmm(p, y, w2.transpose(1, 2)).add_(beta * self.conv2.bias)  # in place: a fresh tensor
        y = F.linear(F.layer_norm(p, (c,), self.norm2.weight, self.norm2.bias, self.norm2.eps),
                     _matrix(self.ffn1), self.ffn1.bias)
        a, g = y.chunk(2, dim=-1)
        gamma = self.gamma.view(c)
        w4 = _matrix(self.ffn2) * gamma[:, None]
        p = torch.addmm(p.reshape(-1, c), (a * g).reshape(b * h * w, -1), w4.t()).add_(gamma * self.ffn2.bias)
        return p.view(b, h, w, c).permute(0, 3, 1, 2)

    @torch.no_grad()
    def forward_(self, x: Tensor, scratch: Tensor | None = None) -> Tensor:
        """:meth:`forward` without autograd, overwriting ``x`` (channels_last) with the result; returns it.

        ``scratch``: a float tensor of at least :meth:`scratch_numel` elements that the block may overwrite
        (the network passes one to all its blocks, so that their temporaries reuse the same pages).
        """
        if not x.is_contiguous(memory_format=torch.channels_last):
            raise ValueError("NAFBlock.forward_ needs a channels_last tensor (it updates it in place)")
        b, c, h, w = x.shape
        hidden, half, reach = self.conv1.out_channels, self.conv2.in_channels, self.dwconv.padding[0]
        rows = self.strip_rows(w)
        if scratch is None or scratch.numel() < self.scratch_numel(x.shape):
            scratch = x.new_empty(self.scratch_numel(x.shape))
        gated = scratch[: b * h * w * half].view(b, h, w, half)
        strip = scratch[b * h * w * half :]
        xs = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view of x
        w1, b1 = _fold_norm(self.norm1, self.conv1)
        w3, b3 = _fold_norm(self.norm2, self.ffn1)
        beta, gamma = self.beta.view(c), self.gamma.view(c)
        w4, b4 = gamma[:, None] * _matrix(self.ffn2), gamma * self.ffn2.bias

        def norm_conv(i: int, r0: int, r1: int, eps: float, weight: Tensor, bias: Tensor) -> Tensor:
            # a 1x1 convolution of rows r0:r1 of image i, normalised, whose norm's scale and shift it holds;
            # oneDNN's 1x1 convolution beats a matrix product over so few channels
            pixels = xs[i, r0:r1].reshape(-1, c)
            normed = _normalize(pixels, eps, out=strip[: pixels.numel()].view(-1, c))
            return F.conv2d(_image(normed, r1 - r0, w), weight[:, :, None, None], bias)

        # pass 1: norm1 -> conv1 -> dwconv -> SimpleGate into `gated`, a strip of rows at a time (with the
        # rows the depthwise kernel reaches beyond it), so that the hidden activations stay in the cache;
        # the channel attention's means summed from each strip while it is there
        sums = x.new_zeros(b, half)
        for i in range(b):
            for r0 in range(0, h, rows):
                r1 = min(r0 + rows, h)
                i0, i1 = max(r0 - reach, 0), min(r1 + reach, h)
                # two statements, not one expression: each strip then frees the previous strip's buffer as it
                # allocates its own, so glibc hands back the same pages; nested, three strip-sized buffers
                # lived at once, the freed pages went back to the OS, and a 720p frame page-faulted on 470 MB
                # instead of 200 MB (20% slower)
                y = norm_conv(i, i0, i1, self.norm1.eps, w1, b1)
                y = self.dwconv(y)[:, :, r0 - i0 : r1 - i0]
                g = gated[i, r0:r1]
                torch.mul(y[:, :half], y[:, half:], out=_image(g, r1 - r0, w))
                sums[i] += g.view(-1, half).sum(0)
        # beta * conv2(gated * sca(gated)): the channel attention s (one per image) and beta fold into conv2
        s = self.sca[1]((sums / (h * w)).view(b, half, 1, 1)).view(b, 1, half)
        w2, b2 = beta[:, None] * _matrix(self.conv2) * s, beta * self.conv2.bias
        # pass 2, a strip at a time: x += that; x += gamma * ffn2(SimpleGate(ffn1(norm2(x))))
        for i in range(b):
            for r0 in range(0, h, rows):
                r1 = min(r0 + rows, h)
                xv = x[i : i + 1, :, r0:r1]
                _conv1x1_add_(xv, _image(gated[i, r0:r1], r1 - r0, w), w2[i], b2)
                y = norm_conv(i, r0, r1, self.norm2.eps, w3, b3)
                a = strip[(r1 - r0) * w * c : (r1 - r0) * w * (c + half)]
                a = torch.mul(y[:, :half], y[:, half:], out=_image(a, r1 - r0, w))
                _conv1x1_add_(xv, a, w4, b4)
        return x

    def strip_rows(self, width: int) -> int:
        """Rows of an image ``width`` pixels wide that :meth:`forward_` processes at a time."""
        return max(1, _STRIP_ELEMENTS // (width * self.conv1.out_channels))

    def scratch_numel(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Elements of scratch memory :meth:`forward_` needs for an input of ``shape`` (B, C, H, W)."""
        b, c, h, w = shape
        half = self.conv2.in_channels
        # the normalised strip (halo rows included), then pass 2's gated strip beside it
        strip = (self.strip_rows(w) + 2 * self.dwconv.padding[0]) * w * (c + half)
        return b * h * w * half + strip


# hidden activations per strip in NAFBlock.forward_: 16 MiB, within an L3 cache; 4 MiB ran as fast, and
# smaller strips run slower (more halo rows, more calls), far slower where other processes share the cores
_STRIP_ELEMENTS = 2**22


def _image(pixels: Tensor, height: int, width: int) -> Tensor:
    """The (1, C, height, width) channels_last view of ``height * width`` pixels' channel vectors."""
    return pixels.reshape(1, height, width, -1).permute(0, 3, 1, 2)


def _conv1x1_add_(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> None:
    """``x += conv1x1(y, weight, bias)`` in place, for channels_last ``x`` (1, C, H, W) and ``y``.

    oneDNN does it in one pass with the sum fused (its in-place convolution with a binary add, the kernel
    torch.compile's CPU backend emits for this pattern); elsewhere a matrix product accumulated into ``x``.
    """
    op = _onednn_conv_add()
    if op is not None:
        op(x, y, weight[:, :, None, None], bias, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None)
        return
    c, k = weight.shape
    _pixels(x).view(-1, c).addmm_(_pixels(y).view(-1, k), weight.t()).add_(bias)


@functools.cache
def _onednn_conv_add():
    """oneDNN's in-place convolution-and-add where this torch build has it and computes it right, else None."""
    try:
        op = torch.ops.mkldnn._convolution_pointwise_.binary
        if not torch.backends.mkldnn.is_available():
            return None
        x = torch.zeros(1, 2, 1, 2).contiguous(memory_format=torch.channels_last)
        y = torch.ones(1, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        op(x, y, torch.ones(2, 3, 1, 1), torch.ones(2), [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None)
    except (AttributeError, RuntimeError):
        return None
    return op if torch.equal(x, torch.full_like(x, 4.0)) else None


def _matrix(conv: nn.Conv2d) -> Tensor:
    """The (out, in) matrix of a 1x1 convolution."""
    return conv.weight.view(conv.weight.shape[0], conv.weight.shape[1])


def _fold_norm(norm: LayerNorm2d, conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """Matrix and bias of ``conv(norm.weight * n + norm.bias)`` as one affine map of the normalised ``n``."""
    m = _matrix(conv)
    return m * norm.weight, torch.addmv(conv.bias, m, norm.bias)


def _normalize(x: Tensor, eps: float, *, out: Tensor) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the last dimension of ``x`` (N, C), written to ``out``."""
    torch.sub(x, x.mean(-1, keepdim=True), out=out)
    var = torch.linalg.vector_norm(out, dim=-1, keepdim=True).square_().div_(x.shape[-1])
    return out.mul_(var.add_(eps).rsqrt_())


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

    def _forward(self, x: Tensor) -> Tensor:
        if _eager_cpu_inference(x):
            return self._forward_inplace(x)
        y = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.middle(y)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            y = dec(_upsample(up, y) + skip)
        return x + self.ending(y)

    def _forward_inplace(self, x: Tensor) -> Tensor:
        # every block updates a tensor made here in place (never the caller's x, nor a skip until the decoder
        # takes it over), and all share one scratch tensor, sized for the largest need of any level
        y = self.intro(x).contiguous(memory_format=torch.channels_last)
        b, c, h, w = y.shape
        levels = [(i, blk) for i, enc in enumerate(self.encoders) for blk in enc]
        levels += [(len(self.encoders), blk) for blk in self.middle]
        levels += [(len(self.decoders) - 1 - i, blk) for i, dec in enumerate(self.decoders) for blk in dec]
        need = [blk.scratch_numel((b, c << i, h >> i, w >> i)) for i, blk in levels]
        need += [b * (h >> i) * (w >> i) * up[0].out_channels for i, up in zip(range(len(self.ups), 0, -1), self.ups)]
        scratch = y.new_empty(max(need, default=0))
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            for block in enc:
                y = block.forward_(y, scratch)
            skips.append(y)
            y = down(y).contiguous(memory_format=torch.channels_last)
        for block in self.middle:
            y = block.forward_(y, scratch)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            y = _add_upsampled_(skip, up, y, scratch)
            for block in dec:
                y = block.forward_(y, scratch)
        return self.ending(y).add_(x)


def _upsample(up: nn.Sequential, y: Tensor) -> Tensor:
    """``up(y)`` for ``up`` = (1x1 convolution without bias, PixelShuffle); on channels_last memory as a matrix
    product and one reordering copy (torch's 1x1 convolution and pixel_shuffle are slow on that layout)."""
    if not y.is_contiguous(memory_format=torch.channels_last):
        return up(y)
    conv, shuffle = up
    r = shuffle.upscale_factor
    b, c, h, w = y.shape
    t = F.linear(y.permute(0, 2, 3, 1), _matrix(conv))  # (B, H, W, out)
    # PixelShuffle: channel k * r * r + i * r + j of pixel (y, x) becomes channel k of pixel (y * r + i, x * r + j)
    o = t.shape[-1] // r**2
    t = t.view(b, h, w, o, r, r).permute(0, 1, 4, 2, 5, 3).reshape(b, h * r, w * r, o)
    return t.permute(0, 3, 1, 2)


def _add_upsampled_(skip: Tensor, up: nn.Sequential, y: Tensor, scratch: Tensor) -> Tensor:
    """``skip += up(y)`` for ``up`` = (1x1 convolution without bias, PixelShuffle), in place on ``skip``.

    The convolution is a matrix product into ``scratch``; the shuffle is only a view of it.
    """
    conv, shuffle = up
    r = shuffle.upscale_factor
    b, c, h, w = y.shape
    out = conv.out_channels
    t = torch.mm(_pixels(y).view(-1, c), _matrix(conv).t(), out=scratch[: b * h * w * out].view(-1, out))
    # PixelShuffle: channel k * r * r + i * r + j of pixel (y, x) becomes channel k of pixel (y * r + i, x * r + j)
    t = t.view(b, h, w, out // r**2, r, r).permute(0, 1, 4, 2, 5, 3)
    skip.permute(0, 2, 3, 1).view(b, h, r, w, r, out // r**2).add_(t)
    return skip


def _eager_cpu_inference(x: Tensor) -> bool:
    """Whether ``_forward_inplace`` applies: a CPU tensor, no autograd, no autocast, no compiler tracing
    (torch.compile and torch.export see the plain forward, which they fuse or translate better)."""
    if x.device.type != "cpu" or torch.is_grad_enabled():
        return False
    try:
        autocast, tracing = torch.is_autocast_enabled("cpu"), torch.compiler.is_compiling()
    except (TypeError, AttributeError):  # torch < 2.4
        autocast, tracing = torch.is_autocast_cpu_enabled(), torch._dynamo.is_compiling()
    return not (autocast or tracing)


@register_model("nafnet")
def nafnet(**kwargs) -> NAFNet:
    """A light NAFNet: width 16, encoder [1, 1, 2], 2 middle blocks, decoder [1, 1, 1]."""
    return NAFNet(**kwargs)


@register_model("nafnet-cpu")
def nafnet_cpu(**kwargs) -> NAFNet:
    """NAFNet for CPUs and long blur: width 16, four levels (stride 16), encoder [1, 1, 2, 4], 6 middle blocks
    at 1/16 resolution, decoder [1, 1, 1, 1]. Its blocks sit where the channels are many and the pixels few,
    where a CPU runs them fastest, and four levels see far enough for 40 px of motion (benchmarks/
    test_training.py and test_inference.py measured the choice)."""
    return NAFNet(**{"enc_blocks": (1, 1, 2, 4), "middle_blocks": 6, "dec_blocks": (1, 1, 1, 1), **kwargs})
