"""The one image and video IO boundary of the project.

Everything else in core works on float tensors in ``[0, 1]``; this package is the only place where 8- and
16-bit arrays are read, quantised and written:

* :mod:`~deblur_core.io.convert`: decoded 8- and 16-bit arrays to float tensors and back, and the
  :class:`Image` a decoded file becomes (its integer pixels kept, if asked, and converted when first used).
* :mod:`~deblur_core.io.image`: image files (PNG, JPEG, TIFF, BMP, WEBP) to and from tensors, with alpha
  kept aside untouched; image files found in a folder tree.
* :mod:`~deblur_core.io.png`: which codec (OpenCV, Pillow, PyAV) reads and writes which PNG file.
* :mod:`~deblur_core.io.video` and :mod:`~deblur_core.io.video_writer`: video decoding, and encoding with audio
  carried over, through PyAV (ffmpeg).
* :mod:`~deblur_core.io.atomic`: writing an output file whole or not at all, one writer at a time.
"""

from .convert import Image, to_array, to_pixels, to_tensor, unit_float
from .image import (IMAGE_EXTENSIONS, MAX_PIXELS, check_pixels, image_size, list_images, natural_key, read_image,
                    write_image)
from .video import VideoInfo, probe_video, read_video, read_video_frames, video_fps
from .video_writer import VideoWriter

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "Image",
    "check_pixels",
    "image_size",
    "read_image",
    "write_image",
    "to_tensor",
    "to_pixels",
    "unit_float",
    "to_array",
    "natural_key",
    "list_images",
    "VideoInfo",
    "probe_video",
    "read_video",
    "read_video_frames",
    "video_fps",
    "VideoWriter",
]
