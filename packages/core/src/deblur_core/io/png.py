"""PNG files: which codec reads and writes which file, decided from the header.

OpenCV (libpng) takes 8- and 16-bit gray, RGB and RGBA, written at zlib level 1 with the RLE strategy and the
Sub filter: for a 1280x720 photo, decoding plus encoding took 57 ms in 8-bit RGB and 125 ms in 16-bit RGB,
against 112 ms with Pillow and 988 ms with PyAV. The other files (palette, 1-bit, transparency chunks,
gray+alpha), or every file where OpenCV is not installed: Pillow for 8-bit; PyAV (ffmpeg's PNG codec) for
16-bit, because Pillow silently reads 16-bit RGB(A) PNG as 8-bit and cannot write it at all. The bit depth
and colour type are taken from the PNG header (IHDR), so the decision does not depend on a decoder's guess.
"""

from __future__ import annotations

import struct
from pathlib import Path

try:  # OpenCV's PNG codec: 2x Pillow's speed on 8-bit frames, 8x PyAV's on 16-bit (see the docstring)
    import cv2

    OPENCV_ERRORS: tuple[type[Exception], ...] = (cv2.error,)
except ImportError:
    cv2 = None
    OPENCV_ERRORS = ()
import imageio.v3 as iio
import numpy as np
from PIL import Image as PILImage

from ..errors import ImageReadError, ImageWriteError

__all__ = ["OPENCV_ERRORS", "png_size", "read_png", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> PyAV pixel format for 16-bit samples (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA).
_PNG16_READ_FORMATS = {0: "gray16le", 2: "rgb48le", 4: "ya16le", 6: "rgba64le"}
# Channel count -> PyAV formats (numpy side little-endian, PNG encoder side big-endian: ffmpeg's PNG
# encoder only accepts the big-endian variants, which is what the PNG format stores).
_PNG16_WRITE_FORMATS = {1: "gray16", 2: "ya16", 3: "rgb48", 4: "rgba64"}
# PNG colour types OpenCV reads and writes as they are: gray (0), RGB (2), RGBA (6); and their channel counts
_CV2_PNG_CHANNELS = {0: 1, 2: 3, 6: 4}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's IHDR chunk; (0, 0) where it does not begin as a PNG file does."""
    with path.open("rb") as f:
        header = f.read(24)
    if len(header) == 24 and header[:8] == _SIGNATURE and header[12:16] == b"IHDR":
        return struct.unpack(">II", header[16:24])
    return 0, 0  # not a PNG: read_png says so


def read_png(path: Path) -> np.ndarray | None:
    """Decode a PNG file with OpenCV, or with PyAV where its samples are 16-bit and OpenCV does not take it.

    Returns:
        (H, W[, C]) uint8 or uint16 array as the file stores it (RGB(A) order); None for an 8-bit file
        left to Pillow (palette, 1-bit, transparency chunk, gray+alpha, or any where OpenCV is missing).

    Raises:
        ImageReadError: not a PNG file, an invalid header, or a file OpenCV cannot decode.
    """
    with path.open("rb") as f:
        header = f.read(26)
    # Signature (8 bytes), IHDR length and type (8), width, height (8), bit depth, colour type.
    if len(header) < 26 or header[:8] != _SIGNATURE or header[12:16] != b"IHDR":
        raise ImageReadError(path, "not a PNG file (bad signature or header)")
    bit_depth, colour_type = header[24], header[25]
    if cv2 is not None and bit_depth in (8, 16) and colour_type in _CV2_PNG_CHANNELS:
        data = path.read_bytes()
        if b"tRNS" not in _chunks_before_data(data):  # a transparent colour becomes alpha: Pillow does that
            return _decode_png_cv2(path, data, bit_depth, colour_type)
    if bit_depth == 16:
        if colour_type not in _PNG16_READ_FORMATS:
            raise ImageReadError(path, f"invalid PNG colour type {colour_type} for 16-bit samples")
        # ffmpeg rejects a truncated or corrupt PNG with InvalidDataError; it does not return a partial image.
        return iio.imread(path, plugin="pyav", format=_PNG16_READ_FORMATS[colour_type], index=0)
    return None


def _chunks_before_data(data: bytes) -> list[bytes]:
    """The types of the PNG chunks before the first IDAT (after the signature)."""
    types, offset = [], 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            break
        types.append(kind)
        offset += 12 + length
    return types


def _decode_png_cv2(path: Path, data: bytes, bit_depth: int, colour_type: int) -> np.ndarray:
    # OpenCV (libpng) returns None, never a partial image, for a truncated or corrupt file
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    channels = _CV2_PNG_CHANNELS[colour_type]
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if array is None or array.dtype != dtype or (1 if array.ndim == 2 else array.shape[2]) != channels:
        raise ImageReadError(path, "corrupt or truncated PNG file (libpng could not decode it)")
    return array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]  # BGR(A) -> RGB(A)


def write_png(path: Path, array: np.ndarray, bit_depth: int) -> None:
    """Write an (H, W) gray or (H, W, C) array (C = 2 gray+alpha, 3 RGB, 4 RGBA), uint8 or uint16 as
    ``bit_depth`` says, losslessly."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    if cv2 is not None and channels != 2:
        _encode_png_cv2(path, array)  # gray, RGB, RGBA in 8 or 16 bits; gray+alpha below
    elif bit_depth == 16:
        fmt = _PNG16_WRITE_FORMATS[channels]
        iio.imwrite(path, array, plugin="pyav", codec="png", is_batch=False, in_pixel_format=fmt + "le",
                    out_pixel_format=fmt + "be")
    else:
        # zlib level 1 (gray+alpha, or no OpenCV): still lossless, files slightly larger than Pillow's default
        # level 6, but several times faster to encode, which is what keeps the writers beside the network
        PILImage.fromarray(array).save(path, compress_level=1)


def _encode_png_cv2(path: Path, array: np.ndarray) -> None:
    channels = 1 if array.ndim == 2 else array.shape[2]
    bgr = array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]
    # zlib level 1 with run-length matching over the Sub filter's differences: faster than OpenCV's own
    # level 1 (which chooses the filter per row) at the same file size
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
    ok, encoded = cv2.imencode(".png", bgr, params)
    if not ok:
        raise ImageWriteError(path, "OpenCV could not encode the PNG")
    path.write_bytes(encoded.tobytes())
