"""The one image and video IO boundary of the project.

Everything else in core works on float tensors in ``[0, 1]``; this module is the only place where 8- and
16-bit arrays are read, quantised and written. Backends are chosen by extension:

* PNG: OpenCV (libpng) for 8- and 16-bit gray, RGB and RGBA, written at zlib level 1 with the RLE
  strategy and the Sub filter: for a 1280x720 photo, decoding plus encoding took 57 ms in 8-bit RGB and
  125 ms in 16-bit RGB, against 112 ms with Pillow and 988 ms with PyAV. The other files (palette, 1-bit,
  transparency chunks, gray+alpha), or every file where OpenCV is not installed: Pillow for 8-bit; PyAV
  (ffmpeg's PNG codec) for 16-bit, because Pillow silently reads 16-bit RGB(A) PNG as 8-bit and cannot
  write it at all. The bit depth and colour type are taken from the PNG header (IHDR), so the decision
  does not depend on a decoder's guess.
* TIFF: tifffile (uint8, uint16 and float data; float is clipped to ``[0, 1]`` and written back as 16-bit).
* JPEG, BMP, WEBP: Pillow, 8-bit only (a 16-bit image is quantised to 8 bits on write).

Alpha is never part of the tensor: it is returned beside it in the file's own dtype and written back
unchanged, so a deblurring model never sees or alters it.

Video goes through PyAV (ffmpeg) directly: :func:`read_video` yields 8-bit RGB frames with their timestamps,
:class:`VideoWriter` encodes them (H.264 by default) at those timestamps and carries another video's audio
streams over, copied where the container accepts them, and :func:`probe_video` reads the header. A file that
cannot be read is refused with the reason: empty, not a video, truncated, or without a video stream.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

try:  # PyAV (a 36 MB wheel bundling ffmpeg) serves video and 16-bit RGB PNG; photos load without it
    import av

    _AV_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError,)
except ImportError:
    _AV_ERRORS = ()
try:  # OpenCV's PNG codec: 2x Pillow's speed on 8-bit frames, 8x PyAV's on 16-bit (see the docstring)
    import cv2

    _CV2_ERRORS: tuple[type[Exception], ...] = (cv2.error,)
except ImportError:
    cv2 = None
    _CV2_ERRORS = ()
import imageio.v3 as iio
import numpy as np
import tifffile
import torch
from PIL import Image as PILImage
from torch import Tensor

from .errors import ImageReadError, ImageWriteError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "Image",
    "image_size",
    "read_image",
    "write_image",
    "to_tensor",
    "to_array",
    "VideoInfo",
    "probe_video",
    "read_video",
    "read_video_frames",
    "video_fps",
    "VideoWriter",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# Images with more pixels are refused, from their header, in every format: Pillow's decompression-bomb limit
# (2 x Image.MAX_IMAGE_PIXELS), kept on purpose. Tiling bounds the network's memory, but an image's own copies
# (decoded, float tensor, result, tile accumulators, encoding) take about 50 bytes a pixel: 9 GB at this size.
MAX_PIXELS = 178_956_970

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> PyAV pixel format for 16-bit samples (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA).
_PNG16_READ_FORMATS = {0: "gray16le", 2: "rgb48le", 4: "ya16le", 6: "rgba64le"}
# Channel count -> PyAV formats (numpy side little-endian, PNG encoder side big-endian: ffmpeg's PNG
# encoder only accepts the big-endian variants, which is what the PNG format stores).
_PNG16_WRITE_FORMATS = {1: "gray16", 2: "ya16", 3: "rgb48", 4: "rgba64"}
_MAX_VALUE = {8: 255, 16: 65535}
_DTYPE = {8: np.uint8, 16: np.uint16}
# What decoders raise on a bad file: Pillow (OSError, SyntaxError, struct.error), tifffile (ValueError
# subclasses), ffmpeg (av.FFmpegError), zlib on broken compressed streams.
_CODEC_ERRORS = (OSError, ValueError, TypeError, SyntaxError, EOFError, struct.error, zlib.error, *_AV_ERRORS,
                 *_CV2_ERRORS)
# PNG colour types OpenCV reads and writes as they are: gray (0), RGB (2), RGBA (6); and their channel counts
_CV2_PNG_CHANNELS = {0: 1, 2: 3, 6: 4}


@dataclass
class Image:
    """A decoded image: colour data as a tensor, alpha kept aside untouched.

    Attributes:
        data: (C, H, W) float32 in [0, 1], C = 1 (grayscale) or 3 (RGB).
        alpha: (H, W) alpha channel in the file's own dtype, or None.
        bit_depth: 8 or 16, the precision to write the image back with.
    """

    data: Tensor
    alpha: np.ndarray | None = None
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[0] not in (1, 3):
            raise ValueError(f"Image.data must be (C, H, W) with C in (1, 3), got {tuple(self.data.shape)}")
        if self.bit_depth not in _MAX_VALUE:
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        if self.alpha is not None and self.alpha.shape != tuple(self.data.shape[1:]):
            raise ValueError(f"alpha must be (H, W) = {tuple(self.data.shape[1:])}, got {self.alpha.shape}")

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    @property
    def mode(self) -> str:
        """Pillow-style mode name: "L", "LA", "RGB" or "RGBA"."""
        base = "L" if self.data.shape[0] == 1 else "RGB"
        return base + ("A" if self.alpha is not None else "")


def to_tensor(array: np.ndarray) -> tuple[Tensor, np.ndarray | None, int]:
    """Convert a decoded image array to a float tensor, its alpha channel and its bit depth.

    Args:
        array: (H, W), (H, W, 1), (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA; dtype uint8,
            uint16, bool or float (float is taken to be in [0, 1] and clipped).

    Returns:
        ``(data, alpha, bit_depth)``: data (C, H, W) float32 in [0, 1] with C = 1 or 3; alpha (H, W) in
        the array's own dtype or None; bit_depth 8 for uint8/bool, 16 for uint16 and float (so that float
        data keeps more than 8 bits when written back).

    Raises:
        ValueError: unsupported shape or dtype.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, C) array with C in 1..4, got shape {array.shape}")
    colour_channels = 1 if array.shape[2] <= 2 else 3
    colour, alpha = array[..., :colour_channels], None
    if array.shape[2] in (2, 4):
        alpha = array[..., -1].copy()

    if array.dtype == np.uint8 or array.dtype == np.uint16:
        bit_depth = 8 if array.dtype == np.uint8 else 16
        values = colour.astype(np.float32) / _MAX_VALUE[bit_depth]
    elif array.dtype == np.bool_:
        bit_depth, values = 8, colour.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        bit_depth, values = 16, np.clip(np.nan_to_num(colour.astype(np.float32)), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported image dtype {array.dtype} (expected uint8, uint16, bool or float)")
    data = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    return data, alpha, bit_depth


def to_array(tensor: Tensor, bit_depth: int = 8, alpha: np.ndarray | None = None) -> np.ndarray:
    """Quantise a float image tensor (and an optional alpha channel) to an 8- or 16-bit array.

    Values are clamped to [0, 1] and rounded: ``round(x * 255)`` or ``round(x * 65535)``.
    An alpha channel whose dtype is not the output dtype is rescaled to it (uint8 <-> uint16, float or
    bool in [0, 1]); one that already matches is copied bit for bit.

    Args:
        tensor: (C, H, W) or (1, C, H, W), C = 1 or 3, float in [0, 1].
        bit_depth: 8 (uint8) or 16 (uint16).
        alpha: optional (H, W) alpha channel.

    Returns:
        (H, W) for grayscale, (H, W, 2) grayscale+alpha, (H, W, 3) RGB or (H, W, 4) RGBA.

    Raises:
        ValueError: bad shape, channel count, bit depth or alpha size.
    """
    if bit_depth not in _MAX_VALUE:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) tensor with C in (1, 3), got {tuple(tensor.shape)}")
    max_value, dtype = _MAX_VALUE[bit_depth], _DTYPE[bit_depth]
    values = tensor.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(max_value).round()
    array = values.numpy().astype(dtype).transpose(1, 2, 0)
    if alpha is None:
        return np.ascontiguousarray(array[..., 0] if array.shape[2] == 1 else array)
    alpha = np.asarray(alpha)
    if alpha.shape != array.shape[:2]:
        raise ValueError(f"alpha must be (H, W) = {array.shape[:2]}, got {alpha.shape}")
    return np.concatenate([array, _alpha_as(alpha, bit_depth)[..., None]], axis=2)


def _alpha_as(alpha: np.ndarray, bit_depth: int) -> np.ndarray:
    """Alpha in the output dtype: unchanged when it already has it, rescaled otherwise."""
    dtype, max_value = _DTYPE[bit_depth], _MAX_VALUE[bit_depth]
    if alpha.dtype == dtype:
        return alpha
    if alpha.dtype == np.uint8 or alpha.dtype == np.uint16:
        unit = alpha.astype(np.float64) / np.iinfo(alpha.dtype).max
    else:
        unit = np.clip(alpha.astype(np.float64), 0.0, 1.0)
    return np.round(unit * max_value).astype(dtype)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels.

    Raises:
        ImageReadError: missing file, unknown extension, or a header that cannot be read.
    """
    path = _check_image_path(path)
    try:
        width, height = _header_size(path, path.suffix.lower())
    except ImageReadError:
        raise
    except _CODEC_ERRORS as err:
        raise ImageReadError(path, f"not a readable image header ({type(err).__name__}: {err})") from err
    if width * height == 0:
        raise ImageReadError(path, f"not a readable {path.suffix.lower().lstrip('.').upper()} image header")
    return height, width


def _check_image_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ImageReadError(path, f"unsupported extension '{path.suffix}' (expected one of {IMAGE_EXTENSIONS})")
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")
    return path


def read_image(path: str | Path) -> Image:
    """Read an 8- or 16-bit PNG, JPEG, TIFF, BMP or WEBP file.

    Args:
        path: image file; its extension must be one of :data:`IMAGE_EXTENSIONS`.

    Returns:
        :class:`Image` with (C, H, W) float32 data in [0, 1] (C = 1 for grayscale files, 3 otherwise),
        the alpha channel if the file has one, and the file's bit depth (8 or 16; float TIFF counts as 16).

    Raises:
        ImageReadError: the file is missing, a directory, has an unknown extension, or is corrupt or
            truncated. The message names the file.
    """
    path = _check_image_path(path)
    ext = path.suffix.lower()
    try:
        _check_pixels(path, *_header_size(path, ext))
        if ext == ".png":
            array = _read_png(path)
        elif ext in (".tif", ".tiff"):
            array = _read_tiff(path)
        else:
            array = _read_pillow(path)
        data, alpha, bit_depth = to_tensor(array)
    except ImageReadError:
        raise
    except _CODEC_ERRORS as err:
        raise ImageReadError(path, f"{type(err).__name__}: {err}") from err
    return Image(data=data, alpha=alpha, bit_depth=bit_depth)


def _header_size(path: Path, ext: str) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    if ext == ".png":
        with path.open("rb") as f:
            header = f.read(24)
        if len(header) == 24 and header[:8] == _PNG_SIGNATURE and header[12:16] == b"IHDR":
            return struct.unpack(">II", header[16:24])
        return 0, 0  # not a PNG: _read_png says so
    if ext in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            if not len(tif.pages):
                return 0, 0  # no image at all: _read_tiff says so
            page = tif.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    try:
        with _pillow_open(path) as im:
            return im.size
    except PILImage.DecompressionBombError as err:  # Pillow refuses to open it at all: its size is unknown
        raise ImageReadError(path, f"{err} Images above {MAX_PIXELS / 1e6:.0f} megapixels are refused: split or "
                                   "downscale it first") from err


def _pillow_open(path: Path):
    # Pillow warns from 89 megapixels and refuses above twice that; MAX_PIXELS is this module's own limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        return PILImage.open(path)


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageReadError(path, f"{width}x{height} = {width * height / 1e6:.0f} megapixels, above the "
                                   f"{MAX_PIXELS / 1e6:.0f}-megapixel limit (its own copies in memory would take "
                                   f"~{width * height * 50 / 1e9:.0f} GB); split or downscale it first")


def _read_png(path: Path) -> np.ndarray:
    with path.open("rb") as f:
        header = f.read(26)
    # Signature (8 bytes), IHDR length and type (8), width, height (8), bit depth, colour type.
    if len(header) < 26 or header[:8] != _PNG_SIGNATURE or header[12:16] != b"IHDR":
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
    return _read_pillow(path)


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
    if array is None or array.dtype != _DTYPE[bit_depth] or (1 if array.ndim == 2 else array.shape[2]) != channels:
        raise ImageReadError(path, "corrupt or truncated PNG file (libpng could not decode it)")
    return array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]  # BGR(A) -> RGB(A)


def _encode_png_cv2(path: Path, array: np.ndarray) -> None:
    channels = 1 if array.ndim == 2 else array.shape[2]
    bgr = array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]
    # zlib level 1 with run-length matching over the Sub filter's differences: what OpenCV's own default
    # level 1 leaves 1.6x slower (the filter is chosen per row otherwise), at the same file size
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
    ok, encoded = cv2.imencode(".png", bgr, params)
    if not ok:
        raise ImageWriteError(path, "OpenCV could not encode the PNG")
    path.write_bytes(encoded.tobytes())


def _read_tiff(path: Path) -> np.ndarray:
    array = tifffile.imread(path)
    if array is None:  # tifffile returns None (after logging a warning) when it finds no page
        raise ImageReadError(path, "no image data in TIFF file")
    if array.ndim == 3 and array.shape[0] in (2, 3, 4) and array.shape[2] > 4:
        array = array.transpose(1, 2, 0)  # planar (separate) storage comes back as (C, H, W)
    return array


def _read_pillow(path: Path) -> np.ndarray:
    # Pillow raises OSError("image file is truncated") on a short file as long as
    # ImageFile.LOAD_TRUNCATED_IMAGES is False (its default), which this module relies on and never sets.
    with _pillow_open(path) as im, warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        im.load()
        if im.mode == "PA" or (im.mode in ("P", "RGB", "L") and "transparency" in im.info):
            im = im.convert("LA" if im.mode == "L" else "RGBA")
        elif im.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")  # CMYK, YCbCr, palette, RGBX, ...
        array = np.array(im)
    if array.dtype == np.int32:  # Pillow's "I" mode: 16-bit gray data held in int32
        array = np.clip(array, 0, 65535).astype(np.uint16)
    return array


def write_image(
    path: str | Path,
    image: Image | Tensor,
    *,
    bit_depth: int | None = None,
    alpha: np.ndarray | None = None,
) -> None:
    """Write an image; the format follows the extension.

    PNG and TIFF keep 8 or 16 bits; JPEG, BMP and WEBP are 8-bit only, so a 16-bit image is quantised to
    8 bits there. Alpha is dropped for JPEG and BMP, and WEBP stores gray+alpha as RGBA. JPEG is written
    at quality 95 and WEBP losslessly, because these are restored images that should not be degraded
    again; PNG at zlib level 1, for speed. The parent directory must exist (it is not created here).

    Args:
        path: output file with an extension from :data:`IMAGE_EXTENSIONS`.
        image: an :class:`Image`, or a (C, H, W) float tensor in [0, 1] with C = 1 or 3.
        bit_depth: 8 or 16; for an :class:`Image` it overrides ``image.bit_depth``, for a tensor it
            defaults to 8.
        alpha: optional (H, W) alpha channel; for an :class:`Image` it overrides ``image.alpha``.

    Raises:
        ImageWriteError: unknown extension or the file could not be written. The message names the file.
    """
    path = Path(path)
    if isinstance(image, Image):
        data = image.data
        bit_depth = image.bit_depth if bit_depth is None else bit_depth
        alpha = image.alpha if alpha is None else alpha
    else:
        data, bit_depth = image, 8 if bit_depth is None else bit_depth
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ImageWriteError(path, f"unsupported extension '{path.suffix}' (expected one of {IMAGE_EXTENSIONS})")
    if ext in (".jpg", ".jpeg", ".bmp", ".webp"):
        bit_depth = 8
    if ext in (".jpg", ".jpeg", ".bmp"):
        alpha = None  # JPEG has no alpha; Pillow cannot write gray+alpha BMP nor read RGBA BMP back
    try:
        _encode(path, ext, to_array(data, bit_depth, alpha), bit_depth)
    except _CODEC_ERRORS as err:
        raise ImageWriteError(path, f"{type(err).__name__}: {err}") from err


def _encode(path: Path, ext: str, array: np.ndarray, bit_depth: int) -> None:
    """Write an (H, W[, C]) uint8/uint16 array with the fastest codec that keeps it exactly (lossy only for JPEG)."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    if ext in (".tif", ".tiff"):
        tifffile.imwrite(path, array, photometric="rgb" if channels >= 3 else "minisblack",
                         extrasamples=["unassalpha"] if channels in (2, 4) else None)
    elif ext == ".png" and cv2 is not None and channels != 2:
        _encode_png_cv2(path, array)  # gray, RGB, RGBA in 8 or 16 bits; gray+alpha below
    elif ext == ".png" and bit_depth == 16:
        fmt = _PNG16_WRITE_FORMATS[channels]
        iio.imwrite(path, array, plugin="pyav", codec="png", is_batch=False, in_pixel_format=fmt + "le",
                    out_pixel_format=fmt + "be")
    else:
        # PNG at zlib level 1 (gray+alpha, or no OpenCV): still lossless, files ~15% larger than Pillow's
        # default level 6, but 5x faster to encode (0.06 vs 0.28 s for a 720p frame here)
        options = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True},
                   ".png": {"compress_level": 1}}
        PILImage.fromarray(array).save(path, **options.get(ext, {}))


# Video: PyAV (ffmpeg) directly, imported where it is needed, so that photos load without it.

_ISO_BMFF = (".mp4", ".m4v", ".mov")  # containers whose index (the 'moov' box) may be written last
_AVFMT_VARIABLE_FPS = 0x0400  # ffmpeg's flag of the containers that store a timestamp per frame


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a video file's header.

    Attributes:
        fps: average frame rate of the first video stream, exact (30000/1001, not 29.97).
        frames: video frames the container declares; 0 where it does not say (MKV, WebM).
        width, height: frame size in pixels.
        time_base: the unit of the video stream's timestamps, in seconds.
        audio: the codec of each audio stream, in stream order.
    """

    fps: Fraction
    frames: int
    width: int
    height: int
    time_base: Fraction
    audio: tuple[str, ...]


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's frame rate, frame count, size, time base and audio codecs without decoding it.

    Raises:
        ImageReadError: the file is missing, empty, truncated, not a video or has no video stream; the
            reason says which.
    """
    path = Path(path)
    with _open_video(path) as container:
        video = container.streams.video[0]
        return VideoInfo(
            fps=_frame_rate(video),
            frames=int(video.frames),
            width=int(video.codec_context.width),
            height=int(video.codec_context.height),
            time_base=Fraction(video.time_base),
            audio=tuple(s.codec_context.name for s in container.streams.audio),
        )


def read_video(path: str | Path) -> Iterator[tuple[np.ndarray, int | None]]:
    """Stream the frames of a video file with their timestamps.

    The file is opened (and checked) when this function is called, not on the first ``next()``.

    Args:
        path: any video ffmpeg can decode (mp4, mkv, mov, avi, webm, ...).

    Returns:
        An iterator of ``(frame, pts)``: an (H, W, 3) uint8 RGB frame and its presentation time in units of
        :attr:`VideoInfo.time_base` (None where the container gives none).

    Raises:
        ImageReadError: the file is missing or not a decodable video; also raised mid-stream for damaged
            data, and after the last frame when fewer frames decode than the container declares (a
            truncated file).
    """
    path = Path(path)
    return _decode_frames(_open_video(path), path)


def read_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of :func:`read_video` without their timestamps: (H, W, 3) uint8 RGB arrays."""
    frames = read_video(path)  # opens the file now, so a bad one raises here
    return (frame for frame, _ in frames)


def video_fps(path: str | Path) -> float:
    """Frame rate of a video file (average frame rate of its first video stream).

    Raises:
        ImageReadError: the file is missing or not a decodable video.
    """
    return float(probe_video(path).fps)


def _open_video(path: Path):
    """An open PyAV input container with at least one video stream, or an ImageReadError saying why not."""
    import av

    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ImageReadError(path, _unopenable_reason(path, err)) from err
    if not container.streams.video:
        audio = len(container.streams.audio)
        container.close()
        raise ImageReadError(path, "no video stream in it" + (f" (only {audio} audio stream(s))" if audio else ""))
    return container


def _unopenable_reason(path: Path, err: Exception) -> str:
    import av

    if path.suffix.lower() in _ISO_BMFF:
        boxes = _top_level_boxes(path)
        if boxes[:1] == [b"ftyp"] and b"moov" not in boxes:
            return ("truncated: its index (the 'moov' box, written when a recording ends) is missing, so the file "
                    "was cut off before it was finished")
    if isinstance(err, av.InvalidDataError):
        return f"not a video: ffmpeg recognises no video format in it (is it really a {path.suffix} file?)"
    return f"ffmpeg cannot open it: {err}"


def _top_level_boxes(path: Path) -> list[bytes]:
    """The types of the top-level boxes of an MP4/MOV file, in order, as far as the file goes."""
    types, offset, size = [], 0, path.stat().st_size
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            length, kind = struct.unpack(">I4s", f.read(8))
            if length == 1:  # a 64-bit size follows the type
                length = struct.unpack(">Q", f.read(8))[0] if offset + 16 <= size else 0
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8:
                break
            types.append(kind)
            offset += length
    return types


def _frame_rate(video) -> Fraction:
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return Fraction(rate) if rate else Fraction(25)


def _decode_frames(container, path: Path) -> Iterator[tuple[np.ndarray, int | None]]:
    import av

    decoded = 0
    with container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"  # frame and slice threads: decoding keeps ahead of the network
        declared = int(video.frames)
        try:
            for frame in container.decode(video):
                yield frame.to_ndarray(format="rgb24"), frame.pts
                decoded += 1
        except av.FFmpegError as err:
            raise ImageReadError(path, f"damaged: decoding stopped after {decoded} frames ({err})") from err
    if decoded < declared:
        raise ImageReadError(path, f"truncated: {decoded} of the {declared} frames its header declares could be "
                                   "decoded")


class VideoWriter:
    """Write frames to a video (H.264 in yuv420p by default), with another video's audio if asked.

    yuv420p subsamples chroma 2x2, so frames of odd size are padded by one row and/or column replicating the
    edge pixels (no content is lost; the video is at most one pixel larger than the frames). All frames must
    have the size of the first one.

    Audio (``audio_from``): each audio stream is copied packet by packet, without re-encoding, where the
    container accepts its codec, else decoded and re-encoded to AAC (or, where the container takes no AAC,
    to its own default audio codec, e.g. Opus for WebM); :attr:`notes` says which. Audio packets are
    interleaved with the video by time as the frames arrive.

    Args:
        path: output file; the container follows the extension (.mp4, .mkv, .mov, .webm, ...).
        fps: frames per second; a Fraction keeps rates such as 30000/1001 exact.
        codec: an ffmpeg video encoder: libx264 (default), libx265, libvpx-vp9, mpeg4, ...
        crf: constant rate factor of the encoders that have one (x264 and x265: 0 lossless, 18 visually
            lossless, 23 their own default; VP9: 0-63); others ignore it.
        time_base: the unit of the ``pts`` passed to :meth:`write`, in seconds (default ``1 / fps``).
        audio_from: a video whose audio streams go into the output.

    Attributes:
        notes: what happened to each audio stream, one line each, for reports.

    Raises:
        ValueError: an unknown codec, or one the container cannot hold.
        ImageWriteError: the file cannot be created or written.

    Example:
        >>> with VideoWriter("out.mp4", fps=25) as video:  # doctest: +SKIP
        ...     for frame in frames:
        ...         video.write(frame)
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction = 24.0,
        *,
        codec: str = "libx264",
        crf: int = 18,
        time_base: Fraction | None = None,
        audio_from: str | Path | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.codec, self.crf = codec, crf
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.notes: list[str] = []
        try:
            encoder = av.Codec(codec, "w")
        except (ValueError, av.FFmpegError) as err:  # UnknownCodecError
            raise ValueError(f"unknown video codec '{codec}' (ffmpeg encoders such as libx264, libx265, "
                             "libvpx-vp9, mpeg4)") from err
        if encoder.type != "video":
            raise ValueError(f"'{codec}' is an {encoder.type} codec, not a video one")
        try:
            self._out = av.open(str(self.path), "w")
        except _CODEC_ERRORS as err:
            raise ImageWriteError(self.path, f"{type(err).__name__}: {err}") from err
        supported = self._out.supported_codecs
        if supported and encoder.canonical_name not in supported:
            self._out.close()
            self.path.unlink(missing_ok=True)
            raise ValueError(f"a {self.path.suffix} file cannot hold {codec} ({encoder.canonical_name}) video; "
                             "choose another codec or output extension")
        self._pix_fmt = "yuv420p" if "yuv420p" in {f.name for f in encoder.video_formats or ()} else None
        self._stream = None
        self._audio: _AudioCarrier | None = None
        self._size: tuple[int, int] | None = None
        self._scale = Fraction(1)  # self.time_base -> the encoder's time base
        self._last_pts: int | None = None  # of the previous frame, in the encoder's time base

    def write(self, frame: Tensor | np.ndarray, pts: int | None = None) -> None:
        """Append one frame.

        Args:
            frame: (C, H, W) float tensor in [0, 1] (C = 1 or 3), or an (H, W, 3) uint8 array.
            pts: its presentation time in units of ``time_base`` (default: right after the previous frame).
        """
        import av

        if isinstance(frame, Tensor):
            frame = to_array(frame.expand(3, -1, -1) if frame.shape[-3] == 1 else frame, 8)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        size = frame.shape[:2]
        if self._size is None:
            self._size = size
            self._open_streams(size)
        elif size != self._size:
            raise ValueError(f"all frames must be {self._size} (H, W), got {size}")
        if self._pix_fmt == "yuv420p":
            frame = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
        time_base = self._stream.codec_context.time_base
        if pts is None:  # one frame after the previous one
            out_pts = 0 if self._last_pts is None else self._last_pts + max(1, round(1 / self.fps / time_base))
        else:
            out_pts = round(Fraction(pts) * self._scale)
            if self._last_pts is not None and out_pts <= self._last_pts:  # encoders need increasing times
                out_pts = self._last_pts + 1
        self._last_pts = out_pts
        try:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = out_pts, time_base
            if self._audio is not None:  # the audio up to this frame first, so the file stays interleaved
                self._audio.mux_until(out_pts * time_base)
            self._out.mux(self._stream.encode(video_frame))
        except _CODEC_ERRORS as err:
            raise ImageWriteError(self.path, f"{type(err).__name__}: {err}") from err

    def _open_streams(self, size: tuple[int, int]) -> None:
        import av

        h, w = size
        if self._pix_fmt == "yuv420p":
            h, w = h + h % 2, w + w % 2
        time_base = self._encoder_time_base(h, w)
        self._scale = self.time_base / time_base
        try:
            self._stream = self._out.add_stream(self.codec, rate=self.fps, options={"crf": str(self.crf)})
            self._stream.width, self._stream.height = w, h
            if self._pix_fmt:
                self._stream.pix_fmt = self._pix_fmt
            self._stream.codec_context.time_base = time_base
            if self.audio_from is not None:
                self._audio = _AudioCarrier(self.audio_from, self._out)
                self.notes = self._audio.notes
        except (*_CODEC_ERRORS, av.FFmpegError) as err:
            raise ImageWriteError(self.path, f"{type(err).__name__}: {err}") from err

    def _encoder_time_base(self, h: int, w: int) -> Fraction:
        """The frames' own time base where the container keeps timestamps and the encoder takes it, so that
        every frame keeps its time exactly; else 1/fps. (AVI stores a frame rate, not timestamps; MPEG-4
        Part 2 allows no denominator above 65535, where 90 kHz is common.)"""
        import av

        if not self._out.format.flags & _AVFMT_VARIABLE_FPS:
            return 1 / self.fps
        trial = av.CodecContext.create(self.codec, "w")
        trial.width, trial.height, trial.time_base, trial.framerate = w, h, self.time_base, self.fps
        if self._pix_fmt:
            trial.pix_fmt = self._pix_fmt
        try:
            trial.open()
        except av.FFmpegError:
            return 1 / self.fps
        return self.time_base

    def close(self) -> None:
        """Flush the encoders, add the rest of the audio and close the file."""
        try:
            if self._stream is not None:
                self._out.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._out.close()
        except _CODEC_ERRORS as err:
            raise ImageWriteError(self.path, f"{type(err).__name__}: {err}") from err
        finally:
            if self._audio is not None:
                self._audio.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _AudioCarrier:
    """The audio streams of ``source`` carried into the output container ``out``: each copied packet by
    packet where ``out`` accepts its codec, else decoded and re-encoded (AAC, or ``out``'s own default)."""

    def __init__(self, source: Path, out) -> None:
        import av

        self.out = out
        self.notes: list[str] = []
        self.routes: dict[int, tuple[Any, bool]] = {}  # input stream index -> (output stream, copied?)
        self._in = av.open(str(source))
        supported = out.supported_codecs
        fmt = Path(out.name).suffix or out.format.name
        for k, stream in enumerate(self._in.streams.audio, start=1):
            name = stream.codec_context.name
            try:
                self.routes[stream.index] = (out.add_stream_from_template(stream), True)
                self.notes.append(f"audio stream {k} ({name}) copied without re-encoding")
                continue
            except (ValueError, av.FFmpegError):
                pass
            target = "aac" if not supported or "aac" in supported else out.default_audio_codec
            try:
                encoder = av.Codec(target, "w")
                rate = stream.rate
                if encoder.audio_rates and rate not in encoder.audio_rates:  # e.g. Opus: 48 kHz and fractions
                    rate = min(encoder.audio_rates, key=lambda r: (r < rate, abs(r - rate)))
                channels = stream.codec_context.channels
                layout = {1: "mono", 2: "stereo"}.get(channels, stream.layout.name)
                self.routes[stream.index] = (out.add_stream(target, rate=rate, layout=layout), False)
                self.notes.append(f"audio stream {k} ({name}) re-encoded to {encoder.canonical_name.upper()}: a "
                                  f"{fmt} file cannot hold {name} as it is")
            except (ValueError, av.FFmpegError) as err:
                self.notes.append(f"audio stream {k} ({name}) dropped: a {fmt} file cannot hold it and it could "
                                  f"not be re-encoded ({err})")
        wanted = [s for s in self._in.streams.audio if s.index in self.routes]
        self._packets = self._in.demux(*wanted) if wanted else iter(())
        self._pending = None

    def mux_until(self, time: Fraction | None) -> None:
        """Mux the packets that start before ``time`` seconds (all that remain for None)."""
        while True:
            packet, self._pending = self._pending or next(self._packets, None), None
            if packet is None:
                return
            stamp = packet.dts if packet.dts is not None else packet.pts
            if time is not None and stamp is not None and stamp * packet.time_base >= time:
                self._pending = packet
                return
            self._mux(packet)

    def _mux(self, packet) -> None:
        stream, copied = self.routes[packet.stream.index]
        if copied:
            if packet.dts is not None:  # a packet without one is the demuxer's end-of-stream marker
                packet.stream = stream
                self.out.mux(packet)
            return
        for frame in packet.decode():  # the end-of-stream marker flushes the decoder
            frame.pts = None  # the encoder counts samples from the start
            self.out.mux(stream.encode(frame))

    def finish(self) -> None:
        self.mux_until(None)
        for stream, copied in self.routes.values():
            if not copied:
                self.out.mux(stream.encode(None))

    def close(self) -> None:
        self._in.close()
