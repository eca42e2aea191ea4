"""Running a deblurring network on images of any size: device choice, weights, tiling.

``load_deblurrer`` picks the weights (a file, or the ones shipped for the variant, or none) and prepares
the network for fast inference; ``deblur_tensor`` runs it on a batch, in overlapping tiles when the frame
is larger than the tile so memory stays bounded whatever the frame size, blending the tiles with smooth
weights so no seam shows. :func:`deblur_core.precision.inference_dtype` decides the arithmetic: bf16 autocast
where the hardware multiplies bf16 natively and fast, fp32 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .checkpoint import load_model, pretrained_path
from .models import activation_bytes_per_pixel, get_model
from .tta import check_tta, with_tta
from .precision import autocast, check_precision, inference_dtype, precision_name

__all__ = ["Deblurrer", "resolve_device", "load_deblurrer", "deblur_tensor", "tile_starts",
           "CPU_MEMORY_BUDGET", "NON_FINITE_OUTPUT", "TilePlan", "memory_budget", "plan_batch"]


# Memory: a batch of whole frames, or one tile, may take this many bytes of network activations. On a CPU a
# fixed budget: with it a 1280x720 frame of srn (1.28 GB) runs whole, and the whole run on an 8K frame stays
# under 4 GB (the frame's own copies take about 50 bytes a pixel besides). On a GPU, half its memory.
CPU_MEMORY_BUDGET = 1536 * 2**20
# Activations are counted on the meta device (models.activation_bytes_per_pixel); the resident memory of a
# CPU forward pass rose by 1.0-1.5x the count (oneDNN's buffers, memory the allocator keeps), so plan with 1.5x.
_MEASURED_OVER_COUNTED = 1.5
# What a network that cannot be counted is assumed to take: red30's count, the heaviest variant here.
_UNCOUNTED_BYTES_PER_PIXEL = 8716 * _MEASURED_OVER_COUNTED
_TILE_MULTIPLE = 16  # tile sides are multiples of every network's stride here, so tiles need no padding
_counted: dict[str, float] = {}  # architecture (the module's repr) -> bytes per pixel

# Why a frame's output is refused: finite weights can still give NaN (an overflow in fp16, an input the network
# was never meant for), and an image would store it as black.
NON_FINITE_OUTPUT = ("the network's output holds NaN though its weights are finite (an overflow of reduced "
                     "precision does that: --precision fp32 avoids it)")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return dev


@dataclass
class Deblurrer:
    """A network ready for inference and what is known about it."""

    model: nn.Module
    name: str
    device: torch.device
    weights: Path | None  # None: untrained (the identity, for the residual networks here)
    meta: dict[str, Any] = field(default_factory=dict)
    dtype: torch.dtype | None = None  # the autocast dtype it runs in; None: plain fp32 (see inference_dtype)

    @property
    def trained(self) -> bool:
        return self.weights is not None

    @property
    def precision(self) -> str:
        """The name of the arithmetic it runs in: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return precision_name(self.dtype)

    @property
    def bytes_per_pixel(self) -> float:
        """Memory the network takes per input pixel at its peak: counted activations x 1.5 (see
        :data:`CPU_MEMORY_BUDGET`); counted once per architecture, in a fraction of a second."""
        key = repr(self.model)  # the architecture: weights do not change the activations
        if key not in _counted:
            try:
                _counted[key] = activation_bytes_per_pixel(self.model) * _MEASURED_OVER_COUNTED
            except (RuntimeError, NotImplementedError):  # a network that cannot run on the meta device
                _counted[key] = _UNCOUNTED_BYTES_PER_PIXEL
        return _counted[key]

    def __call__(self, x: Tensor, **kwargs) -> Tensor:
        """Deblur a (B, C, H, W) batch in its arithmetic; keywords as :func:`deblur_tensor`'s ``tile``,
        ``overlap`` and ``progress``."""
        return _deblur(self.model, x, self.device, self.dtype, **kwargs)


def load_deblurrer(
    name: str,
    weights: str | Path | None = None,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    tta: int = 1,
) -> Deblurrer:
    """Build variant ``name`` with ``weights`` (a safetensors checkpoint) or its shipped weights if any, to
    run at ``precision`` (``auto``, ``fp32``, ``bf16`` or ``fp16``; see
    :func:`deblur_core.precision.inference_dtype`), averaged over ``tta`` flips and rotations of each input
    (1, 2, 4 or 8; see :mod:`deblur_core.tta`).

    channels_last roughly doubles convolution speed on x86 CPUs (oneDNN's preferred layout) and suits
    tensor cores on GPUs.
    """
    dev = resolve_device(device)
    check_precision(precision)
    check_tta(tta)
    path = Path(weights) if weights is not None else pretrained_path(name)
    if path is not None:
        model, meta = load_model(path, expect=name)
    else:
        model, meta = get_model(name).eval(), {}
    model = model.to(dev)
    dtype = inference_dtype(precision, dev, model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Deblurrer(model=with_tta(model, tta), name=name, device=dev, weights=path, meta=meta, dtype=dtype)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` in common."""
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def memory_budget(device: str | torch.device) -> int:
    """Bytes of network activations one batch (or tile) may take on ``device``: :data:`CPU_MEMORY_BUDGET` on a
    CPU, half of a GPU's memory.

    A property of the machine, not of the moment: whether a frame runs in tiles changes its output, which must
    not depend on what else holds memory at the time (a rerun would not reproduce the run's bytes).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_properties(dev).total_memory // 2
    return CPU_MEMORY_BUDGET


@dataclass(frozen=True)
class TilePlan:
    """How frames of one size run: ``frames`` whole frames per batch, or (``frames`` = 1) one frame in tiles
    of ``tile`` = (height, width)."""

    frames: int
    tile: tuple[int, int] | None = None

    def tiles(self, height: int, width: int, overlap: int) -> int:
        """How many tiles a height x width frame is cut into (1: none)."""
        if self.tile is None:
            return 1
        return len(tile_starts(height, self.tile[0], overlap)) * len(tile_starts(width, self.tile[1], overlap))


def plan_batch(height: int, width: int, *, bytes_per_pixel: float, budget: float, batch_size: int,
               overlap: int) -> TilePlan:
    """Run frames of ``height`` x ``width`` within ``budget`` bytes of activations.

    A frame that fits runs whole, batched with as many others (up to ``batch_size``) as fit; tiles only cost
    time (they overlap, and each runs the network's fixed work again). A frame that does not fit runs alone,
    in the grid of tiles that fit which processes the fewest pixels in all (sides multiples of 16, the
    frame's own where that is smaller).

    Example:
        >>> plan_batch(720, 1280, bytes_per_pixel=1386, budget=1536 * 2**20, batch_size=4, overlap=32)
        TilePlan(frames=1, tile=None)
        >>> plan_batch(4320, 7680, bytes_per_pixel=1386, budget=1536 * 2**20, batch_size=4, overlap=32)
        TilePlan(frames=1, tile=(1104, 992))
    """
    max_pixels = max(1, int(budget // bytes_per_pixel))
    padded = _round_up(height, _TILE_MULTIPLE) * _round_up(width, _TILE_MULTIPLE)  # the networks pad to their stride
    if padded <= max_pixels:
        return TilePlan(frames=max(1, min(batch_size, max_pixels // padded)))
    smallest = 2 * overlap + _TILE_MULTIPLE  # a tile must exceed twice the overlap
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for rows in range(1, max(1, height // max(1, smallest - overlap)) + 2):
        th = _tile_side(height, rows, overlap)
        if th < min(height, smallest):
            break
        widest = min(width, max_pixels // th // _TILE_MULTIPLE * _TILE_MULTIPLE)
        if widest < min(width, smallest):
            continue
        cols = 1 if widest >= width else -(-(width - overlap) // (widest - overlap))
        tw = _tile_side(width, cols, overlap)
        plan = TilePlan(frames=1, tile=(th, tw))
        cost = (plan.tiles(height, width, overlap) * th * tw, plan.tiles(height, width, overlap))
        if best is None or cost < best[0]:
            best = (cost, (th, tw))
    return TilePlan(frames=1, tile=best[1] if best else (min(height, smallest), min(width, smallest)))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _tile_side(length: int, count: int, overlap: int) -> int:
    """The shortest tile side (a multiple of 16, or ``length``) that covers ``length`` in ``count`` tiles."""
    if count <= 1:
        return length
    return min(length, _round_up(-(-(length + (count - 1) * overlap) // count), _TILE_MULTIPLE))


def _ramp(size: int, overlap: int, taper_start: bool, taper_end: bool) -> Tensor:
    # strictly positive weights, rising over the overlap on sides that have a neighbouring tile
    w = torch.ones(size)
    if overlap > 0:
        r = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if taper_start:
            w[:overlap] = r
        if taper_end:
            w[-overlap:] = r.flip(0)
    return w


def _run(model: nn.Module, x: Tensor, device: torch.device, dtype: torch.dtype | None) -> Tensor:
    x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with autocast(device, dtype):
        y = model(x)
    return y.float().clamp_(0, 1)


def deblur_tensor(
    model: nn.Module,
    x: Tensor,
    *,
    device: torch.device | str | None = None,
    precision: str = "auto",
    tile: int | tuple[int, int] | None = None,
    overlap: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Deblur a (B, C, H, W) batch in [0, 1]; the result is on the CPU, float32, same shape.

    Args:
        model: a network in eval mode (see :func:`load_deblurrer`).
        device: where to run; defaults to the model's device.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast (see
            :func:`deblur_core.precision.inference_dtype`); the result is float32 whatever the arithmetic.
        tile: process frames larger than ``tile`` x ``tile`` (or ``tile`` = (height, width)) in overlapping
            tiles of that size (None: whole frames; :func:`plan_batch` picks one from a memory budget).
        overlap: pixels shared by neighbouring tiles, blended with linear ramps.
        progress: called with (tiles done, tiles total) after each tile.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    return _deblur(model, x, dev, inference_dtype(precision, dev, model), tile=tile, overlap=overlap, progress=progress)


@torch.inference_mode()
def _deblur(model: nn.Module, x: Tensor, dev: torch.device, dtype: torch.dtype | None, *,
            tile: int | tuple[int, int] | None = None, overlap: int = 32,
            progress: Callable[[int, int], None] | None = None) -> Tensor:
    """:func:`deblur_tensor` with the device and the autocast dtype resolved."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile or (0, 0)
    if tile is not None and min(tile_h, tile_w) <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    b, c, h, w = x.shape
    if tile is None or (h <= tile_h and w <= tile_w):
        y = _run(model, x, dev, dtype).cpu()
        if progress:
            progress(1, 1)
        return y
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    th, tw = min(tile_h, h), min(tile_w, w)
    out = torch.zeros(b, c, h, w)
    weight = torch.zeros(1, 1, h, w)
    total, done = len(ys) * len(xs), 0
    for y0 in ys:
        wy = _ramp(th, overlap, y0 > 0, y0 + th < h)
        for x0 in xs:
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < w)
            win = wy[:, None] * wx[None, :]
            pred = _run(model, x[..., y0 : y0 + th, x0 : x0 + tw], dev, dtype).cpu()
            out[..., y0 : y0 + th, x0 : x0 + tw] += pred * win
            weight[..., y0 : y0 + th, x0 : x0 + tw] += win
            done += 1
            if progress:
                progress(done, total)
    return out.div_(weight)
