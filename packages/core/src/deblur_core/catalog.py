"""What the project offers: every registered variant with its cost and whether trained weights ship."""

from __future__ import annotations

import inspect
from typing import Any

from .checkpoint import pretrained_path, read_metadata
from .models import list_models, profile_model
from .models.registry import model_builder

__all__ = ["model_catalog", "trained_on", "gaussian_only"]


def model_catalog() -> list[dict[str, Any]]:
    """One record per variant: name, params, gflops_per_mp, weights (bool), summary, the validation metrics
    stored with the shipped weights and what they were trained on (empty when none ship). Variants with
    weights come first."""
    rows = []
    for name in list_models():
        prof = profile_model(name)
        path = pretrained_path(name)
        meta = read_metadata(path) if path is not None else {}
        doc = inspect.getdoc(model_builder(name)) or ""
        rows.append(
            {
                "name": name,
                "params": prof.params,
                "gflops_per_mp": round(prof.gflops_per_mp, 2),
                "weights": path is not None,
                "summary": doc.split("\n\n")[0].replace("\n", " ").replace("``", "'"),
                "metrics": meta.get("metrics", {}),
                "trained_on": trained_on(meta.get("config", {})),
            }
        )
    rows.sort(key=lambda r: not r["weights"])  # stable: registry order within each group
    return rows


def trained_on(cfg: dict[str, Any]) -> str:
    """"default, mix blur" for a training config: the blur only matters where data are blurred on the fly."""
    if not cfg:
        return ""
    data = cfg.get("data", "")
    return f"{data}, {cfg.get('blur')} blur" if _synthetic(data) else data


def gaussian_only(cfg: dict[str, Any]) -> bool:
    """Whether a training config saw gaussian blur only: the original project's recipe (``cifar10:``) or
    ``--blur gaussian`` on synthetic data. Such weights do not carry over to motion blur, which they can make
    worse (MODELS.md)."""
    data = cfg.get("data", "")
    return data.startswith("cifar10:") or (_synthetic(data) and cfg.get("blur") == "gaussian")


def _synthetic(data: str) -> bool:
    return data == "default" or data.startswith("folder:")  # sharp photos blurred on the fly by --blur
