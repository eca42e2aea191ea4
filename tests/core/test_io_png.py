"""deblur_core.io.png's codecs: OpenCV where it applies, Pillow/PyAV for the rest and where OpenCV is absent.

The files each writes must be plain PNG that the other reads to the same pixels, in every mode and bit depth.
"""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from deblur_core.errors import ImageReadError
from deblur_core.io import Image, png, read_image, write_image

pytest.importorskip("cv2")

MODES = [(1, 8, False), (1, 16, False), (3, 8, False), (3, 16, False), (3, 8, True), (3, 16, True),
         (1, 8, True), (1, 16, True)]  # (colour channels, bits, alpha)


def _image(c: int, bits: int, alpha: bool) -> Image:
    g = torch.Generator().manual_seed(c * bits)
    # a smooth photo-like ramp plus noise: PNG's filters get something to do, every level is exercised
    ramp = torch.linspace(0, 1, 53)[None, None, :] * torch.linspace(0.2, 1, 37)[None, :, None]
    data = (ramp + 0.2 * torch.rand(c, 37, 53, generator=g)).clamp(0, 1)
    levels = 2**bits - 1
    data = (data * levels).round() / levels  # exactly representable, so a round trip must be exact
    a = None
    if alpha:
        dtype = np.uint8 if bits == 8 else np.uint16
        a = np.random.default_rng(bits).integers(0, levels + 1, size=(37, 53)).astype(dtype)
    return Image(data=data, alpha=a, bit_depth=bits)


def _same(a: Image, b: Image) -> bool:
    same_alpha = (a.alpha is None and b.alpha is None) or (
        a.alpha is not None and b.alpha is not None and a.alpha.dtype == b.alpha.dtype
        and np.array_equal(a.alpha, b.alpha))
    return a.mode == b.mode and a.bit_depth == b.bit_depth and torch.equal(a.data, b.data) and same_alpha


@pytest.fixture
def without_opencv(monkeypatch):
    return lambda: monkeypatch.setattr(png, "cv2", None)


@pytest.mark.parametrize("c, bits, alpha", MODES)
def test_opencv_files_read_the_same_without_opencv_and_back(tmp_path, without_opencv, c, bits, alpha):
    image = _image(c, bits, alpha)
    write_image(tmp_path / "cv.png", image)
    with_cv = read_image(tmp_path / "cv.png")
    without_opencv()
    write_image(tmp_path / "pil.png", image)
    assert _same(read_image(tmp_path / "cv.png"), image)  # an OpenCV file, read by Pillow / PyAV
    assert _same(with_cv, image)
    assert _same(read_image(tmp_path / "pil.png"), image)


@pytest.mark.parametrize("c, bits, alpha", MODES)
def test_pillow_and_pyav_files_read_the_same_with_opencv(tmp_path, monkeypatch, c, bits, alpha):
    image = _image(c, bits, alpha)
    with monkeypatch.context() as m:
        m.setattr(png, "cv2", None)
        write_image(tmp_path / "pil.png", image)
    assert _same(read_image(tmp_path / "pil.png"), image)


def test_opencv_encodes_gray_rgb_and_rgba_and_leaves_gray_alpha_to_the_others(tmp_path, monkeypatch):
    calls = []
    encode = png._encode_png_cv2
    monkeypatch.setattr(png, "_encode_png_cv2", lambda path, array: (calls.append(array.shape), encode(path, array)))
    for c, bits, alpha in MODES:
        write_image(tmp_path / f"{c}{bits}{alpha}.png", _image(c, bits, alpha))
    assert sorted(calls) == sorted([(37, 53)] * 2 + [(37, 53, 3)] * 2 + [(37, 53, 4)] * 2)


def _png(width: int, height: int, colour_type: int, rows: bytes, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_transparent_colour_and_palette_files_keep_pillows_reading(tmp_path):
    # RGB with a tRNS chunk: the transparent colour becomes an alpha channel, as Pillow reads it
    rows = b"".join(b"\x00" + bytes([10, 20, 30, 200, 100, 50]) for _ in range(2))
    trns = struct.pack(">I", 6) + b"tRNS" + struct.pack(">HHH", 10, 20, 30)
    trns += struct.pack(">I", zlib.crc32(trns[4:]))
    (tmp_path / "trns.png").write_bytes(_png(2, 2, 2, rows, trns))
    image = read_image(tmp_path / "trns.png")
    assert image.mode == "RGBA" and image.alpha.tolist() == [[0, 255], [0, 255]]
    # palette: decoded to RGB by Pillow
    pal = PILImage.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2, 2, 1, 0])
    pal.save(tmp_path / "pal.png")
    image = read_image(tmp_path / "pal.png")
    assert image.mode == "RGB" and image.data[:, 0, 1].tolist() == [1.0, 0.0, 0.0]


def test_corrupt_data_in_an_opencv_readable_png_is_a_read_error(tmp_path):
    good = _png(4, 4, 2, b"".join(b"\x00" + bytes(range(12)) for _ in range(4)))
    idat = good.index(b"IDAT")
    bad = good[:idat + 6] + bytes(b ^ 0xFF for b in good[idat + 6:idat + 12]) + good[idat + 12:]
    (tmp_path / "bad.png").write_bytes(bad)
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(tmp_path / "bad.png")
