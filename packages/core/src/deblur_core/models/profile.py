"""Model cost: parameter counts, FLOPs per megapixel (``torch.utils.flop_counter``) and activation memory
per pixel (the peak of the tensors alive during a forward pass)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .registry import get_model

__all__ = [
    "ModelProfile", "activation_bytes_per_pixel", "count_gflop", "count_parameters", "gflops_per_megapixel",
    "profile_model",
]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflop(model: nn.Module, shape: tuple[int, ...], *, backward: bool = False) -> float:
    """FLOPs of one eval-mode forward pass, or one train-mode forward + backward pass, on an input of
    ``shape`` (B, C, H, W), in GFLOP.

    A multiply-add counts as two FLOPs (FlopCounterMode's convention); padding to the network's stride
    counts, as it is computed. The pass runs on a copy of ``model`` on the meta device: shapes only, no
    arithmetic, so even the heaviest variant at 1280x720 is counted in milliseconds.

    Example:
        >>> count_gflop(torch.nn.Conv2d(3, 16, 3, padding=1), (1, 3, 1000, 1000))  # 2 x 3 x 16 x 9 x 10^6
        0.864
    """
    meta = _to_meta(model).train(backward)
    x = torch.empty(shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(backward):
        out = meta(x)
        if backward:
            outs = out if isinstance(out, list) else [out]
            sum(o.sum() for o in outs).backward()
    return counter.get_total_flops() / 1e9


def gflops_per_megapixel(model: nn.Module, size: int = 256, in_channels: int | None = None) -> float:
    """FLOPs of one eval-mode forward pass, per million input pixels, in GFLOP.

    Counted by :func:`count_gflop` on a ``size`` x ``size`` input that is a multiple of every model's
    stride, so padding adds nothing; the networks are fully convolutional, so the count scales with the
    pixel count.
    """
    c = in_channels if in_channels is not None else getattr(model, "in_channels", 3)
    return count_gflop(model, (1, c, size, size)) / (size * size) * 1e6


def activation_bytes_per_pixel(model: nn.Module, size: int = 256, in_channels: int | None = None) -> float:
    """Peak bytes of the tensors alive during one inference forward pass, per input pixel.

    Every tensor an operation creates is followed until its storage is freed, and the largest total alive
    at once is the peak; the input counts, the weights do not. Counted like :func:`gflops_per_megapixel`, on
    the meta device (shapes only, milliseconds), in fp32 under ``torch.inference_mode``, on a ``size`` x
    ``size`` input. The activations of these fully convolutional networks scale with the pixel count, so
    the figure holds at any frame size (``srn``: 924 bytes/pixel at 256x256 and at 512x768).

    It is a lower bound of what the process needs: on this project's CPU the resident memory rose by
    1.0-1.5x the count during a forward pass (``caessc-d30-f64`` 4364 counted, 4364 measured at 640x360;
    ``srn`` 924 and 1171 at 1280x720; ``nafnet`` 548 and 812 at 1280x720), the rest being oneDNN's
    buffers and freed memory the allocator keeps.
    """
    c = in_channels if in_channels is not None else getattr(model, "in_channels", 3)
    # the layout inference runs in: channels_last, unless the network says it takes plain NCHW
    layout = torch.channels_last if getattr(model, "channels_last", True) else torch.contiguous_format
    meta = _to_meta(model).to(memory_format=layout)
    x = torch.empty(1, c, size, size, device="meta").contiguous(memory_format=layout)
    with torch.inference_mode(), _PeakMemory() as peak:
        peak.track(x)
        meta(x)
    return peak.bytes / (size * size)


class _PeakMemory(TorchDispatchMode):
    """The most bytes held at once by the storages of the tensors created inside the mode (and tracked ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}  # storage id -> (weak reference, bytes)
        self.bytes = 0

    def track(self, value: object) -> None:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            ref = StorageWeakRef(storage)
            self.live.setdefault(ref.cdata, (ref, storage.nbytes()))  # views and in-place ops add nothing

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_leaves(out):
            self.track(value)
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.bytes = max(self.bytes, sum(n for _, n in self.live.values()))
        return out


def _to_meta(model: nn.Module) -> nn.Module:
    import copy

    meta = copy.deepcopy(model).to("meta")
    meta.eval()
    return meta


@dataclass(frozen=True)
class ModelProfile:
    name: str
    params: int
    gflops_per_mp: float


def profile_model(name: str) -> ModelProfile:
    """Parameters and GFLOP per megapixel of the registered variant ``name`` (RGB)."""
    model = get_model(name)
    return ModelProfile(name=name, params=count_parameters(model), gflops_per_mp=gflops_per_megapixel(model))
