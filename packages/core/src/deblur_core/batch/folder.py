"""A folder of frames into a folder of deblurred frames, each under its relative path, name and format."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..errors import DeblurError, ImageReadError
from ..inference import Deblurrer
from ..io import IMAGE_EXTENSIONS, Image, list_images, read_image, write_image
from ..io.atomic import check_writable_folder, write_atomic
from ..progress import ProgressFn
from .options import COMPARE_DIR, BatchOptions, BatchReport, new_report
from .pipeline import (FrameRun, frame_nbytes, full_reason, io_workers, keeps_pixels, ordered_map, ready,
                       side_by_side)

__all__ = ["deblur_folder"]


def _folder_output(src: Path, out: str | Path | None) -> Path:
    dst = Path(out).resolve() if out is not None else src.with_name(src.name + "_deblurred")
    if dst == src or src in dst.parents:
        raise ValueError(f"output folder '{dst}' is inside the input '{src}'; pass an output folder outside it")
    if dst in src.parents:
        raise ValueError(f"output folder '{dst}' contains the input '{src}'; pass an output folder beside it")
    check_writable_folder(dst)
    return dst


def deblur_folder(input: Path, out: str | Path | None, opts: BatchOptions, deb: Deblurrer | str | None,
                   progress: ProgressFn | None) -> BatchReport:
    """Every image under ``input`` into ``out``, mirroring relative paths; this rank's share only."""
    src = input.resolve()
    dst = _folder_output(src, out)
    files = list_images(src)
    if not files:
        raise DeblurError(f"no images found under '{src}' (looked recursively for {', '.join(IMAGE_EXTENSIONS)})")
    deb = ready(deb)
    report = new_report(src, dst, deb, opts)
    share = [f.relative_to(src) for f in files[opts.rank::opts.world_size]]
    report.total = len(share)
    compare_dir = dst / COMPARE_DIR
    todo = [rel for rel in share
            if opts.overwrite or not ((dst / rel).exists() and (not opts.compare or (compare_dir / rel).exists()))]
    report.skipped = len(share) - len(todo)
    pixels = keeps_pixels(deb.device)

    def read(rel: Path) -> tuple[Path, Image | str]:
        try:
            return rel, read_image(src / rel, keep_pixels=pixels)
        except ImageReadError as err:
            return rel, err.reason
        except Exception as err:  # noqa: BLE001  (any decoder failure is this frame's problem, not the run's)
            return rel, f"{type(err).__name__}: {err}"

    def write(rel: Path, before: Image, after: Tensor) -> None:
        image = Image(data=after, alpha=before.alpha, bit_depth=before.bit_depth)
        write_atomic(dst / rel, lambda tmp: write_image(tmp, image))
        if opts.compare:
            side = side_by_side(before, after)
            write_atomic(compare_dir / rel, lambda tmp: write_image(tmp, side))

    workers = io_workers(deb.device)
    with FrameRun(report, deb, opts, len(todo), progress, workers=workers) as run:
        for rel, image in ordered_map(read, todo, workers=workers, nbytes=frame_nbytes):
            if run.stopped:
                break
            if isinstance(image, str):
                run.fail(str(rel), image)
            else:
                run.add(str(rel), image, write)
    if run.full is not None:
        report.stopped = (f"{full_reason(run.full)} in '{dst}': stopped at the first such error with {report.done} "
                          f"of {len(todo)} frames written; they stay, and a rerun continues with the rest once "
                          "there is room")
    return report
