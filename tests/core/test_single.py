import math
import struct
import zlib

import numpy as np
import pytest
import torch
from skimage import data as skdata

from deblur_core.blur import gaussian_blur
from deblur_core.checkpoint import pretrained_path, save_checkpoint
from deblur_core.errors import DeblurError, ImageReadError, ImageTooLargeError
from deblur_core.single import (
    blur_then_deblur,
    deblur_image,
    example_images,
    load_image,
    model_choices,
)
from deblur_core.inference import load_deblurrer
from deblur_core.io import Image, image_size, read_image, write_image
from deblur_core.metrics import blur_effect, psnr, ssim
from deblur_core.models import get_model, list_models

from helpers import assert_output_of, random_checkpoint


def _png_header_only(path, width, height):
    """A tiny PNG whose header claims width x height (a decompression-bomb stand-in: decoding it would
    allocate the full image, so the size must be refused from the header alone)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture
def photo(tmp_path):
    x = torch.rand(3, 100, 140)
    write_image(tmp_path / "photo.png", x)
    return tmp_path / "photo.png"


def test_examples_are_real_pngs():
    paths = example_images()
    assert any(p.name == "clock_motion.png" for p in paths)
    assert sum(p.stat().st_size for p in paths) < 1_000_000
    for p in paths:
        assert read_image(p).height > 0


@pytest.mark.parametrize("size", [(6000, 4000), (20000, 20000)])
def test_pixel_limit_is_checked_from_the_header(tmp_path, size):
    path = _png_header_only(tmp_path / "bomb.png", *size)
    if size[0] * size[1] < 1e8:  # beyond that Pillow itself refuses to open the header
        assert image_size(path) == size[::-1]  # (height, width)
    with pytest.raises(ImageTooLargeError, match="too large|megapixels"):
        deblur_image(path, "nafnet", device="cpu")


def test_pixel_limit_for_arrays():
    with pytest.raises(ImageTooLargeError, match="above the 0.001-megapixel limit"):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=1000)


def test_corrupt_file_is_an_image_read_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ImageReadError, match="bad.jpg"):
        deblur_image(bad, "nafnet", device="cpu")


@pytest.fixture
def weights(tmp_path):
    """Randomised weights for srn-nolstm, which ships none (untrained, it would hand every image back)."""
    return random_checkpoint(tmp_path / "random.safetensors")


def test_deblur_image_keeps_size_alpha_and_reports(photo, weights):
    ticks = []
    result = deblur_image(photo, "srn-nolstm", weights=weights, device="cpu", tile=80,
                          progress=lambda p: ticks.append((p.done, p.total)))
    assert result.output.data.shape == result.input.data.shape == (3, 100, 140)
    assert result.model == "srn-nolstm" and result.device == "cpu" and result.seconds > 0
    assert result.trained and not deblur_image(photo, "srn-nolstm", device="cpu").trained
    assert result.tiles == ticks[-1][1] > 1 and ticks[-1][0] == ticks[-1][1]
    deb = load_deblurrer("srn-nolstm", weights, device="cpu")
    assert_output_of(result.output.data, deb, result.input.data, tile=80)


def test_precision_is_passed_through_and_checked(photo, weights):
    result = deblur_image(photo, "srn-nolstm", weights=weights, device="cpu", precision="bf16")
    assert result.precision == "bf16"
    assert_output_of(result.output.data, load_deblurrer("srn-nolstm", weights, device="cpu", precision="bf16"),
                     result.input.data)
    assert blur_then_deblur(photo, "srn-nolstm", "gaussian", 0.2, device="cpu", precision="fp32").precision == "fp32"
    with pytest.raises(DeblurError, match="precision must be one of .*'half'"):
        deblur_image(photo, "srn-nolstm", device="cpu", precision="half")


def test_grayscale_and_alpha(tmp_path):
    alpha = np.full((20, 24), 200, np.uint8)
    img = Image(data=torch.rand(1, 20, 24), alpha=alpha, bit_depth=16)
    result = deblur_image(img, "nafnet", device="cpu")
    assert result.output.data.shape == (1, 20, 24) and result.output.bit_depth == 16
    np.testing.assert_array_equal(result.output.alpha, alpha)


def _deblur(img, blur_first):
    if blur_first:
        return blur_then_deblur(img, "nafnet", "motion", 0.5, seed=2, device="cpu", precision="fp32")
    return deblur_image(img, "nafnet", device="cpu", precision="fp32")


@pytest.mark.parametrize("blur_first", [False, True])
def test_grayscale_runs_as_three_equal_channels_averaged_back(blur_first):
    # the RGB networks see a gray image as three equal channels (models.base); the result is their mean.
    # A smooth image in [0.25, 0.75]: on noise the network overshoots [0, 1], and clamping each channel
    # before or after the mean would differ there
    noise = torch.rand(1, 1, 40, 48, generator=torch.Generator().manual_seed(0))
    gray = 0.25 + 0.5 * gaussian_blur(noise, 2.0)[0]
    out_gray = _deblur(Image(data=gray, alpha=None, bit_depth=16), blur_first)
    out_rgb = _deblur(Image(data=gray.expand(3, -1, -1), alpha=None, bit_depth=16), blur_first)
    assert out_gray.output.data.shape == (1, 40, 48)
    torch.testing.assert_close(out_gray.input.data, out_rgb.input.data[:1])
    torch.testing.assert_close(out_gray.output.data, out_rgb.output.data.mean(dim=0, keepdim=True),
                               atol=1e-3, rtol=0)
    assert (out_gray.output.data - out_gray.input.data).abs().mean() > 1e-3  # the trained network did work


def test_blur_effect_before_and_after_is_reported():
    photo = Image(data=torch.from_numpy(skdata.astronaut()[100:292, 150:342]).permute(2, 0, 1).float() / 255)
    result = blur_then_deblur(photo, "nafnet", "gaussian", 0.5, device="cpu")
    assert result.blur_effect_before == blur_effect(result.input.data).item()
    assert result.blur_effect_after == blur_effect(result.output.data).item()
    assert result.blur_effect_after < result.blur_effect_before - 0.05  # the shipped nafnet removes gaussian blur
    assert math.isnan(deblur_image(np.zeros((3, 40), np.uint8), "srn-nolstm", device="cpu").blur_effect_before)


def test_blur_then_deblur_refuses_bad_blur_arguments(photo):
    with pytest.raises(DeblurError, match="kind"):
        blur_then_deblur(photo, "srn-nolstm", "mix", 0.5, device="cpu")  # one kind per photo
    with pytest.raises(DeblurError, match="strength"):
        blur_then_deblur(photo, "srn-nolstm", "motion", 2.0, device="cpu")


def test_blur_then_deblur_scores_both(photo, weights):
    result = blur_then_deblur(photo, "srn-nolstm", "gaussian", 1.0, seed=0, weights=weights, device="cpu")
    assert result.original is not None
    m = result.metrics
    assert set(m) == {"blurred", "deblurred"} and set(m["blurred"]) == {"psnr", "ssim"}
    assert m["blurred"]["psnr"] < 40 and m["blurred"]["ssim"] < 1
    sharp = result.original.data[None]
    for name, img in (("blurred", result.input), ("deblurred", result.output)):
        assert m[name] == pytest.approx({"psnr": psnr(img.data[None], sharp).item(),
                                         "ssim": ssim(img.data[None], sharp).item()}, abs=1e-4)
    assert m["deblurred"]["psnr"] != pytest.approx(m["blurred"]["psnr"], abs=1e-3)  # each scores its own image


def test_blur_then_deblur_refuses_tiny_images():
    with pytest.raises(DeblurError, match="at least"):
        blur_then_deblur(np.zeros((8, 8, 3), np.uint8), "nafnet", "motion", 0.5, device="cpu")


def test_model_choices_put_trained_first_and_pick_up_new_weights(tmp_path):
    shipped = model_choices()
    assert {name for _, name in shipped} == set(list_models())
    trained = [(pretrained_path(name) is not None) for _, name in shipped]
    assert trained == sorted(trained, reverse=True)  # variants with weights first
    for (label, name), has in zip(shipped, trained):
        assert ("untrained" in label) == (not has)
        assert ("val PSNR" in label and " on " in label) == has  # and what its val PSNR was measured on
    # weights given for a variant that ships none move it into the trained group, with their card line
    path = save_checkpoint(tmp_path / "w.safetensors", get_model("srn-nolstm"), name="srn-nolstm",
                           config={"data": "default", "blur": "shake"}, metrics={"val_psnr": 27.5, "input_psnr": 25.0})
    choices = model_choices({"srn-nolstm": path})
    label = next(label for label, name in choices if name == "srn-nolstm")
    assert "val PSNR 27.50 dB (blurred 25.00) on default, shake blur" in label
    assert [name for _, name in choices].index("srn-nolstm") < sum(trained) + 1
    x = torch.rand(3, 16, 16).numpy().transpose(1, 2, 0)
    assert deblur_image(x, "srn-nolstm", weights=path, device="cpu").trained


def test_an_output_holding_nan_is_refused_not_shown_black(monkeypatch):
    from deblur_core.inference import NON_FINITE_OUTPUT, Deblurrer

    class NaNOut(torch.nn.Module):
        def forward(self, x):
            return x * float("nan")

    nan = Deblurrer(model=NaNOut(), name="nan", device=torch.device("cpu"), weights=None)
    monkeypatch.setattr("deblur_core.single._cached_deblurrer", lambda *args: nan)
    with pytest.raises(DeblurError) as info:
        deblur_image(np.full((16, 16, 3), 128, np.uint8), "nan", device="cpu")
    assert str(info.value) == NON_FINITE_OUTPUT


def test_tta_averages_passes_and_bad_counts_are_clear_errors():
    from deblur_core.errors import DeblurError
    from deblur_core.single import deblur_image

    img = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(3))
    one = deblur_image(img.permute(1, 2, 0).numpy(), "nafnet").output.data
    four = deblur_image(img.permute(1, 2, 0).numpy(), "nafnet", tta=4).output.data
    assert one.shape == four.shape and not torch.equal(one, four)
    with pytest.raises(DeblurError, match="tta must be one of 1, 2, 4, 8"):
        deblur_image(img.permute(1, 2, 0).numpy(), "nafnet", tta=5)
