"""TLC, the test-time local converter of the nafnet models: the channel attention pools over a window of 1.5
training crops around each pixel instead of the whole frame (models/nafnet.py, models/nafnet_cpu_inference.py).
"""

import pytest
import torch
import torch.nn.functional as F

from deblur_core.checkpoint import load_model, pretrained_path
from deblur_core.inference import deblur_tensor, load_deblurrer
from deblur_core.models import get_model
from deblur_core.models.nafnet import TLC_TRAIN_PATCH, use_tlc
from deblur_core.models.nafnet_cpu_inference import local_attention

TOLERANCE = 1e-4


@pytest.fixture
def shipped():
    """A fresh copy of nafnet's shipped network (trained on 64 x 64 crops: its level-0 window is 96)."""
    return load_model(pretrained_path("nafnet"), expect="nafnet")[0]


def _frame(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _windows(model) -> list[int | None]:
    return [block.pool_window for _, block in model._blocks_by_level()]


@pytest.mark.parametrize("window", [(1, 1), (3, 4), (4, 7), (9, 2), (9, 11)])
def test_local_attention_is_the_conv_of_the_mean_of_the_window_shifted_inside(window):
    x = torch.rand(2, 9, 11, 3, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.Conv2d(3, 3, 1)
    kh, kw = window
    pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), window, stride=1)  # the windows that fit
    expected = conv(F.pad(pooled, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate"))
    with torch.no_grad():
        got = local_attention(x, window, conv)
    assert torch.allclose(got, expected.permute(0, 2, 3, 1), atol=1e-6)
    assert torch.allclose(local_attention(x.requires_grad_(), window, conv), got, atol=1e-6)  # autograd's way


def test_windows_shrink_with_each_level():
    model = get_model("nafnet-cpu")
    model.set_tlc(256)
    by_level = {level: block.pool_window for level, block in model._blocks_by_level()}
    assert by_level == {0: 384, 1: 192, 2: 96, 3: 48, 4: 24}
    model.set_tlc(None)
    assert set(_windows(model)) == {None}
    with pytest.raises(ValueError, match="positive"):
        model.set_tlc(0)


def test_training_crop_comes_from_the_checkpoint():
    assert load_deblurrer("nafnet", device="cpu", tlc=True).model.encoders[0][0].pool_window == 96  # patch 64
    assert load_deblurrer("nafnet-cpu", device="cpu", tlc=True).model.encoders[0][0].pool_window == 384  # patch 256
    assert set(_windows(load_deblurrer("nafnet", device="cpu").model)) == {None}
    untrained = get_model("nafnet")
    use_tlc(untrained, {})
    assert untrained.encoders[0][0].pool_window == TLC_TRAIN_PATCH * 3 // 2
    with_tta = load_deblurrer("nafnet", device="cpu", tta=2, tlc=True).model
    assert with_tta.model.encoders[0][0].pool_window == 96


@pytest.mark.parametrize("name", ["srn-small", "resunet3"])
def test_other_networks_refuse_tlc(name):
    # they pool nothing over the whole frame: TLC would change nothing, so asking for it is a mistake to report
    with pytest.raises(ValueError, match="TLC applies to the nafnet models"):
        load_deblurrer(name, device="cpu", tlc=True)


@pytest.mark.parametrize("grad", [False, True])
def test_frame_within_the_window_is_unchanged(shipped, grad):
    x = _frame(96, 80)  # within the 96 x 96 window at full resolution, so within it at every level
    with torch.set_grad_enabled(grad):
        plain = shipped(x)
        shipped.set_tlc(64)
        local = shipped(x)
    assert torch.equal(local, plain)


def test_large_frame_changes_and_every_path_agrees(shipped):
    x = _frame(200, 264)
    with torch.inference_mode():
        plain = shipped(x)
        shipped.set_tlc(64)
        kernels = shipped(x)
    differentiable = shipped(x).detach()
    assert (kernels - plain).abs().max().item() > 1e-3, "TLC should change a frame larger than its window"
    assert (kernels - differentiable).abs().max().item() <= TOLERANCE
    shipped.set_tlc(None)
    with torch.inference_mode():
        assert torch.equal(shipped(x), plain)


def test_tiles_with_tlc(shipped):
    # each tile pools in its own pixel grid: the tiled frame has the whole frame's shape and stays close to it
    shipped.set_tlc(64)
    x = _frame(200, 264)
    whole = deblur_tensor(shipped, x, device="cpu", precision="fp32")
    tiled = deblur_tensor(shipped, x, device="cpu", precision="fp32", tile=128, overlap=32)
    assert tiled.shape == whole.shape == x.shape
    assert torch.isfinite(tiled).all()
    assert (tiled - whole).abs().mean().item() < 0.005
