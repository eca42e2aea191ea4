"""NAFNet's block computes what its layers do one after the other, in every path: the differentiable arithmetic
on the (B, H*W, C) view (training, GPUs, export) and the CPU inference kernels (models/nafnet_cpu_inference.py:
in place, in strips, folded weights), with the channel attention pooled over the whole input or over TLC's
windows.

The reference is written here from the block's layers (LayerNorm, 1x1 and depthwise convolutions, SimpleGate,
the channel attention's 1x1 convolution) and torch's own pooling, so it shares no arithmetic with the paths it
checks.
"""

import pytest
import torch
import torch.nn.functional as F

import deblur_core.models.nafnet as nafnet_module
import deblur_core.models.nafnet_cpu_inference as cpu_inference
from deblur_core.blur.gaussian import gaussian_blur
from deblur_core.checkpoint import load_checkpoint, load_model, pretrained_path
from deblur_core.metrics import psnr
from deblur_core.models import get_model
from deblur_core.models.nafnet import NAFBlock

from helpers import randomise

TOLERANCE = 1e-4


def _reference_block(block: NAFBlock, x: torch.Tensor) -> torch.Tensor:
    """The block's layers one after the other; the attention pools as ``block.pool_window`` says."""
    y = block.gate(block.dwconv(block.conv1(block.norm1(x))))
    y = block.conv2(y * block.sca[1](_reference_pool(y, block.pool_window)))
    x = x + block.beta * y
    y = block.ffn2(block.gate(block.ffn1(block.norm2(x))))
    return x + block.gamma * y


def _reference_pool(y: torch.Tensor, window: int | None) -> torch.Tensor:
    """The mean over the whole input, or (TLC) over the window x window pixels around each pixel, cut to the
    input's sides: torch's stride-1 average pool over the windows that fit, its border means repeated out to
    the input's size (a window past the border shifts back inside)."""
    h, w = y.shape[-2:]
    if window is None or (window >= h and window >= w):
        return F.adaptive_avg_pool2d(y, 1)
    kh, kw = min(window, h), min(window, w)
    pooled = F.avg_pool2d(y, (kh, kw), stride=1)
    return F.pad(pooled, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate")


@pytest.fixture(scope="module")
def shipped():
    path = pretrained_path("nafnet")
    assert path is not None, "nafnet's weights ship with the package"
    return load_model(path, expect="nafnet")[0]


def _random_nafnet(**kwargs):
    # the residual scales, norm biases and last layer start at zero: give them values
    return randomise(get_model("nafnet", **kwargs).eval(), std=0.1)


def _random_block(window: int | None) -> NAFBlock:
    block = _random_nafnet().encoders[0][0]
    block.pool_window = window
    return block


def test_shipped_weights_load_unchanged(shipped):
    tensors, _ = load_checkpoint(pretrained_path("nafnet"))
    state = shipped.state_dict()
    assert state.keys() == tensors.keys()
    assert all(torch.equal(state[k], tensors[k]) for k in tensors)


@pytest.mark.parametrize("window", [None, 5, 12, 64])
@pytest.mark.parametrize("strip_elements", [2**10, cpu_inference._STRIP_ELEMENTS])
@pytest.mark.parametrize("shape", [(2, 16, 19, 23), (1, 16, 1, 30), (1, 16, 40, 9)])
def test_block_matches_its_layers(monkeypatch, window, strip_elements, shape):
    # small strips: many of them, one-row strips and halo rows at every strip edge; windows that fit the
    # input, cover one side of it, or cover it all
    monkeypatch.setattr(cpu_inference, "_STRIP_ELEMENTS", strip_elements)
    block = _random_block(window)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    ref = _reference_block(block, x).detach()
    assert (ref - x).abs().max().item() > 0.05, "the block should change its input"
    trained = block(x)  # autograd on: the differentiable arithmetic
    assert trained.requires_grad
    before = x.clone()
    with torch.inference_mode():
        kernel = block(x)  # the CPU inference kernels
    assert torch.equal(x, before), "the input must not be modified"
    assert (trained.detach() - ref).abs().max().item() <= TOLERANCE
    assert (kernel - ref).abs().max().item() <= TOLERANCE


def test_block_inference_kernel_overwrites_its_input_only():
    block = _random_block(None)
    x = torch.rand(2, 16, 19, 23).contiguous(memory_format=torch.channels_last)
    expected = _reference_block(block, x).detach()
    result = cpu_inference.block_inference_(block, x)
    assert result is x
    assert (x - expected).abs().max().item() <= TOLERANCE
    with pytest.raises(ValueError, match="channels_last"):
        cpu_inference.block_inference_(block, torch.rand(1, 16, 8, 8))


@pytest.mark.parametrize("inplace", [True, False])
def test_upsampling_is_conv_then_pixel_shuffle(inplace):
    model = _random_nafnet()
    up = model.ups[-1]  # 32 channels to 2 x 2 pixels of 16
    y = torch.rand(2, 32, 5, 7).contiguous(memory_format=torch.channels_last)
    skip = torch.rand(2, 16, 10, 14).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = skip + F.pixel_shuffle(F.conv2d(y, up[0].weight), 2)
        scratch = torch.empty(y.numel() * 2) if inplace else None
        out = nafnet_module._add_upsampled(skip.clone(), up, y, scratch)
    assert (out - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("tlc", [None, 16])
@pytest.mark.parametrize("kwargs", [{}, {"in_channels": 1, "width": 8, "enc_blocks": (1, 2), "dec_blocks": (2, 1),
                                         "middle_blocks": 1}])
def test_network_matches_its_layers_in_every_path(monkeypatch, kwargs, tlc):
    monkeypatch.setattr(cpu_inference, "_STRIP_ELEMENTS", 2**12)
    model = _random_nafnet(**kwargs)
    model.set_tlc(tlc)
    x = torch.rand(2, model.in_channels, 41, 67, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        inplace = model(x)
    plain = model(x)  # autograd on: the differentiable arithmetic
    assert plain.requires_grad
    with monkeypatch.context() as m:  # every block through its layers, the rest of the network as it is
        m.setattr(NAFBlock, "forward", _reference_block)
        ref = model(x).detach()
    assert (ref - x).abs().max().item() > 0.05, "the network should change its input"
    assert (inplace - ref).abs().max().item() <= TOLERANCE
    assert (plain.detach() - ref).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("shape", [(1, 3, 96, 160), (2, 3, 37, 53), (1, 3, 5, 7)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_shipped_paths_agree(shipped, shape, channels_last):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model = shipped.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    before = x.clone()
    with torch.inference_mode():
        out = model(x)
    assert torch.equal(x, before), "the input must not be modified"
    assert out.shape == x.shape
    assert (out - model(x).detach()).abs().max().item() <= TOLERANCE


def test_shipped_weights_sharpen_a_blurred_photo(shipped):
    # nafnet is trained on gaussian blur: a photo blurred so should come out clearly closer to the original
    from skimage import data

    sharp = torch.from_numpy(data.astronaut()[:256, 128:384].copy()).permute(2, 0, 1)[None].float().div(255)
    blurred = gaussian_blur(sharp, 2.0)
    with torch.inference_mode():
        out = shipped(blurred).clamp(0, 1)
    assert psnr(out, sharp).item() > psnr(blurred, sharp).item() + 2.0


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
        out = shipped(x)
    assert (out - shipped(x).detach()).abs().max().item() <= TOLERANCE


def test_inference_path_only_where_it_applies():
    x = torch.rand(1, 3, 8, 8)
    assert not cpu_inference.eager_cpu_inference(x)  # autograd on
    with torch.no_grad():
        assert cpu_inference.eager_cpu_inference(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not cpu_inference.eager_cpu_inference(x)
    with torch.inference_mode():
        assert cpu_inference.eager_cpu_inference(x)
