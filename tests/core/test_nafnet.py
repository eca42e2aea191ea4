"""NAFNet's CPU inference path (models/nafnet_cpu_inference.py: in place, in strips, folded weights) computes
what the plain forward did.

The reference is ``former_forward`` of ``benchmarks/nafnet_former.py``: NAFNet's forward as it was before
that path existed, verbatim in its arithmetic, run on the same module's parameters (the benchmark suite
times the two).
"""

import sys
from pathlib import Path

import pytest
import torch

import deblur_core.models.nafnet_cpu_inference as cpu_inference
from deblur_core.checkpoint import load_checkpoint, load_model, pretrained_path
from deblur_core.models import get_model

from helpers import randomise

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nafnet_former import former_forward  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def shipped():
    path = pretrained_path("nafnet")
    assert path is not None, "nafnet's weights ship with the package"
    return load_model(path, expect="nafnet")[0]


def _random_nafnet(**kwargs):
    # the residual scales, norm biases and last layer start at zero: give them values
    return randomise(get_model("nafnet", **kwargs).eval(), std=0.1)


def test_shipped_weights_load_unchanged(shipped):
    tensors, _ = load_checkpoint(pretrained_path("nafnet"))
    state = shipped.state_dict()
    assert state.keys() == tensors.keys()
    assert all(torch.equal(state[k], tensors[k]) for k in tensors)


@pytest.mark.parametrize("strip_elements", [2**11, cpu_inference._STRIP_ELEMENTS])
@pytest.mark.parametrize("shape", [(1, 3, 96, 160), (2, 3, 37, 53), (1, 3, 5, 7)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_inference_matches_reference(shipped, monkeypatch, strip_elements, shape, channels_last):
    # small strips: many of them, one-row strips and halo rows at every strip edge
    monkeypatch.setattr(cpu_inference, "_STRIP_ELEMENTS", strip_elements)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model = shipped.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    before = x.clone()
    with torch.inference_mode():
        out = model(x)
        ref = former_forward(model, x)
    assert torch.equal(x, before), "the input must not be modified"
    assert out.shape == x.shape
    assert (out - ref).abs().max().item() <= TOLERANCE


def test_inference_matches_reference_on_a_photo(shipped):
    from skimage import data

    x = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float().div(255)
    with torch.no_grad():
        diff = (shipped(x) - former_forward(shipped, x)).abs().max().item()
    assert diff <= TOLERANCE


@pytest.mark.parametrize("kwargs", [{}, {"in_channels": 1, "width": 8, "enc_blocks": (1, 2), "dec_blocks": (2, 1),
                                         "middle_blocks": 1}])
def test_every_path_matches_reference_with_random_weights(monkeypatch, kwargs):
    monkeypatch.setattr(cpu_inference, "_STRIP_ELEMENTS", 2**12)
    model = _random_nafnet(**kwargs)
    x = torch.rand(2, model.in_channels, 41, 67, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = former_forward(model, x)
        inplace = model(x)
    plain = model(x)  # autograd on: the plain forward
    assert plain.requires_grad
    assert (inplace - ref).abs().max().item() <= TOLERANCE
    assert (plain.detach() - ref).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("onednn", [True, False])
def test_residual_sums_with_and_without_onednn(shipped, monkeypatch, onednn):
    # the fused in-place convolution where the torch build has it, addmm_ where it does not: same result
    if onednn and cpu_inference._onednn_conv_add() is None:
        pytest.skip("this torch build has no oneDNN in-place convolution")
    if not onednn:
        monkeypatch.setattr(cpu_inference, "_onednn_conv_add", lambda: None)
    monkeypatch.setattr(cpu_inference, "_STRIP_ELEMENTS", 2**12)
    x = torch.rand(2, 3, 29, 45, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out, ref = shipped(x), former_forward(shipped, x)
    assert (out - ref).abs().max().item() <= TOLERANCE


def test_block_forward_inplace_overwrites_its_input_only():
    block = _random_nafnet().encoders[0][0]
    x = torch.rand(2, 16, 19, 23).contiguous(memory_format=torch.channels_last)
    expected = block(x).detach()
    result = cpu_inference.block_forward_(block, x)
    assert result is x
    assert (x - expected).abs().max().item() <= TOLERANCE
    with pytest.raises(ValueError, match="channels_last"):
        cpu_inference.block_forward_(block, torch.rand(1, 16, 8, 8))


def test_inference_path_only_where_it_applies():
    x = torch.rand(1, 3, 8, 8)
    assert not cpu_inference.eager_cpu_inference(x)  # autograd on
    with torch.no_grad():
        assert cpu_inference.eager_cpu_inference(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not cpu_inference.eager_cpu_inference(x)
    with torch.inference_mode():
        assert cpu_inference.eager_cpu_inference(x)
