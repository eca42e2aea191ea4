"""A small explicit model registry, in the manner of torchvision's ``_api``.

Each named variant is a builder function registered with :func:`register_model`. Builders take keyword
arguments that override the variant's defaults, so ``get_model("srn", in_channels=1)`` works for every
variant.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["register_model", "get_model", "list_models", "model_builder"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name``; a second registration of the same name is a bug."""

    def wrapper(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"a model named '{name}' is already registered")
        _MODELS[name] = fn
        return fn

    return wrapper


def list_models() -> list[str]:
    """Names of every registered variant, in registration order."""
    return list(_MODELS)


def model_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; available: {', '.join(_MODELS)}") from None


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the variant ``name``; ``kwargs`` override its constructor defaults."""
    return model_builder(name)(**kwargs)
