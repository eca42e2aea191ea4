"""deblur_core.inference in each arithmetic: ``auto`` resolved once per network (capabilities faked), bf16
against fp32 on real photos, and outputs that keep their format whatever the arithmetic."""

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata

from deblur_core.batch import deblur_path
from deblur_core.checkpoint import pretrained_path
from deblur_core.inference import deblur_tensor, load_deblurrer
from deblur_core.io import Image, read_image, write_image
from deblur_core.models import list_models

from helpers import assert_output_of, random_deblurrer

SHIPPED = [name for name in list_models() if pretrained_path(name) is not None]


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        load_deblurrer("srn-small", device="cpu", precision="half")


def test_load_deblurrer_resolves_auto_once(amx):
    amx(True)
    deb = load_deblurrer("srn-small", device="cpu")
    assert (deb.dtype, deb.precision) == (torch.bfloat16, "bf16")
    amx(False)  # the network keeps the arithmetic it was loaded for
    x = _photos(32)
    assert torch.equal(deb(x), deblur_tensor(deb.model, x, precision="bf16"))
    assert not torch.equal(deb(x), deblur_tensor(deb.model, x, precision="fp32"))
    assert load_deblurrer("srn-small", device="cpu").precision == "fp32"
    assert load_deblurrer("srn-small", device="cpu", precision="bf16").precision == "bf16"


def test_auto_on_a_cpu_without_amx_changes_nothing(amx):
    amx(False)
    deb = load_deblurrer("srn-small", device="cpu")
    x = _photos(48)
    assert torch.equal(deblur_tensor(deb.model, x), deblur_tensor(deb.model, x, precision="fp32"))
    assert torch.equal(deb(x), deblur_tensor(deb.model, x, precision="fp32"))


def _photos(size: int) -> torch.Tensor:
    """Two real photographs, centre crops of ``size`` x ``size``, (2, 3, size, size) in [0, 1]."""
    crops = []
    for photo in (skdata.astronaut(), skdata.coffee()):
        h, w = photo.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(torch.from_numpy(photo[top:top + size, left:left + size]).permute(2, 0, 1).float() / 255)
    return torch.stack(crops)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# resunet3 (a BatchNorm UNet) carries activations up to ~1400: with bf16's 8-bit mantissa its output lands
# 38-47 dB from fp32 on 256x256 photos, 29 dB on these crops (fp16: 56-65 dB); the others 53-64 dB
_BF16_FAR_FROM_FP32 = {"resunet3"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    strict=True, reason="bf16 is 29-47 dB from fp32 for this network")) if n in _BF16_FAR_FROM_FP32 else n
    for n in SHIPPED])
def test_bf16_output_is_close_to_fp32(name):
    """bf16 autocast on any CPU (emulated where the CPU has no bf16: slow, so tiny images) gives what fp32
    gives to well over 40 dB, with the shipped weights on real photographs."""
    deb = load_deblurrer(name, device="cpu", precision="fp32")
    x = _photos(48)
    fp32 = deblur_tensor(deb.model, x, precision="fp32")
    bf16 = deblur_tensor(deb.model, x, precision="bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == x.shape
    assert not torch.equal(bf16, fp32)  # bf16 arithmetic did run
    assert _psnr(bf16, fp32) > 40


@pytest.mark.parametrize("bits", [8, 16])
def test_bf16_batch_keeps_bit_depth_and_alpha(tmp_path, bits):
    """Frames deblurred in bf16 come back in their own format: bit depth and channels, the network's pixels
    to the level, alpha bit for bit."""
    src = tmp_path / "in"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    alpha = np.random.default_rng(0).integers(0, 2**bits, size=(40, 48)).astype(np.uint8 if bits == 8 else np.uint16)
    write_image(src / "rgba.png", Image(data=torch.rand(3, 40, 48, generator=g), alpha=alpha, bit_depth=bits))
    original = read_image(src / "rgba.png")
    deb = random_deblurrer(precision="bf16")
    report = deblur_path(src, deblurrer=deb)
    assert report.done == 1 and report.precision == "bf16"
    result = read_image(tmp_path / "in_deblurred" / "rgba.png")
    assert (result.mode, result.bit_depth) == ("RGBA", bits)
    assert_output_of(result.data, deb, original.data, bits)
    assert result.alpha.dtype == alpha.dtype and np.array_equal(result.alpha, alpha)
