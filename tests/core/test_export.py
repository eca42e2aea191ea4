"""ONNX export: every variant that ships weights gives in onnxruntime what ``deblur-cli batch`` computes
(``deblur_tensor`` in fp32, clamped to [0, 1]; max abs difference 1e-4) at sizes that are not multiples of its
stride, batch, height and width free."""

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")

from deblur_core.checkpoint import pretrained_path, save_checkpoint  # noqa: E402
from deblur_core.errors import CheckpointError, DeblurError  # noqa: E402
from deblur_core.export import _pad_to_multiple, export_model  # noqa: E402
from deblur_core.inference import load_deblurrer  # noqa: E402
from deblur_core.models import get_model, list_models, pad_to_multiple  # noqa: E402
from helpers import randomise  # noqa: E402

from helpers import randomise  # noqa: E402

SHIPPED = [name for name in list_models() if pretrained_path(name) is not None]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export each variant once for the whole module: {name: (ExportResult, its Deblurrer in fp32)}."""
    folder = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = export_model(name, folder / f"{name}.onnx"), _deblurrer(name)
        return cache[name]

    return get


def _run(path, x: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["sharp"], {"blurred": x.numpy()})[0])


def _deblurrer(name, weights=None):
    """What ``deblur-cli batch --precision fp32`` runs (core's deblur path), on the CPU."""
    return load_deblurrer(name, weights, device="cpu", precision="fp32")


def _max_diff(result, deb, x) -> float:
    """The largest difference between onnxruntime's output on ``x`` and ``deb``'s (``deblur_tensor``'s)."""
    got = _run(result.path, x)
    assert got.shape == x.shape
    assert got.min() >= 0 and got.max() <= 1
    return (got - deb(x)).abs().max().item()


def test_shipped_variants_are_the_expected_ones():
    assert {"srn", "srn-small", "nafnet", "nafnet-cpu", "resunet3", "eddensenet", "caessc-d30-f64"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_export_gives_what_batch_computes(exported, name):
    result, deb = exported(name)
    assert result.weights == pretrained_path(name)
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE  # the export's own check
    g = torch.Generator().manual_seed(3)
    for shape in [(1, 3, 70, 90), (3, 3, 33, 48), (1, 3, 5, 7)]:  # 5x7: smaller than the pad, replicated
        assert _max_diff(result, deb, torch.rand(*shape, generator=g)) <= TOLERANCE, shape


@pytest.mark.slow
def test_srn_at_1280x720(exported):
    result, deb = exported("srn")
    x = torch.rand(1, 3, 720, 1280, generator=torch.Generator().manual_seed(4))
    assert _max_diff(result, deb, x) <= TOLERANCE


def test_graph_has_named_free_dimensions_and_metadata(exported):
    import onnx

    result, _ = exported("nafnet")
    proto = onnx.load(str(result.path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [18]
    for value in (proto.graph.input[0], proto.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["deblur.model"] == "nafnet" and props["deblur.weights"] == "nafnet.safetensors"
    assert props["deblur.stride"] == "8"


def test_export_padding_is_pad_to_multiple():
    for multiple in (4, 8, 16, 32):
        for h in range(1, 40):
            for w in (1, 3, multiple - 1, multiple, multiple + 5, 2 * multiple + 1):
                x = torch.rand(1, 2, h, w)
                assert torch.equal(_pad_to_multiple(x, multiple), pad_to_multiple(x, multiple)), (multiple, h, w)


def test_untrained_and_other_weights(tmp_path):
    from deblur_core.checkpoint import save_checkpoint
    from deblur_core.models import get_model

    model = randomise(get_model("resunet1")).eval()  # untrained, it is the identity, which any export would match
    ckpt = save_checkpoint(tmp_path / "r.safetensors", model, name="resunet1")
    result = export_model("resunet1", tmp_path / "sub" / "r.onnx", weights=ckpt)
    assert result.weights == ckpt and result.path.is_file() and result.max_abs_diff <= TOLERANCE
    x = torch.rand(2, 3, 21, 30)
    assert _max_diff(result, _deblurrer("resunet1", ckpt), x) <= TOLERANCE
    with pytest.raises(CheckpointError, match="holds weights for 'resunet1', not 'nafnet'"):
        export_model("nafnet", tmp_path / "n.onnx", weights=ckpt)


def test_outputs_are_clamped_inside_the_graph(tmp_path):
    """Random weights whose raw output leaves [0, 1] by far: the graph clamps it as batch does."""
    model = randomise(get_model("resunet1"), std=0.5).eval()
    ckpt = save_checkpoint(tmp_path / "r.safetensors", model, name="resunet1")
    x = torch.rand(2, 3, 21, 30, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        raw = model(x)
    assert raw.min() < -0.5 and raw.max() > 1.5  # the clamp has work to do
    result = export_model("resunet1", tmp_path / "r.onnx", weights=ckpt)  # its own check holds it to 1e-4
    assert result.max_abs_diff <= TOLERANCE
    assert _max_diff(result, _deblurrer("resunet1", ckpt), x) <= TOLERANCE


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "nope"}, "unknown model 'nope'"),
    ({"name": "srn", "format": "tflite"}, "unknown export format 'tflite'"),
    ({"name": "srn", "opset": 17}, "opset must be between 18"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_model(out=tmp_path / "m.onnx", **kwargs)
    assert not (tmp_path / "m.onnx").exists()


def test_unwritable_out(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        export_model("srn", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        export_model("srn", tmp_path / "file" / "m.onnx")


def test_missing_export_packages(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(DeblurError, match=r"pip install 'deblur-toolkit\[export\]'"):
        export_model("srn", tmp_path / "m.onnx")


def test_check_refuses_a_wrong_graph(tmp_path, monkeypatch):
    import deblur_core.export as export

    monkeypatch.setattr(export._ExportGraph, "forward", lambda self, x: x * 0.5)
    with pytest.raises(DeblurError, match="differs from deblur_tensor's fp32 output"):
        export_model("caessc-d30-f64", tmp_path / "m.onnx")
    assert np.isfinite(_run(tmp_path / "m.onnx", torch.rand(1, 3, 8, 8)).numpy()).all()  # written, but refused
