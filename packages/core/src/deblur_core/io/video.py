"""Reading video through PyAV (ffmpeg) directly (writing: :mod:`.video_writer`).

:func:`read_video` yields 8-bit RGB frames with their timestamps and :func:`probe_video` reads the header. A
file that cannot be read is refused with the reason: empty, not a video, truncated, or without a video stream.

PyAV (a 36 MB wheel bundling ffmpeg) is imported where it is needed, so that photos load without it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import ImageReadError

__all__ = ["VideoInfo", "probe_video", "read_video", "read_video_frames", "video_fps"]

_ISO_BMFF = (".mp4", ".m4v", ".mov")  # containers whose index (the 'moov' box) may be written last


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
