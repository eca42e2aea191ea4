"""A network ready for inference (:class:`Deblurrer`) and the one function that runs networks on frames.

``load_deblurrer`` picks the weights (a file, or the ones shipped for the variant, or none) and prepares the
network for fast inference; :func:`deblur_tensor` runs it on a batch, whole where the frames fit the
device's memory budget and in overlapping tiles where they do not (:mod:`.tiles`), so memory stays bounded
whatever the frame size. :func:`deblur_core.precision.inference_dtype` decides the arithmetic: bf16 autocast
where the hardware multiplies bf16 natively and fast, fp32 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import load_model, pretrained_path
from ..defaults import DEFAULT_MODEL
from ..models import activation_bytes_per_pixel, get_model
from ..models.nafnet import use_tlc
from ..published import checkpoint_kind, load_published
from ..precision import autocast, check_precision, inference_dtype, precision_name
from ..progress import Progress, ProgressFn
from ..tta import check_tta, with_tta
from .device import memory_budget, resolve_device
from .tiles import TilePlan, plan_batch, run_tiles

__all__ = ["Deblurrer", "load_deblurrer", "deblur_tensor", "bytes_per_pixel", "NON_FINITE_OUTPUT", "weights_source"]

# Activations are counted on the meta device (models.activation_bytes_per_pixel); the resident memory of a
# CPU forward pass rose by 1.0-1.5x the count (oneDNN's buffers, memory the allocator keeps), so plan with 1.5x.
_MEASURED_OVER_COUNTED = 1.5
# What a network that cannot be counted is assumed to take: red30's count, the heaviest variant here.
_UNCOUNTED_BYTES_PER_PIXEL = 8716 * _MEASURED_OVER_COUNTED
_counted: dict[str, float] = {}  # architecture (the module's repr) -> bytes per pixel

# Why a frame's output is refused: finite weights can still give NaN (an overflow in fp16, an input the network
# was never meant for), and an image would store it as black.
NON_FINITE_OUTPUT = ("the network's output holds NaN though its weights are finite (an overflow of reduced "
                     "precision does that: --precision fp32 avoids it)")

Tile = int | tuple[int, int] | None


def bytes_per_pixel(model: nn.Module) -> float:
    """Memory ``model`` takes per input pixel at its peak: counted activations x 1.5; counted once per
    architecture, in a fraction of a second."""
    key = repr(model)  # the architecture: weights do not change the activations
    if key not in _counted:
        try:
            _counted[key] = activation_bytes_per_pixel(model) * _MEASURED_OVER_COUNTED
        except (RuntimeError, NotImplementedError):  # a network that cannot run on the meta device
            _counted[key] = _UNCOUNTED_BYTES_PER_PIXEL
    return _counted[key]


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
        return bytes_per_pixel(self.model)

    @property
    def budget(self) -> int:
        """Bytes of activations one batch or tile may take on its device (see :func:`.device.memory_budget`)."""
        return memory_budget(self.device)

    @property
    def published(self) -> dict[str, Any]:
        """What spandrel detected in a published checkpoint (architecture, tags, label, licence, size
        requirements, precisions; see :func:`deblur_core.published.load_published`); empty for this project's."""
        return self.meta.get("published", {})

    def plan(self, height: int, width: int, *, batch_size: int = 1, overlap: int = 32) -> TilePlan:
        """How frames of ``height`` x ``width`` run on this device (see :func:`.tiles.plan_batch`)."""
        size = self.published.get("size_requirements", {})
        return plan_batch(height, width, bytes_per_pixel=self.bytes_per_pixel, budget=self.budget,
                          batch_size=batch_size, overlap=overlap, multiple=size.get("multiple_of", 1),
                          square=size.get("square", False))

    def __call__(self, x: Tensor, *, tile: Tile = None, overlap: int = 32,
                 progress: ProgressFn | None = None) -> Tensor:
        """Deblur a (B, C, H, W) batch in its arithmetic; keywords as :func:`deblur_tensor`'s."""
        return _deblur(self, x, tile=tile, overlap=overlap, progress=progress)


def load_deblurrer(
    name: str | None = None,
    weights: str | Path | None = None,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    tta: int = 1,
    tlc: bool = False,
) -> Deblurrer:
    """Build variant ``name`` with ``weights`` or its shipped weights if any, to run at ``precision``
    (``auto``, ``fp32``, ``bf16`` or ``fp16``; see :func:`deblur_core.precision.inference_dtype`), averaged
    over ``tta`` flips and rotations of each input (1, 2, 4 or 8; see :mod:`deblur_core.tta`). ``tlc``: a
    NAFNet's channel attention pools over windows of 1.5 training crops instead of the whole frame
    (:func:`deblur_core.models.nafnet.use_tlc`; other networks refuse it with a ValueError).

    ``weights``: a checkpoint of this project (its variant is read from it, so ``name`` may be left out), or
    a published one that spandrel recognises (``.pth``, ``.ckpt``, ``.pt`` or ``.safetensors``; see
    :mod:`deblur_core.published`), whose architecture is detected and which takes no ``name``. Neither:
    ``name``, by default :data:`deblur_core.defaults.DEFAULT_MODEL`.

    channels_last is oneDNN's preferred layout for convolutions on x86 CPUs and suits tensor cores on GPUs.
    """
    dev = resolve_device(device)
    check_precision(precision)
    check_tta(tta)
    model, meta, name, path = _build(name, weights)
    if tlc:
        use_tlc(model, meta)
    model = model.to(dev)
    dtype = inference_dtype(precision, dev, model)
    if channels_last and getattr(model, "channels_last", True):
        model = model.to(memory_format=torch.channels_last)
    return Deblurrer(model=with_tta(model, tta), name=name, device=dev, weights=path, meta=meta, dtype=dtype)


def weights_source(name: str | None, weights: str | Path | None) -> tuple[str | None, Path | None]:
    """The variant and the weight file :func:`load_deblurrer` takes for ``name`` and ``weights``: with no
    ``weights``, variant ``name`` (None: :data:`deblur_core.defaults.DEFAULT_MODEL`) and its shipped file
    (None where none ships); else ``name`` as given (None: read from the file) and ``weights``."""
    if weights is None:
        name = name or DEFAULT_MODEL
        return name, pretrained_path(name)
    return name, Path(weights)


def _build(name: str | None, weights: str | Path | None) -> tuple[nn.Module, dict[str, Any], str, Path | None]:
    """(model in eval mode, its checkpoint's meta, the name it is shown by, the weights' path or None)."""
    name, path = weights_source(name, weights)
    if weights is None:
        if path is None:
            return get_model(name).eval(), {}, name, None
        model, meta = load_model(path, expect=name)
        return model, meta, name, path
    if checkpoint_kind(path) == "project":
        model, meta = load_model(path, expect=name)
        return model, meta, name or meta["model"], path
    if name is not None:
        raise ValueError(f"'{path.name}' is a published checkpoint, whose architecture is detected from it; "
                         f"leave out the model name ('{name}'), which names this project's variants")
    model, meta = load_published(path)
    return model, meta, meta["published"]["label"], path


def deblur_tensor(
    model: nn.Module,
    x: Tensor,
    *,
    device: torch.device | str | None = None,
    precision: str = "auto",
    tile: Tile = None,
    overlap: int = 32,
    progress: ProgressFn | None = None,
) -> Tensor:
    """Deblur a (B, C, H, W) batch in [0, 1]; the result is on the CPU, float32, same shape.

    Args:
        model: a network in eval mode (see :func:`load_deblurrer`).
        device: where to run; defaults to the model's device.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast (see
            :func:`deblur_core.precision.inference_dtype`); the result is float32 whatever the arithmetic.
        tile: run frames larger than ``tile`` x ``tile`` (or ``tile`` = (height, width)) in overlapping tiles
            of that size. None: as the device's memory budget plans (:meth:`Deblurrer.plan`): frames that fit
            run whole, in chunks of the batch that fit, larger ones alone in tiles.
        overlap: pixels shared by neighbouring tiles, blended with linear ramps.
        progress: called after each tile (or whole chunk of frames) with the count done and the total.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    deb = Deblurrer(model=model, name=type(model).__name__, device=dev, weights=None,
                    dtype=inference_dtype(precision, dev, model))
    return deb(x, tile=tile, overlap=overlap, progress=progress)


def _run(model: nn.Module, x: Tensor, device: torch.device, dtype: torch.dtype | None) -> Tensor:
    x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with autocast(device, dtype):
        y = model(x)
    return y.float().clamp_(0, 1).cpu()


@torch.inference_mode()
def _deblur(deb: Deblurrer, x: Tensor, *, tile: Tile = None, overlap: int = 32,
            progress: ProgressFn | None = None) -> Tensor:
    """:meth:`Deblurrer.__call__`: whole frames, chunks of the batch, or tiles, as ``tile`` or the plan says."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape

    def run(t: Tensor) -> Tensor:
        return _run(deb.model, t, deb.device, deb.dtype)

    if tile is None:
        plan = deb.plan(h, w, batch_size=b, overlap=overlap)
        if plan.tile is None:  # whole frames, in chunks of the batch that fit
            outs = []
            for i in range(0, b, plan.frames):
                outs.append(run(x[i : i + plan.frames]))
                if progress:
                    progress(Progress(len(outs), -(-b // plan.frames)))
            return outs[0] if len(outs) == 1 else torch.cat(outs)
        # frames too large to run whole: each alone, in the plan's tiles
        return torch.cat([run_tiles(run, x[i : i + 1], plan.tile, overlap, progress) for i in range(b)])
    tile_hw = (tile, tile) if isinstance(tile, int) else tile
    if min(tile_hw) <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    if h <= tile_hw[0] and w <= tile_hw[1]:
        y = run(x)
        if progress:
            progress(Progress(1, 1))
        return y
    return run_tiles(run, x, tile_hw, overlap, progress)
