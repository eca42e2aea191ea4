import math

import pytest
import torch

from deblur_core.models import (
    DeblurModel,
    activation_bytes_per_pixel,
    count_parameters,
    get_model,
    gflops_per_megapixel,
    list_models,
    pad_to_multiple,
    register_model,
)

from helpers import randomise

ALL = list_models()
SEED_VARIANTS = {
    "resunet1", "resunet3", "eddensenet", "caessc-d22-f128-half", "caessc-d22-f128-half-nosigmoid",
    "caessc-d30-f64", "red30", "srn", "srn-paper", "srn-nolstm", "nafnet",
}


def test_every_variant_is_registered():
    assert SEED_VARIANTS <= set(ALL)


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_model("srn")(lambda **kw: None)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_model("nope")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_keeps_shape_on_odd_sizes(name, channels):
    torch.manual_seed(0)
    model = randomise(get_model(name, in_channels=channels)).eval()
    x = torch.rand(2, channels, 37, 53)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert not torch.equal(y, x)  # the randomised network really computed something


@pytest.mark.parametrize("name", ALL)
def test_untrained_model_is_identity(name):
    # zero-initialised last layer + global residual: an untrained network returns its input
    model = get_model(name).eval()
    x = torch.rand(1, 3, 32, 48) * 0.9 + 0.05
    with torch.no_grad():
        y = model(x)
    assert torch.allclose(y, x, atol=1e-3)


@pytest.mark.parametrize("name", ALL)
def test_backward_gives_finite_gradients(name):
    torch.manual_seed(0)
    model = randomise(get_model(name)).train()
    x = torch.rand(2, 3, 33, 35)
    out = model(x)
    outs = out if isinstance(out, list) else [out]
    loss = sum((o - 0.5).pow(2).mean() for o in outs)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert math.isfinite(loss.item())


@pytest.mark.parametrize("channels_in, channels_model", [(1, 3), (3, 1)])
def test_channel_adaptation(channels_in, channels_model):
    model = randomise(get_model("resunet1", in_channels=channels_model)).eval()
    x = torch.rand(1, channels_in, 40, 40)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape


def test_bad_inputs_raise():
    model = get_model("srn").eval()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="in_channels"):
        get_model("srn", in_channels=2)


@pytest.mark.parametrize("name", ["srn", "srn-nolstm"])
def test_srn_training_mode_returns_every_scale(name):
    model = get_model(name).train()
    x = torch.rand(1, 3, 70, 90)
    outs = model(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(18, 23), (35, 45), (70, 90)]
    model.eval()
    assert model(x).shape == x.shape


def test_srn_paper_matches_official_parameter_counts():
    # the official TensorFlow SRN-DeblurNet: 8.06 M parameters with the ConvLSTM, 6.88 M without
    assert count_parameters(get_model("srn-paper")) == pytest.approx(8.06e6, rel=2e-3)
    assert count_parameters(get_model("srn-paper", lstm=False)) == pytest.approx(6.88e6, rel=2e-3)


def test_flop_counts_scale_with_architecture():
    paper = gflops_per_megapixel(get_model("srn-paper"))
    default = gflops_per_megapixel(get_model("srn"))
    light = gflops_per_megapixel(get_model("srn-small"))
    # ~2.5, ~0.78 and ~0.2 TFLOP per 1280x720 frame
    assert paper * 0.9216 == pytest.approx(2527, rel=0.05)
    assert default * 0.9216 == pytest.approx(782, rel=0.05)
    assert light * 0.9216 == pytest.approx(197, rel=0.05)
    # half-resolution inner layers cost about a quarter of the full-resolution chain
    half = gflops_per_megapixel(get_model("caessc-d22-f128-half"))
    full = gflops_per_megapixel(get_model("caessc-d22-f128-half", half=False))
    assert 0.2 < half / full < 0.3


def test_activation_bytes_count_the_tensors_alive_at_once():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, padding=1))
    # at the ReLU the input (3 channels), the first convolution's output (8) and the ReLU's (8) are alive
    assert activation_bytes_per_pixel(net) == 4 * (3 + 8 + 8)
    net[1].inplace = True  # in place: no new tensor
    assert activation_bytes_per_pixel(net) == 4 * (3 + 8 + 4)
    # the networks are fully convolutional: the count per pixel does not depend on the size
    srn = get_model("srn")
    assert activation_bytes_per_pixel(srn, 128) == activation_bytes_per_pixel(srn, 256) == pytest.approx(924, abs=1)


def test_pad_to_multiple():
    x = torch.rand(1, 1, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape[-2:] == (8, 8)
    assert torch.equal(y[..., :5, :7], x)
    tiny = pad_to_multiple(torch.rand(1, 1, 3, 3), 16)  # reflection impossible: replicate
    assert tiny.shape[-2:] == (16, 16)


def test_all_models_subclass_the_base():
    assert all(isinstance(get_model(n), DeblurModel) for n in ALL)
