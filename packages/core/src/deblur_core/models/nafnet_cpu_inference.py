"""The kernels of NAFNet's block for inference on a CPU: the same weights and the same result (to float
rounding) as :class:`~deblur_core.models.nafnet.NAFBlock`'s differentiable arithmetic, at a fraction of its
memory traffic.

The network does little arithmetic per byte of activations, so on a CPU its time goes to memory traffic:
to the dozen elementwise passes of a block written plainly, and above all to fresh full-resolution tensors,
each of which costs a page fault per 4 KiB on first touch. Inference on a CPU (no autograd, no autocast, no
compiler tracing: :func:`eager_cpu_inference`) therefore runs :func:`block_inference_`:

- it updates the residual stream in place, a strip of rows at a time, so the hidden activations stay in the
  cache; its temporaries live in one scratch tensor that every block of a network may share, and the
  channel attention's means are summed from each strip while it is in the cache;
- the LayerNorms' scale and shift, the channel attention and the residual scales fold into the weights of
  the 1x1 convolutions, and the two residual sums accumulate into the stream in one pass each
  (:func:`_conv1x1_add_`: oneDNN's in-place convolution with a fused add, a private torch op, where the
  torch build has it and computes it right; else ``addmm_``).

:func:`local_attention` is TLC's channel attention (pooled over a window around each pixel instead of the
whole frame), shared by this path and the differentiable one. Nothing here defines a layer: the functions
read the modules of a ``NAFBlock``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["block_inference_", "conv_matrix", "eager_cpu_inference", "local_attention", "local_window", "scratch_numel",
           "strip_rows"]

# hidden activations per strip in block_inference_: 16 MiB, within an L3 cache; 4 MiB ran as fast, and
# smaller strips run slower (more halo rows, more calls), far slower where other processes share the cores
_STRIP_ELEMENTS = 2**22


def eager_cpu_inference(x: Tensor) -> bool:
    """Whether :func:`block_inference_` applies: a CPU tensor, no autograd, no autocast, no compiler tracing
    (torch.compile and torch.export see the plain forward, which they fuse or translate better)."""
    if x.device.type != "cpu" or torch.is_grad_enabled():
        return False
    try:
        autocast, tracing = torch.is_autocast_enabled("cpu"), torch.compiler.is_compiling()
    except (TypeError, AttributeError):  # torch < 2.4
        autocast, tracing = torch.is_autocast_cpu_enabled(), torch._dynamo.is_compiling()
    return not (autocast or tracing)


@torch.no_grad()
def block_inference_(block: nn.Module, x: Tensor, scratch: Tensor | None = None) -> Tensor:
    """``NAFBlock`` ``block``'s arithmetic without autograd, overwriting ``x`` (channels_last) with the result;
    returns it.

    ``scratch``: a float tensor of at least :func:`scratch_numel` elements that the block may overwrite
    (a network passes one to all its blocks, so that their temporaries reuse the same pages).

    Raises:
        ValueError: ``x`` is not channels_last.
    """
    if not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError("block_inference_ needs a channels_last tensor (it updates it in place)")
    b, c, h, w = x.shape
    half = block.conv2.in_channels
    if scratch is None or scratch.numel() < scratch_numel(block, x.shape):
        scratch = x.new_empty(scratch_numel(block, x.shape))
    gated = scratch[: b * h * w * half].view(b, h, w, half)
    strip = scratch[b * h * w * half :]
    sums = _gate_strips(block, x, gated, strip)
    sca, window = block.sca[1], local_window(block.pool_window, h, w)
    if window is None:  # one attention per image, from the means: it folds into conv2's weights
        att = sca((sums / (h * w)).view(b, half, 1, 1)).view(b, 1, half)
    else:  # TLC: an attention per pixel, applied to the gated activations themselves
        gated.mul_(local_attention(gated, window, sca))
        att = gated.new_ones(1, 1, half)
    _add_residuals_(block, x, gated, strip, att)
    return x


def strip_rows(block: nn.Module, width: int) -> int:
    """Rows of an image ``width`` pixels wide that :func:`block_inference_` processes at a time."""
    return max(1, _STRIP_ELEMENTS // (width * block.conv1.out_channels))


def scratch_numel(block: nn.Module, shape: torch.Size | tuple[int, ...]) -> int:
    """Elements of scratch memory :func:`block_inference_` needs for an input of ``shape`` (B, C, H, W)."""
    b, c, h, w = shape
    half = block.conv2.in_channels
    # the normalised strip (halo rows included), then pass 2's gated strip beside it
    strip = (strip_rows(block, w) + 2 * block.dwconv.padding[0]) * w * (c + half)
    return b * h * w * half + strip


def local_window(window: int | None, height: int, width: int) -> tuple[int, int] | None:
    """TLC's ``window`` x ``window`` pool on a ``height`` x ``width`` map, each side cut to the map's; None where
    it covers the whole map (or ``window`` is None): there the pool is the global mean, computed as such."""
    if window is None or (window >= height and window >= width):
        return None
    return min(window, height), min(window, width)


def local_attention(x: Tensor, window: tuple[int, int], conv: nn.Conv2d) -> Tensor:
    """TLC's channel attention of ``x`` (B, H, W, C): the 1x1 convolution ``conv`` of the mean of ``x`` over the
    ``window`` = (rows, columns) around each pixel.

    A window reaching past the border is shifted back inside, so every mean is over a full window of the
    image's own pixels, as every pixel of a training crop saw. Each side is a difference of running sums (an
    integral image): the cost does not grow with the window.

    Shape: (B, H, W, C) -> (B, H, W, conv.out_channels); rows <= H, columns <= W.

    Example:
        >>> conv = nn.Conv2d(1, 1, 1)
        >>> _ = nn.init.ones_(conv.weight), nn.init.zeros_(conv.bias)
        >>> local_attention(torch.arange(5.0).view(1, 1, 5, 1), (1, 3), conv).flatten().tolist()
        [1.0, 1.0, 2.0, 3.0, 3.0]
    """
    starts = []
    for dim, k in zip((1, 2), window):
        n = x.shape[dim]
        sums = _running_sums(x, dim)
        x = sums.narrow(dim, k, n - k + 1) - sums.narrow(dim, 0, n - k + 1)  # the sums of the windows that fit
        starts.append((torch.arange(n, device=x.device) - (k - 1) // 2).clamp_(0, n - k))
    rows, cols = starts
    # the convolution (its matrix scaled to turn sums into means) acts on each window once; then the end
    # windows' attention repeats out to the border
    return F.linear(x, conv_matrix(conv) / (window[0] * window[1]), conv.bias)[:, rows[:, None], cols]


def _running_sums(x: Tensor, dim: int) -> Tensor:
    """``sums`` with ``sums[i]`` the sum of the first ``i`` entries of ``x`` along ``dim`` (one more entry than
    ``x`` has)."""
    if x.requires_grad or x.device.type != "cpu":
        return torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.cumsum(dim)], dim)
    # on a CPU, one slab at a time: torch.cumsum along any but the last dimension strides across memory at
    # every element, ten times slower along the rows of a frame
    shape = list(x.shape)
    shape[dim] += 1
    sums = x.new_empty(shape)
    total = sums.select(dim, 0).zero_()
    for i in range(x.shape[dim]):
        total = torch.add(total, x.select(dim, i), out=sums.select(dim, i + 1))
    return sums


def _gate_strips(block: nn.Module, x: Tensor, gated: Tensor, strip: Tensor) -> Tensor:
    """Pass 1: norm1 -> conv1 -> dwconv -> SimpleGate of ``x`` into ``gated`` (B, H, W, hidden / 2), a strip
    of rows at a time (with the rows the depthwise kernel reaches beyond it), so that the hidden activations
    stay in the cache. Returns the channel attention's sums over each image (B, hidden / 2), summed from
    each strip while it is there."""
    b, c, h, w = x.shape
    half, reach, rows = gated.shape[-1], block.dwconv.padding[0], strip_rows(block, w)
    w1, b1 = _fold_norm(block.norm1, block.conv1)
    sums = x.new_zeros(b, half)
    for i in range(b):
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            i0, i1 = max(r0 - reach, 0), min(r1 + reach, h)
            # two statements, not one expression: each strip then frees the previous strip's buffer as it
            # allocates its own, so glibc hands back the same pages; nested, three strip-sized buffers
            # lived at once, the freed pages went back to the OS, and every strip page-faulted on fresh memory
            y = _norm_conv(x, i, i0, i1, block.norm1.eps, w1, b1, strip)
            y = block.dwconv(y)[:, :, r0 - i0 : r1 - i0]
            g = gated[i, r0:r1]
            torch.mul(y[:, :half], y[:, half:], out=_image(g, r1 - r0, w))
            sums[i] += g.view(-1, half).sum(0)
    return sums


def _add_residuals_(block: nn.Module, x: Tensor, gated: Tensor, strip: Tensor, att: Tensor) -> None:
    """Pass 2, a strip at a time: ``x += beta * conv2(gated * att)``, then
    ``x += gamma * ffn2(SimpleGate(ffn1(norm2(x))))``, in place; ``att`` (B or 1, 1, hidden / 2) is the channel
    attention of each image, ones where ``gated`` already holds it."""
    b, c, h, w = x.shape
    half, rows = gated.shape[-1], strip_rows(block, w)
    beta, gamma = block.beta.view(c), block.gamma.view(c)
    # the channel attention and beta fold into conv2
    w2, b2 = (beta[:, None] * conv_matrix(block.conv2) * att).expand(b, c, half), beta * block.conv2.bias
    w3, b3 = _fold_norm(block.norm2, block.ffn1)
    w4, b4 = gamma[:, None] * conv_matrix(block.ffn2), gamma * block.ffn2.bias
    for i in range(b):
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            xv = x[i : i + 1, :, r0:r1]
            _conv1x1_add_(xv, _image(gated[i, r0:r1], r1 - r0, w), w2[i], b2)
            y = _norm_conv(x, i, r0, r1, block.norm2.eps, w3, b3, strip)
            a = strip[(r1 - r0) * w * c : (r1 - r0) * w * (c + half)]
            a = torch.mul(y[:, :half], y[:, half:], out=_image(a, r1 - r0, w))
            _conv1x1_add_(xv, a, w4, b4)


def _norm_conv(x: Tensor, i: int, r0: int, r1: int, eps: float, weight: Tensor, bias: Tensor,
               strip: Tensor) -> Tensor:
    """A 1x1 convolution of rows r0:r1 of image i of ``x``, normalised (into ``strip``), whose norm's scale
    and shift ``weight`` and ``bias`` hold; oneDNN's 1x1 convolution beats a matrix product over so few
    channels."""
    c, w = x.shape[1], x.shape[3]
    pixels = x.permute(0, 2, 3, 1)[i, r0:r1].reshape(-1, c)
    normed = _normalize(pixels, eps, out=strip[: pixels.numel()].view(-1, c))
    return F.conv2d(_image(normed, r1 - r0, w), weight[:, :, None, None], bias)


def _pixels(x: Tensor) -> Tensor:
    """The (B, H*W, C) view of a channels_last (B, C, H, W) tensor (or of channels sliced from one).

    A view, never a copy: in-place updates of it update ``x``; ``view`` raises where that is impossible.
    """
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).view(b, h * w, c)


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


def conv_matrix(conv: nn.Conv2d) -> Tensor:
    """The (out, in) matrix of a 1x1 convolution."""
    return conv.weight.view(conv.weight.shape[0], conv.weight.shape[1])


def _fold_norm(norm: nn.Module, conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """Matrix and bias of ``conv(norm.weight * n + norm.bias)`` as one affine map of the normalised ``n``
    (``norm`` a channel LayerNorm)."""
    m = conv_matrix(conv)
    return m * norm.weight, torch.addmv(conv.bias, m, norm.bias)


def _normalize(x: Tensor, eps: float, *, out: Tensor) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the last dimension of ``x`` (N, C), written to ``out``."""
    torch.sub(x, x.mean(-1, keepdim=True), out=out)
    var = torch.linalg.vector_norm(out, dim=-1, keepdim=True).square_().div_(x.shape[-1])
    return out.mul_(var.add_(eps).rsqrt_())
