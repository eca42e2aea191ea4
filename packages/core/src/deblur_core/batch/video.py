"""A video file into a new video with the same frame rate, timestamps and audio."""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

from torch import Tensor

from ..errors import ImageReadError, ImageWriteError
from ..inference import Deblurrer
from ..io import Image, probe_video, read_video, to_pixels, to_tensor
from ..io.atomic import AtomicVideo, check_writable_folder, out_of_space
from ..progress import ProgressFn
from .options import VIDEO_EXTENSIONS, BatchOptions, BatchReport, new_report
from .pipeline import FrameRun, frame_nbytes, full_reason, keeps_pixels, ordered_map, ready, side_by_side

__all__ = ["deblur_video"]


def _video_output(src: Path, out: str | Path | None) -> Path:
    if out is None:
        dst = src.with_name(src.stem + "_deblurred.mp4")
    else:
        dst = Path(out).resolve()
        if dst.suffix.lower() not in VIDEO_EXTENSIONS:
            dst = dst / (src.stem + ".mp4")
    if dst.is_dir():
        raise ValueError(f"output '{dst}' is a folder; pass --out a video file name or a folder to hold one")
    check_writable_folder(dst.parent)
    if dst == src:
        raise ValueError(f"output '{dst}' is the input video; pass another --out")
    return dst


def deblur_video(input: Path, out: str | Path | None, opts: BatchOptions, deb: Deblurrer | str | None,
                  progress: ProgressFn | None) -> BatchReport:
    """A video into a new video with the same frame rate, frame timestamps and audio; rank 0 only (a video
    is one output file). Frames are 8-bit RGB (what :func:`deblur_core.io.read_video` gives); odd sizes are
    padded by one edge pixel for yuv420p; audio is copied where the container accepts its codec, else
    re-encoded to AAC (the report's notes say which)."""
    src = input.resolve()
    dst = _video_output(src, out)
    deb = ready(deb)
    report = new_report(src, dst, deb, opts)
    side_path = dst.with_name(dst.stem + "_compare.mp4")
    if opts.rank != 0:
        report.notes.append(f"a video is one output file, so rank 0 processes it; rank {opts.rank} had nothing to do")
    elif not opts.overwrite and dst.exists() and (side_path.exists() or not opts.compare):
        try:
            report.skipped = report.total = probe_video(dst).frames
        except ImageReadError:
            report.skipped = report.total = 0
        report.notes.append(f"output '{dst}' exists: skipped (--overwrite redoes it)")
    else:
        try:
            _encode_video(src, dst, side_path if opts.compare else None, opts, report, deb, progress)
        except (ImageReadError, ImageWriteError) as err:
            if (full := out_of_space(err)) is not None:
                report.stopped = (f"{full_reason(full)} in '{dst.parent}': '{dst.name}' was not written (its "
                                  "partial file is removed); a rerun starts it again once there is room")
            report.failed = [] if full is not None else [(src.name, err.reason)]
            report.done, report.megapixels = 0, 0.0
            report.blur_effect_before = report.blur_effect_after = None
    return report


def _encode_video(src: Path, dst: Path, side_path: Path | None, opts: BatchOptions, report: BatchReport,
                  deb: Deblurrer, progress: ProgressFn | None) -> None:
    """Decode ``src`` frame by frame, deblur, encode to ``dst`` (and the side-by-side video), atomically.

    Raises:
        ImageReadError, ImageWriteError: the input cannot be decoded, or a frame cannot be deblurred or encoded
            (the output would be incomplete, so none is left; the first such frame stops the run).
    """
    info = probe_video(src)
    it, index = iter(read_video(src)), itertools.count()
    stamps: deque[int | None] = deque()  # timestamps of the frames on their way to the writer, in order
    pixels = keeps_pixels(deb.device)

    def next_frame(_: object) -> tuple[str, Image] | None:
        item = next(it, None)  # one decoder thread calls this, so frames arrive in order
        if item is None:
            return None
        array, pts = item
        stamps.append(pts)
        name = f"{src.name} frame {next(index)}"
        if pixels:
            return name, Image(pixels=to_pixels(array)[0])
        data, _alpha, bit_depth = to_tensor(array)
        return name, Image(data=data, bit_depth=bit_depth)

    encoding = dict(fps=info.fps, time_base=info.time_base, codec=opts.codec, crf=opts.crf, audio_from=src)
    with AtomicVideo(dst, **encoding) as video, AtomicVideo(side_path, **encoding) as side:

        def write(_: str, before: Image, after: Tensor) -> None:  # one encoder thread: in order
            pts = stamps.popleft()
            video.write(after, pts)
            if side.writer is not None:
                side.write(side_by_side(before, after).data, pts)

        with FrameRun(report, deb, opts, info.frames or None, progress, workers=1, stop_on_failure=True) as run:
            for item in ordered_map(next_frame, itertools.repeat(None), workers=1, nbytes=frame_nbytes):
                if item is None or run.stopped:
                    break
                report.total += 1
                run.add(*item, write)
        if run.full is not None:
            raise ImageWriteError(dst, full_reason(run.full)) from run.full
        if report.failed:
            name, reason = report.failed[0]
            raise ImageWriteError(dst, f"not written: {name}: {reason}")
        if report.done == 0:
            raise ImageReadError(src, "no video frames could be decoded")
    report.notes.extend(video.writer.notes)
