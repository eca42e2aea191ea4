"""The pipeline around the network: frames decoded ahead in reader threads, run through the network one at
a time in the caller's thread, and handed to writer threads, each queue bounded in frames and in bytes."""

from __future__ import annotations

import errno
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ImageWriteError
from ..inference import NON_FINITE_OUTPUT, Deblurrer, TilePlan, load_deblurrer
from ..io import Image, unit_float
from ..io.atomic import out_of_space
from ..metrics import blur_effect
from ..progress import Progress, ProgressFn
from .options import BatchOptions, BatchReport

__all__ = ["ready", "io_workers", "keeps_pixels", "frames_to", "ordered_map", "FrameRun", "side_by_side",
           "frame_nbytes", "full_reason"]

_IO_WORKERS = 2  # decoder and encoder threads beside a network on the CPU, which takes the cores itself
_QUEUE_FRAMES = 8  # frames decoded ahead of the model (and, separately, waiting to be encoded) at most ...
_QUEUE_BYTES = 512 * 2**20  # ... and about this many bytes of them: one at a time for 8K frames


def ready(deblurrer: Deblurrer | str | None) -> Deblurrer:
    """``deblurrer`` itself, or the variant of that name (None: the default model) with its shipped weights."""
    if isinstance(deblurrer, Deblurrer):
        return deblurrer
    return load_deblurrer(deblurrer)


def io_workers(device: torch.device | str) -> int:
    """Decoder threads, and as many encoder threads, for a folder of frames deblurred on ``device``.

    PNG codecs release the GIL, so frames/s grow with the threads up to the cores. Beside a network on
    the CPU, which takes the cores itself, two of each keep up with it; beside a GPU the host's cores are
    free and a fast network outruns two of each, so half the cores each, at most the frames a run keeps in
    flight (benchmarks/README.md has the measurements).
    """
    if torch.device(device).type == "cpu":
        return _IO_WORKERS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(_IO_WORKERS, min(_QUEUE_FRAMES, cores // 2))


def keeps_pixels(device: torch.device | str) -> bool:
    """Whether frames deblurred on ``device`` are read as their decoded 8- or 16-bit pixels (and converted to
    float on the device, by :func:`frames_to`) rather than as float data.

    Off the CPU the pixels are a quarter (uint8) or half (uint16) of the float bytes to pin and copy, and the
    device converts them faster than the host; on the CPU the reader threads convert them beside the network.
    """
    return torch.device(device).type != "cpu"


def frames_to(images: list[Image], device: torch.device) -> Tensor:
    """(B, C, H, W) float32 in [0, 1] on ``device``, from frames of one size.

    Frames that all kept their pixels cross as those integers, in one copy, and are converted on ``device``
    (to the values their float data would hold); others cross as float data. A CUDA copy goes through pinned
    memory, asynchronously.
    """
    pixels = all(image.pixels is not None for image in images)
    frames = [image.pixels if pixels else image.data for image in images]
    x = frames[0][None] if len(frames) == 1 else torch.stack(frames)  # one frame: no copy (8K: 400 MB)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)  # one asynchronous copy for the batch
    else:
        x = x.to(device)
    return unit_float(x) if pixels else x


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int,
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


def side_by_side(before: Image, after: Tensor) -> Image:
    """Input left, output right, in the input's mode and bit depth."""
    alpha = None if before.alpha is None else np.concatenate([before.alpha, before.alpha], axis=1)
    return Image(data=torch.cat([before.data, after], dim=2), alpha=alpha, bit_depth=before.bit_depth)


def frame_nbytes(item: Any) -> int:
    image = item[1] if isinstance(item, tuple) else None
    return image.nbytes if isinstance(image, Image) else 0


def full_reason(err: OSError) -> str:
    """The words for a full disk or a spent quota, e.g. "No space left on device"."""
    return os.strerror(err.errno or errno.ENOSPC)


class FrameRun:
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

    def __enter__(self) -> FrameRun:
        self.start = time.perf_counter()
        if self.progress:
            self.progress(Progress(0, self.todo))
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
        if self.batch and self.batch[0][1].shape != image.shape:
            self._flush()
        self.batch.append((name, image, write))
        if len(self.batch) >= self._plan(image).frames:
            self._flush()

    def _plan(self, image: Image) -> TilePlan:
        """How frames of this size run: whole and batched, or alone in tiles, so memory stays bounded."""
        shape = image.shape
        if shape not in self.plans:
            h, w = image.height, image.width
            if self.tile is not None:  # frames larger than the tile run alone, in tiles of it
                large = max(h, w) > self.tile
                plan = TilePlan(frames=1, tile=(self.tile, self.tile)) if large else TilePlan(self.batch_size)
            else:
                plan = self.deb.plan(h, w, batch_size=self.batch_size, overlap=self.overlap)
                if plan.tile is not None:
                    self.report.notes.append(
                        f"{w}x{h} frames ran in {plan.tiles(h, w, self.overlap)} tiles of {plan.tile[1]}x{plan.tile[0]}"
                        f" to keep the network within {self.deb.budget / 2**30:.1f} GiB (--tile sets "
                        "the tiles)")
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
        x = frames_to([image for _, image, _ in batch], self.deb.device)
        for i, (name, image, write) in enumerate(batch):
            if self.stopped:
                return
            t = time.perf_counter()
            # each frame alone: convolution kernels choose their blocking by batch size, so a frame run beside
            # others came out up to one level of 255 off in a few pixels from the same frame run alone (and a
            # resumed run off the uninterrupted one); alone costs no measurable speed on a CPU
            after = self.deb(x[i : i + 1], tile=self.tile or plan.tile, overlap=self.overlap)[0]
            self.report.model_s += time.perf_counter() - t
            if bool(torch.isfinite(after).all()):
                self._submit(name, write, image, after)
            else:
                self.fail(name, NON_FINITE_OUTPUT)

    def _submit(self, name: str, write: Callable, image: Image, after: Tensor) -> None:
        size = 2 * 4 * math.prod(image.shape)  # the input's float data and the output's
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
            self.progress(Progress(self.finished, self.todo, self.report.megapixels))
