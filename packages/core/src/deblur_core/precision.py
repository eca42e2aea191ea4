"""The arithmetic networks run in: precision names, what ``auto`` means, and the autocast around a forward pass.

A precision is a name (:data:`PRECISIONS`); :data:`DTYPES` is the one table from names to dtypes. The rules
resolve ``auto`` for a device, to an autocast dtype or None for plain fp32: :func:`inference_dtype` (bf16
where the hardware multiplies it natively and fast) and :func:`autocast_dtype` (training's: the same, for
every network).
"""

from __future__ import annotations

import torch

__all__ = ["PRECISIONS", "DTYPES", "check_precision", "cpu_has_amx_bf16", "inference_dtype", "autocast_dtype",
           "precision_name", "autocast"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # every name but auto


def check_precision(precision: str) -> None:
    """Raises ValueError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 in AMX tiles (Intel Xeon since Sapphire Rapids), as torch reports it.

    Only there is bf16 known to pay on a CPU; a CPU without native bf16 instructions emulates it, far slower
    than fp32 (docs/speed.md has the measurements).
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # older torch has only the private query
    if capabilities is not None:
        amx = bool(capabilities().get("amx_bf16", False))
    else:
        amx = torch.cpu._is_amx_tile_supported()
    return amx and torch.backends.mkldnn.is_available()


def inference_dtype(precision: str = "auto", device: str | torch.device = "cpu",
                    model: torch.nn.Module | None = None) -> torch.dtype | None:
    """The autocast dtype of inference at ``precision`` on ``device``, or None for plain fp32.

    ``auto`` is bf16 on CUDA GPUs with native bf16 (Ampere and later), fp16 on older CUDA GPUs (their
    tensor cores take fp16), bf16 on CPUs with AMX (:func:`cpu_has_amx_bf16`) unless ``model`` says its
    own fp32 CPU path is faster (``cpu_autocast = False``: the nafnet models), and fp32 on every other
    CPU. ``fp32``, ``bf16`` and ``fp16`` are honoured on any device (bf16 on a CPU without AMX is correct
    but may be far slower than fp32). A ``model`` that says it cannot run a half precision
    (``supports_half`` or ``supports_bfloat16`` False: published networks, as spandrel reports them) refuses
    it when asked by name, and ``auto`` chooses among the others.

    Raises:
        ValueError: an unknown precision, or one ``model`` does not support.

    Example:
        >>> inference_dtype("bf16", "cpu")
        torch.bfloat16
        >>> inference_dtype("fp32", "cuda") is None
        True
    """
    check_precision(precision)
    runs = {torch.float16: getattr(model, "supports_half", True),
            torch.bfloat16: getattr(model, "supports_bfloat16", True)}
    if precision != "auto":
        dtype = DTYPES[precision]
        if dtype != torch.float32 and not runs[dtype]:
            name = getattr(model, "architecture", type(model).__name__)
            raise ValueError(f"{name} does not support {precision}; use --precision fp32"
                             + (" or bf16" if runs[torch.bfloat16] else ""))
        return None if dtype == torch.float32 else dtype
    dev = torch.device(device)
    if dev.type == "cuda":
        if runs[torch.bfloat16] and torch.cuda.is_bf16_supported(including_emulation=False):
            return torch.bfloat16
        return torch.float16 if runs[torch.float16] else None
    if dev.type == "cpu" and getattr(model, "cpu_autocast", True) and runs[torch.bfloat16] and cpu_has_amx_bf16():
        return torch.bfloat16
    return None


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of a training run, or None for plain fp32.

    ``auto``: on GPUs bf16 where native, else fp16 (as :func:`inference_dtype`); on CPUs bf16 where they
    multiply it in AMX tiles (:func:`cpu_has_amx_bf16`), where it is the faster arithmetic and trains networks
    no worse (docs/speed.md, docs/darkening.md), and fp32 on every other CPU, where bf16 is emulated. Unlike inference, the nafnet models train under bf16 too: their fast fp32
    path serves inference only.

    Raises:
        ValueError: an unknown precision.
    """
    check_precision(precision)
    if precision == "auto" and torch.device(device).type == "cpu":
        return torch.bfloat16 if cpu_has_amx_bf16() else None
    return inference_dtype(precision, device)


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: the name of a dtype of :data:`DTYPES` (None: fp32).

    Raises:
        ValueError: a dtype that is not in the table.
    """
    dtype = torch.float32 if dtype is None else dtype
    for name, d in DTYPES.items():
        if d == dtype:
            return name
    raise ValueError(f"no precision name for {dtype}; expected one of {', '.join(map(str, DTYPES.values()))}")


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on ``device``'s type; for None or float32, autocast off (plain fp32, even inside
    an enclosing autocast)."""
    off = dtype is None or dtype == torch.float32
    return torch.autocast(torch.device(device).type, dtype=torch.float32 if off else dtype, enabled=not off)
