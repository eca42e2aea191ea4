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
one size are read and moved to the device together, as many as fit in a memory budget
(:func:`deblur_core.inference.plan_batch`), and a frame that does not fit alone runs in the fewest pixels of
overlapping tiles that do (:func:`deblur_core.inference.deblur_tensor`); ``tile`` sets square tiles instead.

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

Layout: :mod:`.options` (what a run is asked and what it reports), :mod:`.pipeline` (reader and writer
threads around the network), :mod:`.folder` and :mod:`.video` (the two kinds of input).

With ``compare``, a side-by-side image (input left, output right) per frame goes to
``OUT/_compare/<relative path>``; for a video, a side-by-side video ``<stem>_compare.mp4`` beside the output.
"""

from __future__ import annotations

from pathlib import Path

from ..inference import Deblurrer
from ..progress import ProgressFn
from .folder import deblur_folder
from .options import COMPARE_DIR, VIDEO_EXTENSIONS, BatchOptions, BatchReport
from .pipeline import io_workers
from .video import deblur_video

__all__ = ["VIDEO_EXTENSIONS", "COMPARE_DIR", "BatchOptions", "BatchReport", "deblur_path", "io_workers"]


def deblur_path(
    input: str | Path,
    out: str | Path | None = None,
    options: BatchOptions | None = None,
    *,
    deblurrer: Deblurrer | str | None = None,
    progress: ProgressFn | None = None,
) -> BatchReport:
    """Deblur a folder of frames or a video file (see the module docstring).

    Args:
        input: a folder of frames (read recursively) or a video file.
        out: for a folder, the output folder (default: sibling ``<input>_deblurred``; must not overlap
            ``input``). For a video, the output file if it has a video extension, else a folder that receives
            ``<stem>.mp4`` (default: ``<stem>_deblurred.mp4`` beside the input).
        options: see :class:`BatchOptions` (default: its defaults).
        deblurrer: the network: a ready :class:`~deblur_core.inference.Deblurrer`, or a variant's name to load
            with its shipped weights (None: :data:`deblur_core.defaults.DEFAULT_MODEL`), loaded once the input
            and output are known to be usable.
        progress: called with frames finished, frames to do (None if unknown) and megapixels done.

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
        return deblur_folder(src, out, opts, deblurrer, progress)
    if src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS:
        return deblur_video(src, out, opts, deblurrer, progress)
    if not src.exists():
        raise ValueError(f"input '{src}' does not exist; give a folder of frames or a video file")
    raise ValueError(
        f"input '{src}' is neither a folder nor a video file ({', '.join(VIDEO_EXTENSIONS)}); "
        "to deblur single images, put them in a folder and pass the folder"
    )
