import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from skimage import data

from deblur_core.errors import ImageReadError, ImageWriteError
from deblur_core.io import (
    IMAGE_EXTENSIONS,
    Image,
    VideoWriter,
    probe_video,
    read_image,
    read_video,
    read_video_frames,
    to_array,
    to_tensor,
    video_fps,
    write_image,
)
from deblur_core.io import image as io_image

RNG = np.random.default_rng(0)


def _rgb8(h: int = 64, w: int = 80) -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100 : 100 + h, 150 : 150 + w])


def _gray8(h: int = 64, w: int = 80) -> np.ndarray:
    return np.ascontiguousarray(data.camera()[100 : 100 + h, 150 : 150 + w])


def _to16(a: np.ndarray) -> np.ndarray:
    """A real photo at 16 bits with random low bits, so a silent 8-bit round trip would be caught."""
    return (a.astype(np.uint16) << 8) | RNG.integers(0, 256, a.shape, dtype=np.uint16)


def _alpha(a: np.ndarray) -> np.ndarray:
    return RNG.integers(0, np.iinfo(a.dtype).max + 1, a.shape[:2], dtype=a.dtype)


def _roundtrip(tmp_path, array: np.ndarray, name: str) -> tuple[Image, np.ndarray]:
    data_, alpha, bit_depth = to_tensor(array)
    write_image(tmp_path / name, Image(data_, alpha, bit_depth))
    image = read_image(tmp_path / name)
    return image, to_array(image.data, image.bit_depth, image.alpha)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("rgb8.png", lambda: _rgb8()),
        ("rgb16.png", lambda: _to16(_rgb8())),
        ("gray16.png", lambda: _to16(_gray8())),
        ("gray8.png", lambda: _gray8()),
        ("rgb16.tif", lambda: _to16(_rgb8())),
        ("gray8.tiff", lambda: _gray8()),
        ("rgb8.bmp", lambda: _rgb8()),
        ("rgb8.webp", lambda: _rgb8()),
    ],
)
def test_exact_roundtrip(tmp_path, name, make):
    array = make()
    image, back = _roundtrip(tmp_path, array, name)
    assert image.bit_depth == (16 if array.dtype == np.uint16 else 8)
    assert image.data.dtype == torch.float32 and image.data.shape == (array.ndim * 2 - 3, *array.shape[:2])
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("colour", [_rgb8, _gray8])
@pytest.mark.parametrize("bits", [8, 16])
def test_alpha_survives(tmp_path, ext, colour, bits):
    base = colour() if bits == 8 else _to16(colour())
    array = np.dstack([base, _alpha(base)])
    image, back = _roundtrip(tmp_path, array, "a" + ext)
    assert image.mode == ("LA" if colour is _gray8 else "RGBA")
    assert image.alpha.dtype == base.dtype
    np.testing.assert_array_equal(image.alpha, array[..., -1])
    np.testing.assert_array_equal(back, array)


def test_grayscale_stays_grayscale(tmp_path):
    image = read_image(_save_pil(tmp_path / "cam.png", _gray8()))
    assert image.data.shape[0] == 1 and image.mode == "L"
    write_image(tmp_path / "out.png", image)
    assert PILImage.open(tmp_path / "out.png").mode == "L"


def test_16bit_png_is_written_as_16bit_rgb(tmp_path):
    write_image(tmp_path / "x.png", torch.rand(3, 9, 7), bit_depth=16)
    header = (tmp_path / "x.png").read_bytes()[:26]
    assert header[24] == 16 and header[25] == 2  # bit depth, colour type RGB


def test_jpeg_reads_as_8bit_rgb(tmp_path):
    path = _save_pil(tmp_path / "astro.jpg", _rgb8())
    image = read_image(path)
    assert image.bit_depth == 8 and image.mode == "RGB" and image.data.shape == (3, 64, 80)
    # 16-bit input is quantised to 8 bits for JPEG, and alpha is dropped.
    write_image(tmp_path / "out.jpeg", Image(image.data, np.zeros((64, 80), np.uint16), 16))
    again = read_image(tmp_path / "out.jpeg")
    assert again.bit_depth == 8 and again.alpha is None
    assert (again.data - image.data).abs().mean() < 0.02


def test_float_tiff_is_clipped_and_16bit(tmp_path):
    import tifffile

    values = RNG.uniform(-0.5, 1.5, (10, 12, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="rgb")
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.data.permute(1, 2, 0).numpy(), np.clip(values, 0, 1))


def test_odd_sizes(tmp_path):
    for name, array in [("odd.png", _to16(_rgb8(13, 7))), ("odd8.png", _rgb8(1, 3)), ("odd.tif", _gray8(5, 1))]:
        image, back = _roundtrip(tmp_path, array, name)
        assert (image.height, image.width) == array.shape[:2]
        np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "array",
    [
        _rgb8(5, 7),
        _to16(_rgb8(5, 7)),
        _gray8(5, 7),
        _gray8(5, 7)[..., None],
        np.dstack([_gray8(5, 7), _gray8(5, 7)]),
        np.dstack([_to16(_rgb8(5, 7)), np.full((5, 7), 7, np.uint16)]),
    ],
)
def test_to_array_inverts_to_tensor(array):
    data_, alpha, bit_depth = to_tensor(array)
    assert data_.shape[0] in (1, 3) and data_.dtype == torch.float32
    expected = array[..., 0] if array.shape[-1] == 1 else array
    np.testing.assert_array_equal(to_array(data_, bit_depth, alpha), expected)


def test_to_tensor_bool_and_float():
    data_, alpha, bit_depth = to_tensor(np.eye(4, dtype=bool))
    assert bit_depth == 8 and alpha is None and data_.sum() == 4
    data_, _, bit_depth = to_tensor(np.full((2, 2, 3), 2.0))
    assert bit_depth == 16 and data_.max() == 1.0


def test_to_array_quantises_with_rounding():
    x = torch.tensor([[[-1.0, 0.0, 0.51 / 255, 0.49 / 255, 1.0, 2.0]]])
    np.testing.assert_array_equal(to_array(x, 8), [[0, 0, 1, 0, 255, 255]])
    assert to_array(x, 16).dtype == np.uint16 and to_array(x, 16).max() == 65535


def test_bad_shapes_and_dtypes():
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError):
        to_array(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError):
        Image(torch.zeros(4, 4), None, 8)


def _save_pil(path, array):
    PILImage.fromarray(array).save(path)
    return path


def _assert_read_error(path):
    with pytest.raises(ImageReadError, match=path.name):
        read_image(path)


def test_garbage_png(tmp_path):
    (tmp_path / "garbage.png").write_bytes(RNG.bytes(2000))
    _assert_read_error(tmp_path / "garbage.png")


@pytest.mark.parametrize("bits", [8, 16])
def test_truncated_png(tmp_path, bits):
    full = tmp_path / "full.png"
    write_image(full, torch.from_numpy(_rgb8(128, 128)).permute(2, 0, 1) / 255.0, bit_depth=bits)
    raw = full.read_bytes()
    (tmp_path / "half.png").write_bytes(raw[: len(raw) // 2])
    _assert_read_error(tmp_path / "half.png")


def test_truncated_jpeg(tmp_path):
    raw = _save_pil(tmp_path / "full.jpg", _rgb8(128, 128)).read_bytes()
    (tmp_path / "half.jpg").write_bytes(raw[: len(raw) // 2])
    _assert_read_error(tmp_path / "half.jpg")


def test_text_named_jpg_missing_dir_and_extension(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image\n")
    _assert_read_error(tmp_path / "notes.jpg")
    _assert_read_error(tmp_path / "missing.png")
    (tmp_path / "folder.png").mkdir()
    _assert_read_error(tmp_path / "folder.png")
    (tmp_path / "image.xyz").write_bytes(b"")
    _assert_read_error(tmp_path / "image.xyz")
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00" + RNG.bytes(100))
    _assert_read_error(tmp_path / "garbage.tif")


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares width x height RGB pixels and holds none: its header alone says how large it is."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
                     + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def test_images_above_the_pixel_limit_are_refused_from_the_header_in_every_format(tmp_path, monkeypatch):
    _png_header_only(tmp_path / "bomb.png", 20000, 10000)  # 200 megapixels declared in a 57-byte file
    with pytest.raises(ImageReadError, match="20000x10000 = 200 megapixels, above the 179-megapixel limit"):
        read_image(tmp_path / "bomb.png")
    monkeypatch.setattr(io_image, "MAX_PIXELS", 1000)  # every format obeys the one limit
    for name, image in [("a.png", Image(torch.rand(3, 40, 48))), ("b.png", Image(torch.rand(3, 40, 48), bit_depth=16)),
                        ("c.tif", Image(torch.rand(3, 40, 48), bit_depth=16)), ("d.jpg", Image(torch.rand(1, 40, 48)))]:
        write_image(tmp_path / name, image)
        with pytest.raises(ImageReadError, match="48x40 = 0.00192 megapixels, above the"):
            read_image(tmp_path / name)


def test_write_errors_name_the_file(tmp_path):
    with pytest.raises(ImageWriteError, match="out.xyz"):
        write_image(tmp_path / "out.xyz", torch.rand(3, 4, 4))
    with pytest.raises(ImageWriteError, match="out.png"):
        write_image(tmp_path / "no_such_dir" / "out.png", torch.rand(3, 4, 4))


def test_extensions():
    assert ".png" in IMAGE_EXTENSIONS and all(e == e.lower() for e in IMAGE_EXTENSIONS)


def test_video_roundtrip(tmp_path):
    frames = [np.roll(_rgb8(48, 64), 4 * i, axis=1) for i in range(5)]
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=10) as video:
        for frame in frames[:4]:
            video.write(frame)
        video.write(torch.from_numpy(frames[4]).permute(2, 0, 1) / 255.0)
    back = list(read_video_frames(path))
    assert len(back) == 5
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in back)
    assert np.abs(back[2].astype(int) - frames[2]).mean() < 10  # lossy, but the same picture
    assert video_fps(path) == pytest.approx(10)


def test_video_keeps_irregular_timestamps(tmp_path):
    path = tmp_path / "vfr.mkv"
    stamps = [0, 40, 100, 120, 200]  # milliseconds: a variable frame rate
    with VideoWriter(path, fps=25, time_base=Fraction(1, 1000)) as video:
        for pts in stamps:
            video.write(_rgb8(48, 64), pts)
    info = probe_video(path)
    assert (info.width, info.height, info.audio) == (64, 48, ())
    assert [pts * info.time_base * 1000 for _, pts in read_video(path)] == stamps


def test_video_odd_size_is_padded(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=5) as video:
        for _ in range(2):
            video.write(_rgb8(47, 63))
    assert next(read_video_frames(path)).shape == (48, 64, 3)


def test_unreadable_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(RNG.bytes(500))
    with pytest.raises(ImageReadError, match="bad.mp4"):
        list(read_video_frames(tmp_path / "bad.mp4"))
    with pytest.raises(ImageReadError, match="bad.mp4"):
        video_fps(tmp_path / "bad.mp4")
    with pytest.raises(ImageReadError, match="none.mp4"):
        read_video_frames(tmp_path / "none.mp4")


def test_image_size_reads_the_header_only(tmp_path):
    from deblur_core.io import image_size

    path = tmp_path / "wide.png"
    write_image(path, Image(data=torch.zeros(3, 5, 9)))
    assert image_size(path) == (5, 9)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png.*header"):
        image_size(bad)
    with pytest.raises(ImageReadError, match="no such file"):
        image_size(tmp_path / "missing.jpg")
