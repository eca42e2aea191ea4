"""Tile plans: how a frame runs within a memory budget, and the blending of overlapping tiles."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..progress import Progress, ProgressFn

__all__ = ["TILE_MULTIPLE", "TilePlan", "plan_batch", "tile_starts", "run_tiles"]

TILE_MULTIPLE = 16  # tile sides are multiples of every network's stride here, so tiles need no padding


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` in common."""
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


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
               overlap: int, multiple: int = 1, square: bool = False) -> TilePlan:
    """Run frames of ``height`` x ``width`` within ``budget`` bytes of activations.

    A frame that fits runs whole, batched with as many others (up to ``batch_size``) as fit; tiles only cost
    time (they overlap, and each runs the network's fixed work again). A frame that does not fit runs alone,
    in the grid of tiles that fit which processes the fewest pixels in all (sides multiples of 16, the
    frame's own where that is smaller). A network that needs sides that are multiples of ``multiple``, or a
    square input (``square``), is planned for the input it is padded to, in tiles of that kind.

    Example:
        >>> plan_batch(720, 1280, bytes_per_pixel=1386, budget=1536 * 2**20, batch_size=4, overlap=32)
        TilePlan(frames=1, tile=None)
        >>> plan_batch(4320, 7680, bytes_per_pixel=1386, budget=1536 * 2**20, batch_size=4, overlap=32)
        TilePlan(frames=1, tile=(1104, 992))
    """
    max_pixels = max(1, int(budget // bytes_per_pixel))
    step = math.lcm(TILE_MULTIPLE, multiple)
    ph, pw = _round_up(height, step), _round_up(width, step)  # the networks pad to their stride
    padded = max(ph, pw) ** 2 if square else ph * pw
    if padded <= max_pixels:
        return TilePlan(frames=max(1, min(batch_size, max_pixels // padded)))
    smallest = _round_up(2 * overlap + 1, step)  # a tile must exceed twice the overlap
    if square:  # the largest square that fits (run_tiles crops it to a frame side shorter than it)
        side = max(smallest, math.isqrt(max_pixels) // step * step)
        return TilePlan(frames=1, tile=(side, side))
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for rows in range(1, max(1, height // max(1, smallest - overlap)) + 2):
        th = _tile_side(height, rows, overlap, step)
        if th < min(height, smallest):
            break
        widest = min(width, max_pixels // th // step * step)
        if widest < min(width, smallest):
            continue
        cols = 1 if widest >= width else -(-(width - overlap) // (widest - overlap))
        tw = _tile_side(width, cols, overlap, step)
        plan = TilePlan(frames=1, tile=(th, tw))
        cost = (plan.tiles(height, width, overlap) * th * tw, plan.tiles(height, width, overlap))
        if best is None or cost < best[0]:
            best = (cost, (th, tw))
    return TilePlan(frames=1, tile=best[1] if best else (min(height, smallest), min(width, smallest)))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _tile_side(length: int, count: int, overlap: int, step: int) -> int:
    """The shortest tile side (a multiple of ``step``, or ``length``) that covers ``length`` in ``count`` tiles."""
    if count <= 1:
        return length
    return min(length, _round_up(-(-(length + (count - 1) * overlap) // count), step))


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


def run_tiles(run: Callable[[Tensor], Tensor], x: Tensor, tile: tuple[int, int], overlap: int,
              progress: ProgressFn | None = None) -> Tensor:
    """``run`` (a network: (B, C, h, w) in, the same shape out on the CPU) over overlapping tiles of ``x``,
    blended with linear ramps over the ``overlap`` so no seam shows; ``progress`` counts tiles."""
    b, c, h, w = x.shape
    ys, xs = tile_starts(h, tile[0], overlap), tile_starts(w, tile[1], overlap)
    th, tw = min(tile[0], h), min(tile[1], w)
    out = torch.zeros(b, c, h, w)
    weight = torch.zeros(1, 1, h, w)
    total, done = len(ys) * len(xs), 0
    for y0 in ys:
        wy = _ramp(th, overlap, y0 > 0, y0 + th < h)
        for x0 in xs:
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < w)
            win = wy[:, None] * wx[None, :]
            out[..., y0 : y0 + th, x0 : x0 + tw] += run(x[..., y0 : y0 + th, x0 : x0 + tw]) * win
            weight[..., y0 : y0 + th, x0 : x0 + tw] += win
            done += 1
            if progress:
                progress(Progress(done, total))
    return out.div_(weight)
