"""What a batch run is asked to do (:class:`BatchOptions`) and what it did (:class:`BatchReport`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import gaussian_only, trained_on
from ..inference import Deblurrer

__all__ = ["VIDEO_EXTENSIONS", "COMPARE_DIR", "BatchOptions", "BatchReport", "new_report"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
COMPARE_DIR = "_compare"  # side-by-side images go to OUT/_compare/<relative path>


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

    The network is not an option: it comes ready (:func:`deblur_core.inference.load_deblurrer`), with its
    weights, device and precision.

    Attributes:
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
        if not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in 0..63, got {self.crf}")


def new_report(src: Path, dst: Path, deb: Deblurrer, opts: BatchOptions) -> BatchReport:
    # an untrained network is a fact (``trained``), not a note: front ends word it themselves
    report = BatchReport(input=str(src), output=str(dst), model=deb.name, trained=deb.trained,
                         device=str(deb.device), precision=deb.precision, rank=opts.rank, world_size=opts.world_size)
    config = deb.meta.get("config", {})
    # a published checkpoint carries no training config: its data are its authors' (see MODELS.md)
    report.trained_on = trained_on(config) or ("its authors' data (published)" if deb.published else "")
    if deb.trained and gaussian_only(config):
        report.notes.append(f"the '{deb.name}' weights were trained on gaussian blur only: on motion, camera-shake "
                            "or video blur they can make frames worse (see MODELS.md); 'srn' is trained on a mix "
                            "of blurs")
    return report
