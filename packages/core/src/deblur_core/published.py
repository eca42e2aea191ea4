"""Checkpoints published by the field's authors (NAFNet, FFTformer, Restormer, ...), loaded through spandrel.

spandrel recognises an architecture and its hyperparameters from a state dict's keys and builds the network;
this module decides what may be read and what may run:

- A checkpoint is data. ``.safetensors`` files hold only tensors; ``.pth``/``.ckpt``/``.pt`` pickles are read
  by torch's restricted unpickler (``weights_only=True``), which refuses any class or function outside its
  short list of tensor types before it calls anything; TorchScript archives (code by design) are refused
  unopened. spandrel's own file loader is not used: it hands ``.pt`` files to ``torch.jit.load`` first.
- Only 1x image-to-image restoration models load: super-resolution, face and inpainting models are refused
  with the scale or purpose spandrel reports.
- NAFNet checkpoints load into this project's own NAFNet (same architecture, other parameter names), so its
  fast CPU path and TLC apply to them; every other architecture runs as spandrel builds it, padded to its
  size requirements by spandrel's own call.

spandrel (the ``zoo`` extra) is imported only here and only when such a file is loaded.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import PICKLE_MAGIC, check_finite, load_weights
from .errors import CheckpointError

__all__ = [
    "PUBLISHED", "Published", "PublishedNet", "ZOO_INSTALL", "checkpoint_kind", "load_published",
    "read_state_dict", "convert_checkpoint", "licence_of",
]

ZOO_INSTALL = "pip install 'deblur-toolkit[zoo]'"
EXTRA_INSTALL = "pip install spandrel-extra-arches"
# the suffixes of pickled checkpoints; everything else must be safetensors
PICKLE_SUFFIXES = (".pth", ".ckpt", ".pt", ".bin")
# the training crop of NAFNet's published GoPro and REDS models, which TLC's window is measured in
_NAFNET_TRAIN_PATCH = 256


@dataclass(frozen=True)
class Published:
    """What this project knows of an architecture that deblurs (spandrel knows no licences)."""

    licence: str
    extra: bool  # only in spandrel-extra-arches (non-commercial or copyleft code)
    source: str  # where its authors publish code and weights


# Architectures spandrel detects whose authors publish deblurring weights; the licence is that of the
# authors' code, which spandrel copies. MODELS.md ("Published checkpoints") has their data and figures.
PUBLISHED: dict[str, Published] = {
    "NAFNet": Published("MIT", False, "https://github.com/megvii-research/NAFNet"),
    "FFTformer": Published("MIT", False, "https://github.com/kkkls/FFTformer"),
    "Uformer": Published("MIT", False, "https://github.com/ZhendongWang6/Uformer"),
    "KBNet": Published("MIT", False, "https://github.com/zhangyi-3/KBNet"),
    "Restormer": Published("Academic Public License (non-commercial)", True, "https://github.com/swz30/Restormer"),
    "MPRNet": Published("Academic Public License (non-commercial)", True, "https://github.com/swz30/MPRNet"),
}


def licence_of(arch: str) -> str:
    """The licence of an architecture's code: from :data:`PUBLISHED`, else what spandrel's packaging implies."""
    if arch in PUBLISHED:
        return PUBLISHED[arch].licence
    if _extra_ids() and arch in _extra_ids():
        return "restrictive (non-commercial or copyleft): see spandrel-extra-arches"
    return "permissive (MIT, Apache-2.0 or public domain, as every architecture in spandrel itself)"


def checkpoint_kind(path: str | os.PathLike) -> str:
    """``"project"`` for a checkpoint this project wrote (safetensors with its metadata), ``"published"`` for
    anything else that could be a checkpoint (a pickle, or safetensors without that metadata).

    Raises:
        CheckpointError: the file does not exist, or claims to be safetensors and is not.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file '{path}' does not exist")
    with open(path, "rb") as f:
        pickled = f.read(4).startswith(PICKLE_MAGIC)
    if pickled or path.suffix.lower() in PICKLE_SUFFIXES:
        return "published"
    try:
        with safe_open(str(path), framework="pt") as f:
            return "project" if "deblur" in (f.metadata() or {}) else "published"
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a valid safetensors file: {e}") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, read as data: safetensors directly, pickles through torch's
    restricted unpickler, TorchScript never; unwrapped as spandrel does (``params_ema``, ``state_dict``,
    ``module.`` prefixes).

    Raises:
        CheckpointError: a missing or unreadable file, TorchScript, or a pickle that needs anything beyond
            tensors and plain containers (named, before any of it runs).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file '{path}' does not exist")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        _refuse_torchscript(path)
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  the restricted unpickler raises several types
            raise CheckpointError(f"'{path}' was refused: reading it needs more than tensors "
                                  f"({_first_line(e)}); nothing in it was run") from None
    else:
        try:
            data = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"'{path}' is not a valid safetensors file: {e}") from None
    state = _canonical(data)
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"'{path}' holds no state dict of tensors")
    return state


def _refuse_torchscript(path: Path) -> None:
    """TorchScript archives (``torch.jit.save``) carry code that loading runs; refuse them unopened."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(
            f"'{path}' is a TorchScript archive, which holds code that loading it would run; refused. Ask for "
            "the model's state dict (a .pth or .safetensors file) instead")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    # the restricted unpickler's reason is the line naming the global it refused, after paragraphs of advice
    line = next((ln for ln in text if "GLOBAL" in ln or "forbidden" in ln.lower()), text[0] if text else "")
    return re.sub(r"\s+", " ", line)[:200] or type(e).__name__


def _canonical(data: Any) -> dict[str, Tensor]:
    if not isinstance(data, dict):
        raise CheckpointError(f"a checkpoint must hold a dict of tensors, not {type(data).__name__}")
    try:
        from spandrel import canonicalize_state_dict
    except ImportError:  # without the extra, only the plain layout is read (convert needs no spandrel)
        return dict(data)
    return dict(canonicalize_state_dict(dict(data)))


def _spandrel():
    """spandrel with the extra architectures installed where present, or a CheckpointError naming the extra."""
    try:
        with warnings.catch_warnings():  # its torchvision import warns of deprecations that are not the user's
            warnings.simplefilter("ignore")
            import spandrel
    except ImportError as e:
        raise CheckpointError(f"published checkpoints (.pth, or .safetensors not written by this project) load "
                              f"through spandrel, which is not installed ({e}): {ZOO_INSTALL}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import spandrel_extra_arches
    except ImportError:
        return spandrel
    spandrel_extra_arches.install(ignore_duplicates=True)  # again is harmless: duplicates are skipped
    return spandrel


def _extra_ids() -> set[str]:
    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:
        return set()
    return {str(support.architecture.id) for support in EXTRA_REGISTRY.architectures()}


class PublishedNet(nn.Module):
    """A network spandrel built, run through spandrel's own call: padded to its size requirements (reflect),
    cropped back, clamped to [0, 1]. Its input is made NCHW-contiguous: some of these networks reshape with
    ``view``, which channels_last memory refuses."""

    channels_last = False

    def __init__(self, descriptor) -> None:
        super().__init__()
        self.net = descriptor.model
        self._call = descriptor  # not a Module: its network is registered once, as self.net
        req = descriptor.size_requirements
        self.multiple, self.square, self.minimum = req.multiple_of, req.square, req.minimum
        self.supports_half = descriptor.supports_half
        self.supports_bfloat16 = descriptor.supports_bfloat16
        self.architecture = descriptor.architecture.name
        self.in_channels = descriptor.input_channels

    def forward(self, x: Tensor) -> Tensor:
        # spandrel checks that input and weights share a dtype; under autocast the weights stay fp32
        return self._call(x.contiguous().float())


def load_published(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network of a published checkpoint; returns (model in eval mode, meta).

    ``meta`` holds ``published``: the architecture, spandrel's size tags, the label shown to users
    ("NAFNet 64w (NAFNet-GoPro-width64.pth)"), the licence, size requirements and the precisions spandrel
    says the network supports; NAFNet's also has the ``config`` patch of its published training, for TLC.

    Raises:
        CheckpointError: no spandrel, an unknown architecture, not a 1x 3-channel restoration model,
            non-finite weights, or a file refused by :func:`read_state_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file '{path}' does not exist")
    spandrel = _spandrel()  # before reading: without it, say so before reading hundreds of MB
    return _from_state(spandrel, path, read_state_dict(path))


def _from_state(spandrel, path: Path, state: dict[str, Tensor]) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_published` for the tensors ``state`` already read from ``path``."""
    check_finite(path, state)
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(dict(state))  # a loader may rename keys in place
    except spandrel.UnsupportedModelError:
        hint = "" if _extra_ids() else (f"; non-commercial architectures such as Restormer and MPRNet need "
                                        f"'{EXTRA_INSTALL}'")
        raise CheckpointError(f"'{path}' is not a checkpoint of an architecture spandrel knows{hint}") from None
    except Exception as e:  # noqa: BLE001  an architecture's loader failing on odd keys
        raise CheckpointError(f"'{path}': spandrel could not build its network ({_first_line(e)})") from None
    arch = desc.architecture.id
    _check_kind(path, desc, arch)
    tags = list(desc.tags)
    req = desc.size_requirements
    info = {
        "architecture": arch,
        "tags": tags,
        "label": " ".join([arch, *tags]) + f" ({path.name})",
        "licence": licence_of(arch),
        "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of, "square": req.square},
        "supports_half": desc.supports_half,
        "supports_bfloat16": desc.supports_bfloat16,
        "purpose": desc.purpose,
    }
    if arch == "NAFNet":
        model, kwargs = _project_nafnet(desc)
        return model.eval(), {"model": "nafnet", "kwargs": kwargs, "config": {"patch": _NAFNET_TRAIN_PATCH},
                              "published": info}
    return PublishedNet(desc).eval(), {"published": info}


def _check_kind(path: Path, desc, arch: str) -> None:
    """Refuse what is not a 1x RGB image-to-image restoration model, with what spandrel says it is."""
    purpose = getattr(desc, "purpose", "Inpainting")
    if purpose == "SR" or desc.scale != 1:
        raise CheckpointError(f"'{path}' is a {desc.scale}x super-resolution model ({arch}); this tool deblurs "
                              "frames at their own size")
    if purpose != "Restoration":
        raise CheckpointError(f"'{path}' is a {purpose} model ({arch}), not an image restoration model")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise CheckpointError(f"'{path}' ({arch}) maps {desc.input_channels} channels to "
                              f"{desc.output_channels}; only RGB-to-RGB models run here")


# the official NAFNet's parameter names -> this project's (same tensors, same shapes)
_NAFNET_RENAMES = ((".conv2.", ".dwconv."), (".conv3.", ".conv2."), (".conv4.", ".ffn1."), (".conv5.", ".ffn2."))


def _project_nafnet(desc) -> tuple[nn.Module, dict[str, Any]]:
    """The project's NAFNet holding a published NAFNet's weights; it pads with zeros, as the official one."""
    from .models import get_model

    net = desc.model
    kwargs = {"width": net.intro.out_channels, "enc_blocks": [len(e) for e in net.encoders],
              "middle_blocks": len(net.middle_blks), "dec_blocks": [len(d) for d in net.decoders]}
    model = get_model("nafnet", **{**kwargs, "enc_blocks": tuple(kwargs["enc_blocks"]),
                                   "dec_blocks": tuple(kwargs["dec_blocks"])})
    tensors = {}
    for key, value in net.state_dict().items():
        key = key.replace("middle_blks.", "middle.")
        for official, ours in _NAFNET_RENAMES:  # at most one per name: conv3 becomes conv2, which is not renamed again
            if official in key:
                key = key.replace(official, ours)
                break
        tensors[key] = value
    load_weights(model, tensors, "published NAFNet", "nafnet")
    model.pad_zeros = True
    return model, kwargs


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """Write the tensors of checkpoint ``src`` (read as :func:`read_state_dict` does) to ``dst`` as
    safetensors, atomically; returns (dst, the published info spandrel detected, empty without spandrel)."""
    from safetensors.torch import save_file

    from .io.atomic import atomic_path

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise ValueError(f"the converted file must end in .safetensors, got '{dst}'")
    if dst.resolve() == src.resolve():
        raise ValueError("the converted file must not replace the original")
    state = read_state_dict(src)
    try:
        spandrel = _spandrel()
    except CheckpointError:  # not installed: the tensors are converted all the same, unchecked
        info: dict[str, Any] = {}
    else:  # refuse what --weights would refuse, from the tensors already read
        info = _from_state(spandrel, src, state)[1]["published"]
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}  # shared storage cannot be saved
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        save_file(tensors, tmp, metadata={"converted_from": src.name,
                                          **({"architecture": info["architecture"]} if info else {})})
    return dst, info
