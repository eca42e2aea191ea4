"""What the project offers: every registered variant with its cost and whether trained weights ship."""

from __future__ import annotations

import inspect
import os
from typing import Any

from .checkpoint import pretrained_path, read_metadata
from .models import list_models, profile_model
from .models.registry import model_builder

__all__ = ["model_catalog", "published_catalog", "describe_checkpoint", "trained_on", "gaussian_only"]


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


def published_catalog() -> list[dict[str, Any]]:
    """The published architectures that deblur (:data:`deblur_core.published.PUBLISHED`) with their licences."""
    from .published import PUBLISHED

    return [{"architecture": arch, "licence": p.licence, "needs": "spandrel-extra-arches" if p.extra else "spandrel",
             "source": p.source} for arch, p in PUBLISHED.items()]


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """What a checkpoint holds: its label, network, kind (this project's or published), licence, size
    requirements, precisions, parameters and GFLOPs per megapixel (counted on the meta device)."""
    from .inference import load_deblurrer
    from .models import gflops_per_megapixel

    deb = load_deblurrer(None, path, device="cpu", precision="fp32", channels_last=False)
    info = deb.published
    row: dict[str, Any] = {"label": deb.name, "file": str(path), "kind": "published" if info else "this project's"}
    if info:
        size = info["size_requirements"]
        rules = [f"multiple of {size['multiple_of']}"] if size["multiple_of"] > 1 else []
        rules += ["square"] * size["square"] + ([f"at least {size['minimum']} px"] if size["minimum"] else [])
        row.update(architecture=info["architecture"], licence=info["licence"],
                   size_requirements=", ".join(rules) or "none",
                   precisions=", ".join(["fp32"] + ["bf16"] * info["supports_bfloat16"] + ["fp16"] * info["supports_half"]))
    else:
        row.update(architecture=deb.meta.get("model", deb.name), licence="this project's (see LICENSE)")
    row["params"] = sum(p.numel() for p in deb.model.parameters())
    row["gflops_per_mp"] = round(gflops_per_megapixel(deb.model), 1)
    return row


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
