"""Decoded 8- and 16-bit arrays to float tensors in ``[0, 1]`` and back, and :class:`Image`, what a decoded file
becomes: the conversions at the IO boundary that every reader and writer of :mod:`deblur_core.io` shares."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["Image", "to_tensor", "to_pixels", "unit_float", "to_array"]

_MAX_VALUE = {8: 255, 16: 65535}
_DTYPE = {8: np.uint8, 16: np.uint16}
_BIT_DEPTH = {torch.uint8: 8, torch.uint16: 16}


class Image:
    """A decoded image: colour data as a tensor, alpha kept aside untouched.

    Made from float ``data``, or from the integer samples a file decoded to (``pixels``), which become
    :attr:`data` (by :func:`unit_float`) the first time it is read: a frame bound for a GPU crosses as its one
    or two bytes a sample and is converted there, to the values :func:`to_tensor` gives.

    Attributes:
        data: (C, H, W) float32 in [0, 1], C = 1 (grayscale) or 3 (RGB).
        pixels: (C, H, W) uint8 or uint16 as decoded, or None for an image made from float data.
        alpha: (H, W) alpha channel in the file's own dtype, or None.
        bit_depth: 8 or 16, the precision to write the image back with (the pixels' own when given).
    """

    def __init__(self, data: Tensor | None = None, alpha: np.ndarray | None = None, bit_depth: int = 8, *,
                 pixels: Tensor | None = None) -> None:
        if (data is None) == (pixels is None):
            raise ValueError("Image takes float data or integer pixels, one of the two")
        if pixels is not None:
            if pixels.dtype not in _BIT_DEPTH:
                raise ValueError(f"Image.pixels must be uint8 or uint16, got {pixels.dtype}")
            bit_depth = _BIT_DEPTH[pixels.dtype]
        colour = pixels if data is None else data
        if colour.ndim != 3 or colour.shape[0] not in (1, 3):
            raise ValueError(f"Image.data must be (C, H, W) with C in (1, 3), got {tuple(colour.shape)}")
        if bit_depth not in _MAX_VALUE:
            raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
        if alpha is not None and alpha.shape != tuple(colour.shape[1:]):
            raise ValueError(f"alpha must be (H, W) = {tuple(colour.shape[1:])}, got {alpha.shape}")
        self._data, self.pixels, self.alpha, self.bit_depth = data, pixels, alpha, bit_depth

    @property
    def data(self) -> Tensor:
        if self._data is None:
            # two threads that ask at once both convert, to the same values: cheaper than a lock per image
            self._data = unit_float(self.pixels)
        return self._data

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W), without converting the pixels."""
        c, h, w = (self.pixels if self._data is None else self._data).shape
        return int(c), int(h), int(w)

    @property
    def nbytes(self) -> int:
        """The bytes its tensors hold now: the pixels, and the float data once made."""
        return sum(t.nbytes for t in (self.pixels, self._data) if t is not None)

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @property
    def mode(self) -> str:
        """Pillow-style mode name: "L", "LA", "RGB" or "RGBA"."""
        base = "L" if self.shape[0] == 1 else "RGB"
        return base + ("A" if self.alpha is not None else "")


def _split(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) colour (C = 1 or 3) and (H, W) alpha or None, of an array :func:`to_tensor` takes."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, C) array with C in 1..4, got shape {array.shape}")
    colour_channels = 1 if array.shape[2] <= 2 else 3
    alpha = array[..., -1].copy() if array.shape[2] in (2, 4) else None
    return array[..., :colour_channels], alpha


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
    colour, alpha = _split(array)
    if colour.dtype == np.uint8 or colour.dtype == np.uint16:
        bit_depth = 8 if colour.dtype == np.uint8 else 16
        values = colour.astype(np.float32) / _MAX_VALUE[bit_depth]
    elif colour.dtype == np.bool_:
        bit_depth, values = 8, colour.astype(np.float32)
    elif np.issubdtype(colour.dtype, np.floating):
        bit_depth, values = 16, np.clip(np.nan_to_num(colour.astype(np.float32)), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported image dtype {colour.dtype} (expected uint8, uint16, bool or float)")
    data = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    return data, alpha, bit_depth


def to_pixels(array: np.ndarray) -> tuple[Tensor, np.ndarray | None]:
    """An 8- or 16-bit decoded array as (C, H, W) integer pixels, and its alpha channel, unconverted.

    Args:
        array: uint8 or uint16, of a shape :func:`to_tensor` takes.

    Returns:
        ``(pixels, alpha)``: pixels (C, H, W) in the array's dtype, C = 1 or 3; alpha (H, W) or None.

    Raises:
        ValueError: unsupported shape, or a dtype other than uint8 and uint16.
    """
    colour, alpha = _split(array)
    if colour.dtype != np.uint8 and colour.dtype != np.uint16:
        raise ValueError(f"pixels are uint8 or uint16, got {colour.dtype}")
    return torch.from_numpy(np.ascontiguousarray(colour.transpose(2, 0, 1))), alpha


def unit_float(pixels: Tensor) -> Tensor:
    """uint8 or uint16 samples as float32 in [0, 1], ``x / 255`` or ``x / 65535``, on their own device: the
    values :func:`to_tensor` gives for the same samples.

    Shape: any; the result has the shape and device of ``pixels``.
    """
    if pixels.dtype not in _BIT_DEPTH:
        raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    # divided by a tensor on the pixels' device, not by a Python number, which CUDA turns into a multiplication
    # by the number's reciprocal: x * (1 / 255) is off x / 255 in the last bit for some x
    divisor = torch.tensor(_MAX_VALUE[_BIT_DEPTH[pixels.dtype]], dtype=torch.float32, device=pixels.device)
    return pixels.to(torch.float32) / divisor

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
