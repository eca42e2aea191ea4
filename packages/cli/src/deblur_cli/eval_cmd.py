"""``deblur-cli eval``: score a model on held-out images beside the blurred input and Richardson-Lucy."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .console import console, err_console, fail, note
from .texts import BLUR_HELP, MODEL_HELP, TLC_HELP, TTA_HELP, WEIGHTS_HELP

__all__ = ["evaluate_cmd"]


def evaluate_cmd(
    model: Annotated[str | None, typer.Option(help=MODEL_HELP, show_default=False)] = None,
    data: Annotated[list[str], typer.Option(help="Dataset spec (repeatable), as for 'train'; its held-out images are scored.")] = ["default"],  # noqa: B006
    blur: Annotated[str, typer.Option(help="Synthetic blur for default/folder data: " + BLUR_HELP + ".")] = "gaussian",
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP, show_default=False)] = None,
    crops: Annotated[bool, typer.Option("--crops", help="Score the fixed validation crops training reports (a quick look) instead of every held-out image whole.")] = False,
    val_count: Annotated[int, typer.Option(help="With --crops: number of validation crops.")] = 48,
    tile: Annotated[int | None, typer.Option(help="Whole images: run the model in tiles of this size where larger. Default: from the memory budget, as batch does.", show_default="from the memory budget")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16: the network's arithmetic (auto: bf16 on GPUs that have it, fp16 on older GPUs, bf16 on CPUs with AMX but for the nafnet models, whose fp32 CPU path is faster, else fp32).")] = "auto",
    baseline: Annotated[bool, typer.Option(help="Also run Richardson-Lucy with the true kernel where known.")] = True,
    tta: Annotated[int, typer.Option(help=TTA_HELP)] = 1,
    tlc: Annotated[bool, typer.Option("--tlc", help=TLC_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (with a row per image; an unchanged image's infinite PSNR is null).")] = False,
    csv: Annotated[str | None, typer.Option(help="Also write one row per image and method to this CSV file.")] = None,
) -> None:
    """Score a model in the original project's format (MSE, PSNR, SSIM) beside the blurred input and
    Richardson-Lucy, with the level shift: how much darker or brighter the output came out than the sharp image.

    --blur none scores what a model does to sharp images (the input row is the image itself, PSNR inf), --blur
    light what it does to nearly sharp ones: a model should leave both as they are. Every held-out image is
    scored whole (the mean of per-image values), as GoPro's and REDS's protocols do: pairs:DIR scores DIR/val (or,
    without one, all of DIR), reds: and gopro: their val/test split, default/folder: their validation photos
    blurred by the project's synthesis of --blur.
    """
    from deblur_core.data import open_dataset
    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.evaluate import evaluate
    from deblur_core.inference import load_deblurrer
    from deblur_core.tta import check_tta

    try:  # what was asked cannot work: a usage error, as in batch and export
        check_tta(tta)
        deb = load_deblurrer(model, weights, device=device, precision=precision, tta=tta, tlc=tlc)
    except (CheckpointError, ValueError) as e:
        fail(str(e), 2)
    except DeblurError as e:
        fail(str(e), 1)
    try:
        sources = [open_dataset(spec, blur=blur, val_count=val_count, for_eval=not crops) for spec in data]
        results = []
        for src in sources:
            with err_console.status(f"scoring {src.name}") as status:
                results.append(evaluate(deb, src, device=deb.device, precision=deb.precision,
                                        baseline=baseline, crops=crops, tile=tile,
                                        progress=lambda p: status.update(f"scoring {src.name}: {p.done} images done")))
    except (DeblurError, ValueError) as e:
        fail(str(e), 1)
    for r in results:
        r.update(model=deb.name, weights=str(deb.weights) if deb.weights else None, blur=blur, precision=deb.precision,
                 tta=tta, tlc=tlc)
    if csv:
        _write_eval_csv(csv, results)
    if as_json:
        typer.echo(json.dumps(_finite(results), indent=2))
        return
    if not deb.trained:
        note(f"no trained weights for '{deb.name}': scoring the untrained network")
    arithmetic = deb.precision + (f", tta {tta}" if tta > 1 else "") + (", tlc" if tlc else "")
    _print_tables(results, deb.name, blur, "crops" if crops else "whole images", arithmetic)


def _print_tables(results: list[dict], model: str, blur: str, what: str, arithmetic: str) -> None:
    for r in results:
        table = Table(title=f"{r['dataset']} ({r['images']} {what}, blur: {blur}, {arithmetic})")
        for col in ("", "MSE", "PSNR (dB)", "SSIM", "level shift", "max |shift|"):
            table.add_column(col, justify="right" if col else "left")
        labels = {"blurred": "sharp input (unchanged)" if blur == "none" else "blurred input", "model": model,
                  "richardson_lucy": "Richardson-Lucy (true kernel)"}
        for row, vals in r["rows"].items():
            table.add_row(labels.get(row, row), f"{vals['mse']:.5f}", f"{vals['psnr']:.2f}", f"{vals['ssim']:.4f}",
                          " ".join(f"{v:+.2f}" for v in vals["shift"]), f"{vals['max_abs_shift']:.2f}")
        console.print(table)
    console.print("level shift: the output's mean minus the sharp image's, per channel, in levels of 255 "
                  "(negative: darker); max |shift|: the largest over images and channels")


def _finite(obj):
    """``obj`` with every infinite or NaN float as None: JSON has no infinity (an unchanged image's PSNR)."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _write_eval_csv(path: str, results: list[dict]) -> None:
    import csv as csvlib

    with open(path, "w", newline="") as fh:
        w = csvlib.writer(fh)
        # the level shift per channel (gray images fill shift_r only)
        w.writerow(["dataset", "image", "method", "mse", "psnr", "ssim", "shift_r", "shift_g", "shift_b"])
        for r in results:
            for img in r.get("per_image", []):
                for method in ("blurred", "model", "richardson_lucy"):
                    if method in img:
                        v = img[method]
                        shift = (v["shift"] + ["", "", ""])[:3]
                        w.writerow([r["dataset"], img["image"], method, v["mse"], v["psnr"], v["ssim"], *shift])
