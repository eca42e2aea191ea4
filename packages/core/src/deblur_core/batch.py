"""Deblurring whole folders of frames and video files: the project's main job.

:func:`deblur_path` takes a folder of frames or a video file:

* A folder is walked recursively in natural order (so REDS's ``000/00000000.png`` layout works), and each
  output keeps its frame's relative path, file name and format under OUT (default: the sibling folder
  ``<INPUT>_deblurred``). Grayscale, RGBA (alpha copied unchanged) and 16-bit frames come out in the same
  mode and bit depth.
* A video becomes a new video (H.264 by default; ``codec``, ``crf``) with the same frame rate and frame
  timestamps (default: ``<stem>_deblurred.mp4`` beside it). Its audio streams are copied without
  re-encoding where the output container accepts their codec, else re-encoded to AAC; the report says which.

Pipeline: frames are decoded in reader threads and encoded in writer threads (:func:`io_workers` of each), so
IO overlaps the network (which releases the GIL). The queues on both sides are bounded in frames and in bytes,
so memory stays bounded whatever the frame size. Memory for the network is bounded too: consecutive frames of
one size are deblurred as one batch, as many as fit in a memory budget (:func:`deblur_core.inference.plan_batch`),
and a frame that does not fit alone runs in the fewest pixels of overlapping tiles that do
(:func:`deblur_core.inference.deblur_tensor`); ``tile`` sets square tiles instead.

Safety: nothing is ever written inside INPUT, and no input is modified. Each output is written to a hidden
temporary file in its own folder and renamed over the final name (:mod:`deblur_core.io.atomic`), so a killed
run never leaves a truncated output, and a rerun skips every output that exists (unless ``overwrite``).
An unreadable frame is recorded (file and reason) and the others are still processed, and so is a frame whose
output holds NaN (nothing is written for it: an image would store it as black). A full disk (or a spent
quota) stops the run at its first failed write: no frame enters the network after it, frames on their way
to the writers are dropped, and :attr:`BatchReport.stopped` says where and how many frames were written; a
video, one output file, is then not written at all.

Reproducibility: a frame's output is the same bytes however it was batched and whether the run was resumed
(on one machine, at one precision): each frame runs through the network alone, and whether it runs in
tiles depends on its size, the model and the machine's memory budget only.

Sharding: with ``world_size`` N, frame i of the whole input (natural order) belongs to rank ``i % N``, so
N processes (e.g. under torchrun) write disjoint sets of outputs whose union is every frame. A video is one
output file, so rank 0 processes it alone. Runs without sharding on one OUT are safe but each does every
frame: writers of the same output take turns on its temporary file (a lock), so none is left half written.

With ``compare``, a side-by-side image (input left, output right) per frame goes to
``OUT/_compare/<relative path>``; for a video, a side-by-side video ``<stem>_compare.mp4`` beside the output.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .catalog import gaussian_only, trained_on
from .errors import DeblurError, ImageReadError, ImageWriteError
from .inference import NON_FINITE_OUTPUT, Deblurrer, TilePlan, load_deblurrer, memory_budget, plan_batch
from .io import (IMAGE_EXTENSIONS, Image, list_images, probe_video, read_image, read_video, to_tensor,
                 write_image)
from .io.atomic import AtomicVideo, out_of_space, write_atomic
from .metrics import blur_effect
from .precision import check_precision

__all__ = [
    "VIDEO_EXTENSIONS",
    "COMPARE_DIR",
    "BatchOptions",
    "BatchReport",
    "deblur_path",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
COMPARE_DIR = "_compare"  # side-by-side images go to OUT/_compare/<relative path>

_IO_WORKERS = 2  # decoder and encoder threads beside a network on the CPU, which takes the cores itself
_QUEUE_FRAMES = 8  # frames decoded ahead of the model (and, separately, waiting to be encoded) at most ...
_QUEUE_BYTES = 512 * 2**20  # ... and about this many bytes of them: one at a time for 8K frames


def io_workers(device: torch.device | str) -> int:
    """Decoder threads, and as many encoder threads, for a folder of frames deblurred on ``device``.

    PNG codecs release the GIL, so frames/s grow with the threads up to the cores. Beside a network on
    the CPU two of each keep up with it; beside a GPU the host's cores are free, and two of each were the
    bound: on a 16-core H200 host, decoding and encoding 1280x720 PNGs ran 29.5 frames/s in 4 threads
    and 57.1 in 8, where ``srn`` alone ran 56 (benchmarks/reports/nvidia-h200.md). So half the cores
    each, at most the frames a run keeps in flight.
    """
    if torch.device(device).type == "cpu":
        return _IO_WORKERS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(_IO_WORKERS, min(_QUEUE_FRAMES, cores // 2))


ProgressFn = Callable[[int, "int | None", float], None]
"""Called with (frames finished, frames to do or None if unknown, megapixels deblurred so far)."""


@dataclass
class BatchReport:
    """What one run (one rank's share under sharding) did."""

    input: str
    output: str
    model: str
    trained: bool  # False: the network had no weights (the identity, for this project's residual networks)
    device: str
    precision: str = "fp32"  # the network's arithmetic: fp32, or bf16/fp16 autocast
    total: int = 0  # frames in this rank's share (for a video: frames decoded, or found in the output if skipped)
    done: int = 0  # frames deblurred and written by this run
    skipped: int = 0  # frames whose output already existed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file relative to INPUT, reason)
    megapixels: float = 0.0  # size of the frames done, in millions of pixels
    wall_s: float = 0.0  # from the first read to the last write
    model_s: float = 0.0  # of which the network ran (the rest of wall_s is IO not hidden behind it)
    # no-reference blur of the frames done, their mean as read and as deblurred (metrics.blur_effect: 0 sharp
    # .. 1 blurry, on each frame's central 512x512; None: no frame scored): real footage has no sharp twin
    blur_effect_before: float | None = None
    blur_effect_after: float | None = None
    rank: int = 0
    world_size: int = 1
    trained_on: str = ""  # what the weights were trained on, e.g. "default, mix blur" ("" where unknown)
    notes: list[str] = field(default_factory=list)  # e.g. "audio re-encoded", "frames ran in tiles"
    stopped: str = ""  # why the run stopped before the end, in one line ("": it did not): the output's disk is full

    @property
    def frames_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [list(f) for f in self.failed]
        d["frames_per_s"] = round(self.frames_per_s, 4)
        d["megapixels_per_s"] = round(self.megapixels_per_s, 4)
        return d


@dataclass(frozen=True)
class BatchOptions:
    """How a run deblurs: validated once, shared by folders and videos (as :class:`~deblur_core.train.TrainConfig`
    is for training).

    Attributes:
        model: variant name, loaded with ``weights`` on ``device`` at ``precision`` (unless :func:`deblur_path`
            is handed a ready :class:`Deblurrer`, which keeps its own).
        weights: a checkpoint instead of the variant's shipped weights (None: shipped, if any).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (bf16 on GPUs and AMX CPUs, else fp32), ``fp32``, ``bf16`` or ``fp16``; see
            :func:`deblur_core.precision.inference_dtype`. Outputs keep their format and bit depth.
        tile, overlap: frames larger than ``tile`` x ``tile`` run alone in tiles of that size sharing
            ``overlap`` pixels; None (default): whole frames, batched, where they fit the memory budget of
            :func:`deblur_core.inference.memory_budget`, else the grid of tiles that fits it best.
        batch_size: consecutive frames of one size read ahead and moved to the device together; each still
            runs through the network alone, so no output depends on it.
        overwrite: redo outputs that exist (default: skip them, which makes reruns resume).
        compare: also write side-by-side before/after images (``OUT/_compare/``) or a ``<stem>_compare`` video.
        rank, world_size: process only frames ``i`` with ``i % world_size == rank`` (see
            :class:`deblur_core.distributed.DistContext`).
        codec, crf: videos only: the output's encoder and constant rate factor (see
            :class:`deblur_core.io.VideoWriter`).

    Raises:
        ValueError: options that cannot work; the message says what to do instead.
    """

    model: str = "srn"
    weights: str | Path | None = None
    device: str | torch.device = "auto"
    precision: str = "auto"
    tile: int | None = None
    overlap: int = 32
    batch_size: int = 4
    overwrite: bool = False
    compare: bool = False
    rank: int = 0
    world_size: int = 1
    codec: str = "libx264"
    crf: int = 18

    def __post_init__(self) -> None:
        if self.overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {self.overlap}")
        if self.tile is not None and self.tile <= 2 * self.overlap:
            raise ValueError(f"tile ({self.tile}) must be larger than twice the tile overlap ({self.overlap}); "
                             f"use a tile of at least {2 * self.overlap + 1} or a smaller overlap")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1} (world size {self.world_size})")
        check_precision(self.precision)
        if not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in 0..63, got {self.crf}")


def deblur_path(
    input: str | Path,
    out: str | Path | None = None,
    options: BatchOptions | None = None,
    *,
    deblurrer: Deblurrer | None = None,
    progress: ProgressFn | None = None,
) -> BatchReport:
    """Deblur a folder of frames or a video file (see the module docstring).

    Args:
        input: a folder of frames (read recursively) or a video file.
        out: for a folder, the output folder (default: sibling ``<input>_deblurred``; must not overlap
            ``input``). For a video, the output file if it has a video extension, else a folder that receives
            ``<stem>.mp4`` (default: ``<stem>_deblurred.mp4`` beside the input).
        options: see :class:`BatchOptions` (default: its defaults).
        deblurrer: a ready network to use instead of loading ``options.model``.
        progress: see :data:`ProgressFn`.

    Returns:
        :class:`BatchReport` of this rank's share. For a video, a file that cannot be decoded (not a video,
        truncated, breaking off mid-stream) is reported as failed with the reason, and no output is left.

    Raises:
        ValueError: arguments that cannot work (missing input, OUT overlapping INPUT or not writable, unknown
            model or codec, no CUDA); the message says what to do instead.
        DeblurError: a folder without images, or weights that cannot be loaded.
    """
    opts = options or BatchOptions()
    src = Path(input)
    if src.is_dir():
        return _deblur_folder(src, out, opts, deblurrer, progress)
    if src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS:
        return _deblur_video(src, out, opts, deblurrer, progress)
    if not src.exists():
        raise ValueError(f"input '{src}' does not exist; give a folder of frames or a video file")
    raise ValueError(
        f"input '{src}' is neither a folder nor a video file ({', '.join(VIDEO_EXTENSIONS)}); "
        "to deblur single images, put them in a folder and pass the folder"
    )


def _folder_output(src: Path, out: str | Path | None) -> Path:
    dst = Path(out).resolve() if out is not None else src.with_name(src.name + "_deblurred")
    if dst == src or src in dst.parents:
        raise ValueError(f"output folder '{dst}' is inside the input '{src}'; pass an output folder outside it")
    if dst in src.parents:
        raise ValueError(f"output folder '{dst}' contains the input '{src}'; pass an output folder beside it")
    _check_output_folder(dst)
    return dst


def _deblur_folder(input: Path, out: str | Path | None, opts: BatchOptions, deb: Deblurrer | None,
                   progress: ProgressFn | None) -> BatchReport:
    """Every image under ``input`` into ``out``, mirroring relative paths; this rank's share only."""
    src = input.resolve()
    dst = _folder_output(src, out)
    files = list_images(src)
    if not files:
        raise DeblurError(f"no images found under '{src}' (looked recursively for {', '.join(IMAGE_EXTENSIONS)})")
    deb = deb or load_deblurrer(opts.model, opts.weights, device=opts.device, precision=opts.precision)
    report = _new_report(src, dst, deb, opts)
    share = [f.relative_to(src) for f in files[opts.rank::opts.world_size]]
    report.total = len(share)
    compare_dir = dst / COMPARE_DIR
    todo = [rel for rel in share
            if opts.overwrite or not ((dst / rel).exists() and (not opts.compare or (compare_dir / rel).exists()))]
    report.skipped = len(share) - len(todo)

    def read(rel: Path) -> tuple[Path, Image | str]:
        try:
            return rel, read_image(src / rel)
        except ImageReadError as err:
            return rel, err.reason
        except Exception as err:  # noqa: BLE001  (any decoder failure is this frame's problem, not the run's)
            return rel, f"{type(err).__name__}: {err}"

    def write(rel: Path, before: Image, after: Tensor) -> None:
        image = Image(data=after, alpha=before.alpha, bit_depth=before.bit_depth)
        write_atomic(dst / rel, lambda tmp: write_image(tmp, image))
        if opts.compare:
            side = _side_by_side(before, after)
            write_atomic(compare_dir / rel, lambda tmp: write_image(tmp, side))

    workers = io_workers(deb.device)
    with _Run(report, deb, opts, len(todo), progress, workers=workers) as run:
        for rel, image in _ordered_map(read, todo, workers=workers, nbytes=_nbytes):
            if run.stopped:
                break
            if isinstance(image, str):
                run.fail(str(rel), image)
            else:
                run.add(str(rel), image, write)
    if run.full is not None:
        report.stopped = (f"{_full_reason(run.full)} in '{dst}': stopped at the first such error with {report.done} "
                          f"of {len(todo)} frames written; they stay, and a rerun continues with the rest once "
                          "there is room")
    return report


def _video_output(src: Path, out: str | Path | None) -> Path:
    if out is None:
        dst = src.with_name(src.stem + "_deblurred.mp4")
    else:
        dst = Path(out).resolve()
        if dst.suffix.lower() not in VIDEO_EXTENSIONS:
            dst = dst / (src.stem + ".mp4")
    if dst.is_dir():
        raise ValueError(f"output '{dst}' is a folder; pass --out a video file name or a folder to hold one")
    _check_output_folder(dst.parent)
    if dst == src:
        raise ValueError(f"output '{dst}' is the input video; pass another --out")
    return dst


def _deblur_video(input: Path, out: str | Path | None, opts: BatchOptions, deb: Deblurrer | None,
                  progress: ProgressFn | None) -> BatchReport:
    """A video into a new video with the same frame rate, frame timestamps and audio; rank 0 only (a video
    is one output file). Frames are 8-bit RGB (what :func:`deblur_core.io.read_video` gives); odd sizes are
    padded by one edge pixel for yuv420p; audio is copied where the container accepts its codec, else
    re-encoded to AAC (the report's notes say which)."""
    src = input.resolve()
    dst = _video_output(src, out)
    deb = deb or load_deblurrer(opts.model, opts.weights, device=opts.device, precision=opts.precision)
    report = _new_report(src, dst, deb, opts)
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
                report.stopped = (f"{_full_reason(full)} in '{dst.parent}': '{dst.name}' was not written (its "
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

    def next_frame(_: object) -> tuple[str, Image] | None:
        item = next(it, None)  # one decoder thread calls this, so frames arrive in order
        if item is None:
            return None
        array, pts = item
        stamps.append(pts)
        data, _alpha, bit_depth = to_tensor(array)
        return f"{src.name} frame {next(index)}", Image(data=data, bit_depth=bit_depth)

    encoding = dict(fps=info.fps, time_base=info.time_base, codec=opts.codec, crf=opts.crf, audio_from=src)
    with AtomicVideo(dst, **encoding) as video, AtomicVideo(side_path, **encoding) as side:

        def write(_: str, before: Image, after: Tensor) -> None:  # one encoder thread: in order
            pts = stamps.popleft()
            video.write(after, pts)
            if side.writer is not None:
                side.write(_side_by_side(before, after).data, pts)

        with _Run(report, deb, opts, info.frames or None, progress, workers=1, stop_on_failure=True) as run:
            for item in _ordered_map(next_frame, itertools.repeat(None), workers=1, nbytes=_nbytes):
                if item is None or run.stopped:
                    break
                report.total += 1
                run.add(*item, write)
        if run.full is not None:
            raise ImageWriteError(dst, _full_reason(run.full)) from run.full
        if report.failed:
            name, reason = report.failed[0]
            raise ImageWriteError(dst, f"not written: {name}: {reason}")
        if report.done == 0:
            raise ImageReadError(src, "no video frames could be decoded")
    report.notes.extend(video.writer.notes)


def _new_report(src: Path, dst: Path, deb: Deblurrer, opts: BatchOptions) -> BatchReport:
    # an untrained network is a fact (``trained``), not a note: front ends word it themselves
    report = BatchReport(input=str(src), output=str(dst), model=deb.name, trained=deb.trained,
                         device=str(deb.device), precision=deb.precision, rank=opts.rank, world_size=opts.world_size)
    config = deb.meta.get("config", {})
    report.trained_on = trained_on(config)
    if deb.trained and gaussian_only(config):
        report.notes.append(f"the '{deb.name}' weights were trained on gaussian blur only: on motion, camera-shake "
                            "or video blur they can make frames worse (see MODELS.md); 'srn' is trained on a mix "
                            "of blurs")
    return report


def _nbytes(item: Any) -> int:
    image = item[1] if isinstance(item, tuple) else None
    return image.data.nbytes if isinstance(image, Image) else 0


def _side_by_side(before: Image, after: Tensor) -> Image:
    """Input left, output right, in the input's mode and bit depth."""
    alpha = None if before.alpha is None else np.concatenate([before.alpha, before.alpha], axis=1)
    return Image(data=torch.cat([before.data, after], dim=2), alpha=alpha, bit_depth=before.bit_depth)


def _check_output_folder(folder: Path) -> None:
    """Create ``folder`` if needed and make sure files can be created in it, before any work is done.

    Raises:
        ValueError: it is a file, or it (or a folder above it) cannot be created or written to.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output '{folder}' is a file, not a folder; pass --out a folder (new or existing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"cannot write to the output folder '{folder}': {err.strerror or err}; pass --out a "
                         "writable folder") from err


def _full_reason(err: OSError) -> str:
    return os.strerror(err.errno or errno.ENOSPC)


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int,
                 nbytes: Callable[[Any], int]) -> Iterator[Any]:
    """``map(fn, items)`` in ``workers`` threads, results in order, computed ahead of the consumer.

    At most ``_QUEUE_FRAMES`` results are in flight, and fewer when results are large: the window is
    recomputed from the size of the latest result so that about ``_QUEUE_BYTES`` are held.
    """
    pool = ThreadPoolExecutor(workers, thread_name_prefix="deblur-read")
    pending: deque[Future] = deque()
    window = workers  # sizes are unknown until the first result
    try:
        for item in items:
            while len(pending) >= window:
                result = pending.popleft().result()
                window = max(1, min(_QUEUE_FRAMES, _QUEUE_BYTES // max(1, nbytes(result))))
                yield result
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Run:
    """The model and the writer side of a run: batches frames of one size, runs the network on each frame,
    hands the results to writer threads (bounded queue), and keeps the report and the progress callback up
    to date.

    The first write that finds the disk full (and, with ``stop_on_failure``, any failed frame) stops the run:
    :attr:`stopped` turns true, no frame enters the network after it, and writes not yet begun are dropped;
    :attr:`full` keeps the disk's error. Everything here runs in the caller's thread but :meth:`_write`.
    """

    def __init__(self, report: BatchReport, deb: Deblurrer, opts: BatchOptions, todo: int | None,
                 progress: ProgressFn | None, *, workers: int, stop_on_failure: bool = False) -> None:
        self.report, self.deb = report, deb
        self.tile, self.overlap, self.batch_size = opts.tile, opts.overlap, opts.batch_size
        self.budget = memory_budget(deb.device) if opts.tile is None else 0
        self.plans: dict[tuple[int, ...], TilePlan] = {}  # frame shape -> how such frames run
        self.todo, self.progress = todo, progress
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="deblur-write")
        self.writes: deque[tuple[Future, str, float, int]] = deque()  # (future, name, megapixels, bytes)
        self.batch: list[tuple[str, Image, Callable]] = []
        self.blur_sums, self.blur_frames = [0.0, 0.0], 0  # blur_effect of the frames done (before, after)
        self.finished = 0
        self.start = 0.0
        self.stop_on_failure = stop_on_failure  # a video: one frame missing fails the whole file
        self.halt = threading.Event()  # set by a writer thread, read by the caller's
        self.full: OSError | None = None  # the first "no space left" (or "quota exceeded") of a write

    @property
    def stopped(self) -> bool:
        return self.halt.is_set()

    def __enter__(self) -> _Run:
        self.start = time.perf_counter()
        if self.progress:
            self.progress(0, self.todo, 0.0)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
                self._collect(keep=0)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=exc_type is not None)
            self.report.wall_s = time.perf_counter() - self.start

    def add(self, name: str, image: Image, write: Callable[[str, Image, Tensor], None]) -> None:
        """Queue a decoded frame; it is deblurred when its batch is full (or the frame size changes)."""
        if self.batch and self.batch[0][1].data.shape != image.data.shape:
            self._flush()
        self.batch.append((name, image, write))
        if len(self.batch) >= self._plan(image).frames:
            self._flush()

    def _plan(self, image: Image) -> TilePlan:
        """How frames of this size run: whole and batched, or alone in tiles, so memory stays bounded."""
        shape = tuple(image.data.shape)
        if shape not in self.plans:
            h, w = image.height, image.width
            if self.tile is not None:  # frames larger than the tile run alone, in tiles of it
                large = max(h, w) > self.tile
                plan = TilePlan(frames=1, tile=(self.tile, self.tile)) if large else TilePlan(self.batch_size)
            else:
                plan = plan_batch(h, w, bytes_per_pixel=self.deb.bytes_per_pixel, budget=self.budget,
                                  batch_size=self.batch_size, overlap=self.overlap)
                if plan.tile is not None:
                    self.report.notes.append(
                        f"{w}x{h} frames ran in {plan.tiles(h, w, self.overlap)} tiles of {plan.tile[1]}x{plan.tile[0]}"
                        f" to keep the network within {self.budget / 2**30:.1f} GiB (--tile sets the tiles)")
            self.plans[shape] = plan
        return self.plans[shape]

    def fail(self, name: str, reason: str) -> None:
        self.report.failed.append((name, reason))
        if self.stop_on_failure:
            self.halt.set()
        self._finished()

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch or self.stopped:
            return
        plan = self._plan(batch[0][1])
        images = [image.data for _, image, _ in batch]
        x = images[0][None] if len(images) == 1 else torch.stack(images)  # one frame: no copy (8K: 400 MB)
        if self.deb.device.type == "cuda":
            x = x.pin_memory().to(self.deb.device, non_blocking=True)  # one asynchronous copy for the batch
        for i, (name, image, write) in enumerate(batch):
            if self.stopped:
                return
            t = time.perf_counter()
            # each frame alone: convolution kernels choose their blocking by batch size, so a frame run beside
            # others came out up to one level of 255 off in a few pixels from the same frame run alone (and a
            # resumed run off the uninterrupted one); alone costs no measurable speed on a CPU
            after = self.deb(x[i : i + 1], tile=plan.tile, overlap=self.overlap)[0]
            self.report.model_s += time.perf_counter() - t
            if bool(torch.isfinite(after).all()):
                self._submit(name, write, image, after)
            else:
                self.fail(name, NON_FINITE_OUTPUT)

    def _submit(self, name: str, write: Callable, image: Image, after: Tensor) -> None:
        size = 2 * image.data.nbytes
        self._collect(keep=_QUEUE_FRAMES - 1, room=_QUEUE_BYTES - size)
        future = self.pool.submit(self._write, write, name, image, after)
        self.writes.append((future, name, image.height * image.width / 1e6, size))

    def _write(self, write: Callable[[str, Image, Tensor], None], name: str, before: Image,
               after: Tensor) -> tuple[float, float] | None:
        """In a writer thread: ``write`` the frame, then score its blur as read and as deblurred (beside the
        network). None: dropped, as the run has stopped."""
        if self.stopped:
            return None
        try:
            write(name, before, after)
        except ImageWriteError as err:
            full = out_of_space(err)
            if full is not None and self.full is None:
                self.full = full
            if full is not None or self.stop_on_failure:
                self.halt.set()
            raise
        return blur_effect(before.data).item(), blur_effect(after).item()

    def _collect(self, keep: int, room: int | None = None) -> None:
        """Record finished writes in order; block until at most ``keep`` writes (and ``room`` bytes) remain.
        A write that found the disk full is left to :attr:`full`, not listed as a failed frame."""
        while self.writes:
            future, name, megapixels, _ = self.writes[0]
            held = sum(w[3] for w in self.writes)
            if future.done() or len(self.writes) > keep or (room is not None and held > max(0, room)):
                self.writes.popleft()
                try:
                    blur = future.result()
                except ImageWriteError as err:
                    if out_of_space(err) is None:
                        self.report.failed.append((name, err.reason))
                        self._finished()
                else:
                    if blur is not None:
                        self._done(megapixels, blur)
                        self._finished()
            else:
                break

    def _done(self, megapixels: float, blur: tuple[float, float]) -> None:
        report = self.report
        report.done += 1
        report.megapixels += megapixels
        if all(math.isfinite(b) for b in blur):  # frames under 4x4 pixels have none
            self.blur_sums = [total + b for total, b in zip(self.blur_sums, blur)]
            self.blur_frames += 1
            report.blur_effect_before, report.blur_effect_after = (t / self.blur_frames for t in self.blur_sums)

    def _finished(self) -> None:
        self.finished += 1
        if self.progress:
            self.progress(self.finished, self.todo, self.report.megapixels)
