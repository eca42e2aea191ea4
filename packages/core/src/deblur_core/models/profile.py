"""Model cost: parameter counts and FLOPs per megapixel, counted by ``torch.utils.flop_counter``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import get_model

__all__ = ["ModelProfile", "count_parameters", "gflops_per_megapixel", "profile_model"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops_per_megapixel(model: nn.Module, size: int = 256, in_channels: int | None = None) -> float:
    """FLOPs of one eval-mode forward pass, per million input pixels, in GFLOP.

    Counted on a ``size`` x ``size`` input that is a multiple of every model's stride, so padding adds
    nothing; the networks are fully convolutional, so the count scales with the pixel count. A
    multiply-add counts as two FLOPs (FlopCounterMode's convention). The pass runs on the meta device:
    shapes only, no arithmetic, so even the heaviest variant is counted in milliseconds.
    """
    c = in_channels if in_channels is not None else getattr(model, "in_channels", 3)
    meta = _to_meta(model)
    x = torch.empty(1, c, size, size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() / (size * size) * 1e6 / 1e9


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

    def as_dict(self) -> dict:
        return asdict(self)


def profile_model(name: str) -> ModelProfile:
    """Parameters and GFLOP per megapixel of the registered variant ``name`` (RGB)."""
    model = get_model(name)
    return ModelProfile(name=name, params=count_parameters(model), gflops_per_mp=gflops_per_megapixel(model))
