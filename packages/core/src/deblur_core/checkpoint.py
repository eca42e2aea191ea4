"""Checkpoints: safetensors weights with the JSON metadata needed to rebuild the model.

One ``.safetensors`` file holds both: the tensors, and in the header's metadata a ``deblur`` entry with
JSON (model name, constructor kwargs, training config, metrics, project version). Loading rebuilds the
model through the registry and copies the tensors in; nothing is ever unpickled, so a weight file from a
stranger cannot run code.

Every load refuses weights that hold NaN or infinity (a network with one such value computes NaN for every
pixel, which an image stores as black), and a file whose tensors do not fit the model, in one line; the
whole list of names goes to this module's log at DEBUG level (``deblur-cli --verbose`` shows it).
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import CheckpointError
from .io.atomic import atomic_path
from .models import get_model, list_models

__all__ = [
    "save_checkpoint",
    "read_metadata",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "check_finite",
    "pretrained_path",
    "save_train_state",
    "load_train_state",
]

_META_KEY = "deblur"
_TRAIN_KEY = "deblur_train"  # a resumable training state: weights, optimizer moments, RNG
# the first bytes of torch.save zip archives and of raw pickles (protocol 2+)
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_NAMES_SHOWN = 2  # names of each kind of mismatch a message shows; the log has them all
_log = logging.getLogger(__name__)


def _version() -> str:
    from . import __version__

    return __version__


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    name: str,
    kwargs: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model``'s weights and metadata to ``path`` atomically (temp file + rename).

    Args:
        name: registry name of the variant, used to rebuild it.
        kwargs: constructor overrides given to ``get_model`` (must be JSON-serialisable).
        config, metrics, extra: JSON-serialisable records kept beside the weights.
        dtype: store floating tensors in this dtype (e.g. ``torch.float16`` for shipped weights);
            they are loaded back as float32.
    """
    path = Path(path)
    meta = {
        "model": name,
        "kwargs": kwargs or {},
        "config": config or {},
        "metrics": metrics or {},
        "version": _version(),
        **(extra or {}),
    }
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={_META_KEY: json.dumps(meta, default=_json_default)})
    return path


def _json_default(o):
    if isinstance(o, (Path,)):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in checkpoint metadata")


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"weight file '{path}' does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(PICKLE_MAGIC):
        raise CheckpointError(
            f"'{path}' is a pickled PyTorch checkpoint, where this project's own .safetensors checkpoints are "
            "needed. A published checkpoint runs with --weights in batch, eval, export and the demo; "
            "'deblur-cli convert' writes its tensors as .safetensors"
        )


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata stored in a checkpoint, without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a valid safetensors file: {e}") from None
    if raw is None:
        raise CheckpointError(f"'{path}' has no '{_META_KEY}' metadata: it was not written by save_checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"'{path}' has malformed metadata: {e}") from None
    if meta.get("model") not in list_models():
        raise CheckpointError(f"'{path}' is for model '{meta.get('model')}', which is not registered")
    return meta


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (as float32 where floating) and metadata of a checkpoint."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a valid safetensors file: {e}") from None
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    check_finite(path, tensors)
    return tensors, meta


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse tensors holding NaN or infinity, naming the first such tensor: one NaN weight makes the network
    compute NaN everywhere, and every frame would be written black without an error."""
    for name, value in tensors.items():
        if value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CheckpointError(
                    f"'{path}' holds non-finite weights: tensor '{name}' has {bad} NaN or infinite value(s) of "
                    f"{value.numel()}; the network would turn every image black. Use weights saved before the "
                    "training run diverged")


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | os.PathLike, name: str) -> None:
    """Copy ``tensors`` into ``model`` (variant ``name``), which must hold exactly these names and shapes.

    Raises:
        CheckpointError: names missing, unexpected or of another shape, summarised in one line (counts and
            the first names); the full lists are logged at DEBUG level.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    reshaped = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if not (missing or unexpected or reshaped):
        model.load_state_dict(tensors, strict=True)
        return
    _log.debug("'%s' against model '%s': missing %s; unexpected %s; another shape %s", path, name, missing,
               unexpected, [f"{k} {tuple(tensors[k].shape)} in the file, {tuple(own[k].shape)} in the model"
                            for k in reshaped])
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(own)} tensors missing ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape ({k}: {tuple(tensors[k].shape)} in the file, "
                     f"{tuple(own[k].shape)} in the model)")
    raise CheckpointError(f"'{path}' does not fit model '{name}': {'; '.join(parts)} "
                          "('deblur-cli --verbose ...' lists every name)")


def _first(names: list[str]) -> str:
    return ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")


def load_model(path: str | os.PathLike, *, expect: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, metadata).

    ``expect``: the variant the caller asked for; a checkpoint of another variant is refused.
    """
    tensors, meta = load_checkpoint(path)
    if expect is not None and meta["model"] != expect:
        raise CheckpointError(f"'{path}' holds weights for '{meta['model']}', not '{expect}'")
    model = get_model(meta["model"], **meta.get("kwargs", {}))
    load_weights(model, tensors, path, meta["model"])
    return model.eval(), meta


def pretrained_path(name: str) -> Path | None:
    """Path of the weights shipped in the package for variant ``name``, or None if none ship."""
    p = Path(str(resources.files("deblur_core") / "weights" / f"{name}.safetensors"))
    return p if p.is_file() else None


def save_train_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                     meta: dict[str, Any]) -> None:
    """Everything a run needs to continue exactly: weights, optimizer moments and the CPU RNG state in one
    safetensors file (written atomically), ``meta`` (JSON: step, config, ...) in its header."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = optimizer.state_dict()
    for idx, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    tensors["rng.cpu"] = torch.get_rng_state()
    header = {**meta, "param_groups": osd["param_groups"]}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, tmp, metadata={_TRAIN_KEY: json.dumps(header, default=_json_default)})


def load_train_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_train_state` wrote into ``model``, ``optimizer`` and the CPU RNG; returns
    its ``meta``.

    Raises:
        CheckpointError: not a training state of this project.
    """
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_TRAIN_KEY])
        tensors = load_file(str(path))
    except (SafetensorError, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"'{path}' is not a training state of this project ({type(err).__name__})") from err
    check_finite(path, tensors)  # the optimizer's moments too: a NaN there reaches the weights at the next step
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path,
                 meta.get("config", {}).get("model", type(model).__name__))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    # moments come back contiguous; give them their parameter's layout (channels_last), which fused
    # optimizers require
    for p, st in optimizer.state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)
    torch.set_rng_state(tensors["rng.cpu"])
    return meta
