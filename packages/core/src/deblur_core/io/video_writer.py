"""Writing video through PyAV (ffmpeg) directly: :class:`VideoWriter` encodes frames (H.264 by default) at
their timestamps and carries another video's audio streams over, copied where the container accepts them.

PyAV is imported where it is needed, so that photos load without it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import ImageWriteError
from .image import CODEC_ERRORS, to_array

__all__ = ["VideoWriter"]

_AVFMT_VARIABLE_FPS = 0x0400  # ffmpeg's flag of the containers that store a timestamp per frame


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
        except CODEC_ERRORS as err:
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
        except CODEC_ERRORS as err:
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
        except (*CODEC_ERRORS, av.FFmpegError) as err:
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
        except CODEC_ERRORS as err:
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
