"""Image files: decoding to float tensors in ``[0, 1]``, quantising and encoding back; finding them on disk.

Backends are chosen by extension:

* PNG: OpenCV, Pillow or PyAV by bit depth and colour type, see :mod:`deblur_core.io.png`.
* TIFF: tifffile (uint8, uint16 and float data; float is clipped to ``[0, 1]`` and written back as 16-bit).
* JPEG, BMP, WEBP: Pillow, 8-bit only (a 16-bit image is quantised to 8 bits on write).

Alpha is never part of the tensor: it is returned beside it in the file's own dtype and written back
unchanged, so a deblurring model never sees or alters it.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from pathlib import Path

try:  # PyAV (a 36 MB wheel bundling ffmpeg) decodes 16-bit PNG and video; photos load without it
    import av

    _AV_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError,)
except ImportError:
    _AV_ERRORS = ()
import numpy as np
import tifffile
from PIL import Image as PILImage
from torch import Tensor

from ..errors import ImageReadError, ImageTooLargeError, ImageWriteError
from .convert import Image, to_array, to_pixels, to_tensor
from .png import OPENCV_ERRORS, png_size, read_png, write_png

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "check_pixels", "image_size", "read_image", "write_image", "natural_key",
           "list_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# Images with more pixels are refused, from their header, in every format: Pillow's decompression-bomb limit
# (2 x Image.MAX_IMAGE_PIXELS), kept on purpose. Tiling bounds the network's memory, but an image's own copies
# (decoded, float tensor, result, tile accumulators, encoding) take about 50 bytes a pixel: 9 GB at this size.
MAX_PIXELS = 178_956_970

# What codecs raise on a bad file (video.py's encoders too): Pillow (OSError, SyntaxError, struct.error),
# tifffile (ValueError subclasses), ffmpeg (av.FFmpegError), OpenCV (cv2.error), zlib on broken streams.
CODEC_ERRORS = (OSError, ValueError, TypeError, SyntaxError, EOFError, struct.error, zlib.error, *_AV_ERRORS,
                *OPENCV_ERRORS)
# JPEG at quality 95 and WEBP losslessly (see write_image)
_PILLOW_WRITE_OPTIONS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True}}


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
    except CODEC_ERRORS as err:
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


def read_image(path: str | Path, *, keep_pixels: bool = False) -> Image:
    """Read an 8- or 16-bit PNG, JPEG, TIFF, BMP or WEBP file.

    Args:
        path: image file; its extension must be one of :data:`IMAGE_EXTENSIONS`.
        keep_pixels: keep the decoded 8- or 16-bit samples as the image's ``pixels``, converted to float
            data only when it is first read (for frames bound for a GPU, converted there); float and 1-bit
            files are converted at once all the same.

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
        check_pixels(path, *_header_size(path, ext))
        if ext == ".png":
            array = read_png(path)
            if array is None:  # an 8-bit file Pillow converts: palette, 1-bit, transparency, gray+alpha
                array = _read_pillow(path)
        elif ext in (".tif", ".tiff"):
            array = _read_tiff(path)
        else:
            array = _read_pillow(path)
        if keep_pixels and array.dtype in (np.uint8, np.uint16):
            pixels, alpha = to_pixels(array)
            return Image(pixels=pixels, alpha=alpha)
        data, alpha, bit_depth = to_tensor(array)
    except ImageReadError:
        raise
    except CODEC_ERRORS as err:
        raise ImageReadError(path, f"{type(err).__name__}: {err}") from err
    return Image(data=data, alpha=alpha, bit_depth=bit_depth)


def _header_size(path: Path, ext: str) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    if ext == ".png":
        return png_size(path)
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


def check_pixels(path: str | Path, width: int, height: int, limit: int | None = None) -> None:
    """Refuse an image of more than ``limit`` pixels (default :data:`MAX_PIXELS`) from its size alone: a small
    compressed file can expand to gigabytes (a decompression bomb), so this runs on the header.

    Raises:
        ImageTooLargeError: too many pixels; the message names ``path`` and says what to do.
    """
    limit = MAX_PIXELS if limit is None else limit
    if width * height > limit:
        raise ImageTooLargeError(path, f"{width}x{height} = {width * height / 1e6:.3g} megapixels, above the "
                                       f"{limit / 1e6:.3g}-megapixel limit (its own copies in memory would take "
                                       f"~{width * height * 50 / 1e9:.0f} GB); split, crop or downscale it first")


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
    except CODEC_ERRORS as err:
        raise ImageWriteError(path, f"{type(err).__name__}: {err}") from err


def _encode(path: Path, ext: str, array: np.ndarray, bit_depth: int) -> None:
    """Write an (H, W[, C]) uint8/uint16 array with the fastest codec that keeps it exactly (lossy only for JPEG)."""
    if ext in (".tif", ".tiff"):
        channels = 1 if array.ndim == 2 else array.shape[2]
        tifffile.imwrite(path, array, photometric="rgb" if channels >= 3 else "minisblack",
                         extrasamples=["unassalpha"] if channels in (2, 4) else None)
    elif ext == ".png":
        write_png(path, array, bit_depth)
    else:
        PILImage.fromarray(array).save(path, **_PILLOW_WRITE_OPTIONS.get(ext, {}))


def natural_key(path: Path | str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10, clip 9/ < clip 10/."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursively, hidden files and folders skipped), in natural order
    of their path relative to ``root``."""
    root = Path(root)
    found = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root)))
