"""``deblur-cli batch``: parse the options, call :func:`deblur_core.batch.deblur_path`, show progress and a
summary. Under torchrun, the rank and world size come from the environment and each rank takes its shard.

Exit codes: 0 all frames done or skipped; 1 some frame failed (each is named on stderr), the output's disk
filled up (one line: the run stops there), the folder holds no images, the run broke off, or the JSON summary
could not be written at the end; 2 usage error (missing input, unknown model, weights that are non-finite or
do not fit the model, OUT overlapping INPUT, OUT a file or not writable, an unwritable --json-summary path,
bad tile sizes, unknown video codec, no CUDA).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape


from .console import Bar, console, err_console, fail, note
from .texts import MODEL_HELP, TLC_HELP, TTA_HELP, WEIGHTS_HELP

__all__ = ["batch"]

def batch(
    input: Annotated[Path, typer.Argument(help="Folder of frames (read recursively, in natural order) or a video file.", metavar="INPUT", show_default=False)],
    model: Annotated[str | None, typer.Option(help=MODEL_HELP, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder mirroring INPUT's relative paths (default: INPUT_deblurred beside INPUT). For a video: the output video, or a folder for STEM.mp4 (default: STEM_deblurred.mp4 beside it).", show_default=False)] = None,
    weights: Annotated[Path | None, typer.Option(help=WEIGHTS_HELP, show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (auto: CUDA if available).")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16: the network's arithmetic (auto: bf16 on GPUs that have it, fp16 on older GPUs, bf16 on CPUs with AMX but for the nafnet models, whose fp32 CPU path is faster, else fp32). Outputs keep their format and bit depth.")] = "auto",
    tile: Annotated[int | None, typer.Option(help="Frames larger than N x N pixels run alone in overlapping N x N tiles. Default: from a memory budget for the network (1.5 GiB of activations on a CPU, half the memory of a GPU): frames that fit run whole, batched; larger ones in the fewest pixels of tiles that fit.", show_default="from the memory budget")] = None,
    tta: Annotated[int, typer.Option(help=TTA_HELP)] = 1,
    tlc: Annotated[bool, typer.Option("--tlc", help=TLC_HELP)] = False,
    tile_overlap: Annotated[int, typer.Option("--tile-overlap", help="Pixels shared by neighbouring tiles, blended smoothly (tile must exceed twice this).")] = 32,
    batch_size: Annotated[int, typer.Option(help="Consecutive frames of one size read ahead and moved to the device together, as many as the memory budget allows. Each still runs through the network alone, so no output depends on it.")] = 4,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo frames whose output exists (default: skip them, so a rerun resumes).")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Also write before|after side-by-side images to OUT/_compare/ (for a video: STEM_compare.mp4 beside the output).")] = False,
    codec: Annotated[str, typer.Option(help="Video only: the ffmpeg encoder of the output's video stream (libx264, libx265, libvpx-vp9 for .webm, mpeg4, ...). Audio streams are copied as they are where the container takes them, else re-encoded to AAC.")] = "libx264",
    crf: Annotated[int, typer.Option(min=0, max=63, help="Video only: constant rate factor of encoders that have one (x264/x265: 0 lossless, 18 visually lossless, 23 their own default).")] = 18,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar, notes or summary table; failures still go to stderr.")] = False,
    json_summary: Annotated[Path | None, typer.Option("--json-summary", help="Write the summary as JSON to PATH (under torchrun, each rank writes PATH with .rankN before the extension). Its blur_effect_before/blur_effect_after are the summary's blur effect: how blurred the frames done are as read and as deblurred, scored without a sharp reference (scikit-image's blur_effect on each frame's central 512x512, averaged; 0 sharp .. 1 blurry).", show_default=False)] = None,
) -> None:
    """Deblur a folder of frames or a video file; outputs mirror INPUT and are never written inside it.

    Reruns skip finished outputs and write the bytes of an uninterrupted run. Unreadable frames and frames whose
    output holds NaN are named, the rest processed (exit 1); a full disk stops the run (exit 1; rerun later).

    Under 'torchrun --nproc-per-node N' each rank deblurs every N-th frame (two runs on one OUT: safe, no faster).
    Frames above 179 megapixels (Pillow's decompression-bomb limit) are refused: tiling bounds the network's
    memory, but the frame's own copies take about 50 bytes a pixel (9 GB there); split or downscale them first.
    """
    from deblur_core.batch import BatchOptions, deblur_path
    from deblur_core.distributed import DistContext
    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.inference import load_deblurrer
    from deblur_core.io.atomic import unwritable

    try:
        ctx = DistContext.from_env()
        opts = BatchOptions(tile=tile, overlap=tile_overlap, batch_size=batch_size, overwrite=overwrite, compare=compare,
                            rank=ctx.rank, world_size=ctx.world_size, codec=codec, crf=crf)
        deb = load_deblurrer(model, weights, device=ctx.device(device), precision=precision, tta=tta, tlc=tlc)
    except (ValueError, DeblurError) as e:
        fail(str(e), 2)
    summary_path = ctx.rank_path(json_summary) if json_summary is not None else None
    if summary_path is not None and (problem := unwritable(summary_path)):  # now, not after all the work
        fail(f"cannot write the JSON summary to '{summary_path}': {problem}; pass --json-summary a writable file "
             "path", 2)
    show = not quiet and ctx.is_main
    if show and not deb.trained:
        note(f"no trained weights for '{deb.name}': the network is untrained and returns its input unchanged; pass "
             "--weights or train one with 'deblur-cli train'.")
    with Bar("deblurring", enabled=show, rates=True) as bar:
        try:
            report = deblur_path(input, out, opts, deblurrer=deb, progress=bar.update)
        except (ValueError, CheckpointError) as e:
            fail(str(e), 2)
        except DeblurError as e:
            fail(str(e), 1)
    summary_failed = summary_path is not None and not _write_summary(summary_path, report)
    _present(report, quiet)
    if report.failed or report.stopped or summary_failed:
        raise typer.Exit(1)


def _present(report, quiet: bool) -> None:
    """The summary table and notes (unless quiet), then every failure (always)."""
    if not quiet:
        console.print(_summary_table(report))
        for line in report.notes:
            note(line)
    for name, reason in report.failed:
        err_console.print(f"[red]failed:[/] {name}: {reason}", soft_wrap=True)
    if report.failed:
        err_console.print(f"[bold red]{len(report.failed)} failed[/] (the others are done; rerun to retry only "
                          "the missing ones)", soft_wrap=True)
    if report.stopped:
        err_console.print(f"[bold red]error:[/] {escape(report.stopped)}", soft_wrap=True)


def _write_summary(path: Path, report) -> bool:
    try:
        path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    except OSError as e:
        err_console.print(f"[bold red]error:[/] cannot write the JSON summary to '{path}': {e.strerror or e}",
                          soft_wrap=True)
        return False
    return True


def _summary_table(report):
    from rich.table import Table

    title = "deblur-cli batch" + (f" (rank {report.rank} of {report.world_size})" if report.world_size > 1 else "")
    table = Table(title=title, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    rows = [
        ("input", report.input),
        ("output", report.output),
        ("model", f"{report.model} ({_weights(report)})"),
        ("device", f"{report.device} ({report.precision})"),
        ("done", str(report.done)),
        ("skipped", f"{report.skipped} (output exists)"),
        ("failed", f"[red]{len(report.failed)}[/]" if report.failed else "0"),
        ("wall time", f"{report.wall_s:.2f} s (network {report.model_s:.2f} s)"),
        ("throughput", f"{report.frames_per_s:.2f} frames/s, {report.megapixels_per_s:.2f} MP/s"),
    ]
    if report.blur_effect_before is not None:
        rows.append(("blur effect", f"{report.blur_effect_before:.3f} -> {report.blur_effect_after:.3f} "
                                    "(no reference; 0 sharp .. 1 blurry)"))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _weights(report) -> str:
    if not report.trained:
        return "untrained"
    return f"trained on {report.trained_on}" if report.trained_on else "trained"
