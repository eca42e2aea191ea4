"""deblur_core.io.convert: integer pixels kept as decoded and converted when first used, to to_tensor's values."""

import numpy as np
import pytest
import tifffile
import torch

from deblur_core.io import Image, read_image, to_pixels, to_tensor, unit_float, write_image

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unit_float_gives_to_tensors_values_for_every_sample(dtype):
    every = np.arange(np.iinfo(dtype).max + 1, dtype=dtype).reshape(1, -1)
    expected, _, _ = to_tensor(every)
    got = unit_float(torch.from_numpy(every)[None])
    assert got.dtype == torch.float32 and torch.equal(got, expected)  # bit for bit, not approximately


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 2), (6, 7, 3), (6, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_an_image_of_pixels_reads_as_the_image_of_their_float_data(shape, dtype):
    array = RNG.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    data, alpha, bit_depth = to_tensor(array)
    pixels, pixel_alpha = to_pixels(array)
    image = Image(pixels=pixels, alpha=pixel_alpha)
    assert pixels.dtype == torch.from_numpy(array).dtype and pixels.shape == data.shape
    # what the pipeline reads before the network: shape and bytes, without converting
    assert image.shape == tuple(data.shape) and (image.height, image.width) == (6, 7)
    assert image.nbytes == pixels.nbytes and image.bit_depth == bit_depth
    assert image.mode == Image(data, alpha, bit_depth).mode
    assert torch.equal(image.data, data) and image.nbytes == pixels.nbytes + data.nbytes
    assert (alpha is None and pixel_alpha is None) or np.array_equal(alpha, pixel_alpha)


def test_read_image_keeps_the_pixels_of_8_and_16_bit_files_only(tmp_path):
    rgba = RNG.integers(0, 65536, size=(9, 11, 4)).astype(np.uint16)
    write_image(tmp_path / "a.png", Image(*to_tensor(rgba)))
    write_image(tmp_path / "b.jpg", Image(*to_tensor(rgba[..., :3].astype(np.uint8))))
    for name, dtype in (("a.png", torch.uint16), ("b.jpg", torch.uint8)):
        kept, plain = read_image(tmp_path / name, keep_pixels=True), read_image(tmp_path / name)
        assert plain.pixels is None and kept.pixels.dtype == dtype
        assert torch.equal(kept.data, plain.data) and kept.bit_depth == plain.bit_depth
        assert (kept.alpha is None) == (plain.alpha is None)
    tifffile.imwrite(tmp_path / "f.tif", RNG.random((9, 11, 3)).astype(np.float32), photometric="rgb")  # float: converted at once
    assert read_image(tmp_path / "f.tif", keep_pixels=True).pixels is None


def test_unit_float_stays_on_the_pixels_device():
    got = unit_float(torch.zeros(2, 3, 4, 5, dtype=torch.uint8, device="meta"))
    assert got.device.type == "meta" and got.dtype == torch.float32 and got.shape == (2, 3, 4, 5)


def test_bad_pixels():
    with pytest.raises(ValueError, match="one of the two"):
        Image()
    with pytest.raises(ValueError, match="one of the two"):
        Image(torch.zeros(3, 2, 2), pixels=torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        Image(pixels=torch.zeros(3, 2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Image(pixels=torch.zeros(2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_pixels(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(TypeError, match="uint8 or uint16"):
        unit_float(torch.zeros(3, 2, 2))
