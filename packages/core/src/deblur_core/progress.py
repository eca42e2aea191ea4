"""Progress of long work: one callback type for frames, tiles and training steps alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressFn"]


@dataclass(frozen=True)
class Progress:
    """Where a piece of work stands, as handed to a :data:`ProgressFn`."""

    done: int  # units finished: frames, tiles or optimizer steps
    total: int | None  # units in all (None: unknown ahead, as for a video whose header has no frame count)
    megapixels: float = 0.0  # frames: size of the frames deblurred so far, in millions of pixels
    loss: float | None = None  # training: mean training loss since the last report (None: none yet)
    val_psnr: float | None = None  # training: the last validation PSNR (None: not validated yet)


ProgressFn = Callable[[Progress], None]
"""Called as work advances: once as it starts (``done`` 0, or the step a resumed run continues from), then
after each unit or at each logged step, in order, from the caller's thread."""
