"""Export a network to ONNX, for runtimes without PyTorch (onnxruntime, OpenCV's dnn module, TensorRT).

The graph takes ``blurred``, float32 (batch, C, height, width) in [0, 1], and gives ``sharp`` of the same
shape, float32 clamped to [0, 1]; batch, height and width are free. ``sharp`` is what ``deblur-cli batch``
computes for a frame before quantising it (:func:`~deblur_core.inference.deblur_tensor` in fp32 on the whole
frame; batch may run bf16 or fp16 where ``--precision auto`` picks them, and tiles only frames beyond its
memory budget). The raw network output strays outside [0, 1] (from -2.6 to 3.4 on random noise), so the
clamp is part of the graph. The graph also holds the network's own padding: H and W are padded up to a
multiple of the network's stride by reflection (by replication where the image is smaller than the pad) and
the result cropped back, as :meth:`DeblurModel.forward <deblur_core.models.DeblurModel.forward>` does, so
any size works. That padding is written as index arithmetic, not as a branch on the size, because a traced
branch would freeze the choice made for the example input.

ONNX opset 18 is the least: ``srn`` downscales with antialiasing, which ONNX's Resize has had since 18
(``antialias=1``; onnxruntime computes it as torch does). Exporting needs ``onnx`` and ``onnxscript`` (the
``export`` extra); with ``onnxruntime`` installed, the file is checked on a small random input against
``deblur_tensor``'s fp32 output, to 1e-4.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import __version__
from .errors import DeblurError
from .inference import Deblurrer, load_deblurrer
from .io.atomic import atomic_path, unwritable
from .models import DeblurModel
from .published import PublishedNet

__all__ = ["ExportResult", "export_model"]

FORMATS = ("onnx",)
MIN_OPSET = 18
_CHECK_SHAPE = (2, 67, 93)  # batch, height, width of the example input and the onnxruntime check: no multiples
_CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    path: Path
    model: str
    weights: Path | None  # None: the untrained network (the identity)
    opset: int
    max_abs_diff: float | None  # onnxruntime against deblur_tensor in fp32 on a random input; None without it


def export_model(name: str | None, out: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                 format: str = "onnx", opset: int = MIN_OPSET) -> ExportResult:
    """Write variant ``name`` (with ``weights``, else its shipped weights, else untrained), or the network of
    a checkpoint ``weights`` (``name`` None: this project's or a published NAFNet), to ``out``.

    The graph pools the nafnet models' channel attention over the whole frame, as they were trained: it does
    not carry TLC (:func:`~deblur_core.inference.load_deblurrer`'s ``tlc``).

    Args:
        name: registry name of the variant; None: the default, or the network of ``weights``.
        out: the file to write (atomically; its folder is created).
        weights: a checkpoint (see :func:`~deblur_core.inference.load_deblurrer`).
        format: ``"onnx"``.
        opset: ONNX opset, at least 18.

    Returns:
        What was written, with the largest difference between onnxruntime's output and
        :func:`~deblur_core.inference.deblur_tensor`'s in fp32 (what ``deblur-cli batch`` computes) on a
        random (2, C, 67, 93) input where onnxruntime is installed.

    Raises:
        ValueError: an unknown variant or format, a published network other than NAFNet, an opset below 18,
            an ``out`` that cannot be a file.
        DeblurError: bad weights, missing export packages, or an export, write or check that failed.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format '{format}'; choose one of: {', '.join(FORMATS)}")
    try:
        import onnx
    except ImportError:
        raise DeblurError("ONNX export needs the onnx and onnxscript packages: "
                          "pip install 'deblur-toolkit[export]'") from None
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be between {MIN_OPSET} and {onnx.defs.onnx_opset_version()} (the newest this "
                         f"onnx knows), got {opset}: srn's antialiased downscaling needs ONNX Resize of opset 18")
    out = Path(out)
    _check_writable(out)
    deb = _exportable(name, weights)
    name, graph = deb.name, _ExportGraph(deb.model)
    example = torch.rand(_CHECK_SHAPE[0], deb.model.in_channels, *_CHECK_SHAPE[1:],
                         generator=torch.Generator().manual_seed(0))
    proto = _to_onnx(graph, example, opset)
    proto.doc_string = (f"deblur-toolkit {__version__}: '{name}' "
                        f"({'weights ' + deb.weights.name if deb.weights else 'untrained'}). Input 'blurred': float32 "
                        "(batch, C, height, width) in [0, 1], any batch, height and width; output 'sharp': the same "
                        "shape, clamped to [0, 1].")
    onnx.helper.set_model_props(proto, {"deblur.model": name, "deblur.weights": deb.weights.name if deb.weights else "",
                                        "deblur.version": __version__, "deblur.stride": str(deb.model.stride)})
    try:
        with atomic_path(out) as tmp:
            onnx.save_model(proto, tmp)
    except OSError as e:
        raise DeblurError(f"cannot write '{out}': {e.strerror or e}") from None
    diff = _check_with_onnxruntime(out, deb, example)
    return ExportResult(path=out, model=name, weights=deb.weights, opset=opset, max_abs_diff=diff)


def _exportable(name: str | None, weights: str | os.PathLike | None) -> Deblurrer:
    """The network to export, in fp32 on the CPU; a published one that does not run in this project's
    NAFNet is refused with a ValueError (its forward is spandrel's, whose padding is Python)."""
    deb = load_deblurrer(name, weights, device="cpu", precision="fp32", channels_last=False)
    if isinstance(deb.model, PublishedNet):
        raise ValueError(f"{deb.published['architecture']} is not exported: ONNX export covers this project's "
                         "networks and NAFNet checkpoints, which load into its own NAFNet; other published "
                         "networks run only through PyTorch here")
    return deb


class _ExportGraph(nn.Module):
    """``DeblurModel.forward`` for a fixed channel count, with its padding written without branches, and the
    result clamped to [0, 1] as :func:`~deblur_core.inference.deblur_tensor` clamps it."""

    def __init__(self, model: DeblurModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = self.model.stride
        if self.model.pad_zeros:  # pad_to_multiple(zeros=True) without its shape branch, which export cannot keep
            padded = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))
        else:
            padded = _pad_to_multiple(x, m)
        return self.model._forward(padded)[..., :h, :w].clamp(0, 1)


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """:func:`deblur_core.models.pad_to_multiple` as index arithmetic: the same values for every size.

    Rows (and columns) ``i`` beyond the image take ``2 * (n - 1) - i`` (reflection) where every such index
    of both axes is valid, else ``n - 1`` (replication), as ``pad_to_multiple`` chooses.
    """
    h, w = x.shape[-2:]
    rows = torch.arange((h + multiple - 1) // multiple * multiple, device=x.device)
    cols = torch.arange((w + multiple - 1) // multiple * multiple, device=x.device)
    reflected_rows = torch.where(rows < h, rows, 2 * (h - 1) - rows)
    reflected_cols = torch.where(cols < w, cols, 2 * (w - 1) - cols)
    reflect = (reflected_rows.min() >= 0) & (reflected_cols.min() >= 0)
    rows = torch.where(reflect, reflected_rows, rows.clamp(max=h - 1))
    cols = torch.where(reflect, reflected_cols, cols.clamp(max=w - 1))
    return x.index_select(-2, rows).index_select(-1, cols)


def _to_onnx(graph: nn.Module, example: Tensor, opset: int):
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about absent torchvision ops, irrelevant here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["blurred"],
                                        output_names=["sharp"], dynamic_shapes={"x": dims}, opset_version=opset,
                                        external_data=False, verbose=False)
    except ImportError as e:
        raise DeblurError(f"ONNX export needs {e.name or 'onnxscript'}: pip install 'deblur-toolkit[export]'") from None
    except Exception as e:  # the exporter's errors carry pages of advice: keep the first line of the cause
        cause = e.__cause__ or e
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise DeblurError(f"ONNX export failed: {type(cause).__name__}: {first}") from None
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    # the output has the input's shape: name its dimensions so (the exporter writes them as expressions)
    for name, dim in zip(("batch", None, "height", "width"), proto.graph.output[0].type.tensor_type.shape.dim):
        if name is not None:
            dim.dim_param = name
    return proto


def _check_writable(out: Path) -> None:
    if (problem := unwritable(out)) is not None:
        raise ValueError(f"cannot write '{out}': {problem}; name a writable .onnx file")


def _check_with_onnxruntime(path: Path, deb: Deblurrer, example: Tensor) -> float | None:
    """The largest difference between onnxruntime's output on ``example`` and ``deb``'s (deblur_tensor's)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"blurred": example.numpy()})[0]
    except Exception as e:  # e.g. an opset newer than this onnxruntime runs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DeblurError(f"'{path}' was written, but onnxruntime {onnxruntime.__version__} cannot run it: "
                          f"{first}") from None
    expected = deb(example).numpy()
    diff = float(abs(got - expected).max())
    if not diff <= _CHECK_TOLERANCE:
        raise DeblurError(f"the exported '{path}' differs from deblur_tensor's fp32 output by {diff:.2e} "
                          f"(onnxruntime {onnxruntime.__version__}); it was written, but do not trust it")
    return diff
