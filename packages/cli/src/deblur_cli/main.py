"""The ``deblur-cli`` command. Each command parses its options, calls one core function and presents the
result; the work itself lives in :mod:`deblur_core`."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from deblur_core.defaults import DEFAULT_MODEL
from deblur_core.progress import Progress, ProgressFn

from .batch_cmd import TTA_HELP, batch
from .console import Bar, console, err_console, fail, note, show_log

app = typer.Typer(
    name="deblur-cli",
    help="Remove blur from images and video frames with deep networks.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also print, to stderr, the details that messages summarise (such as every tensor name of a weight file that does not fit its model). Goes before the command: deblur-cli --verbose batch ...")] = False,
) -> None:
    """Remove blur from images and video frames with deep networks."""
    if verbose:
        show_log(ctx)


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")] = False,
) -> None:
    """List the model variants: parameters, GFLOPs per megapixel, and whether trained weights ship."""
    from deblur_core.catalog import model_catalog

    rows = model_catalog()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    # the one-line descriptions need a wide terminal; below that they would squeeze every column into
    # word-per-line cells, so they are left to --json and MODELS.md
    describe = console.width >= 150
    table = Table(title="deblur models", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("GFLOP/MP", justify="right", no_wrap=True)
    table.add_column("weights trained on", min_width=13)
    table.add_column("val dB (input)", justify="right", no_wrap=True)
    if describe:
        table.add_column("description")
    for r in rows:
        m = r["metrics"]
        psnr = f"{m['val_psnr']:.2f} ({m['input_psnr']:.2f})" if "val_psnr" in m and "input_psnr" in m else "-"
        cells = [
            r["name"],
            f"{r['params'] / 1e6:.2f}M",
            f"{r['gflops_per_mp']:.1f}",
            r["trained_on"] if r["weights"] else "untrained",
            psnr,
        ]
        table.add_row(*cells, *([r["summary"]] if describe else []))
    console.print(table)
    if any(r["weights"] for r in rows):
        console.print("val dB: PSNR on held-out validation crops of the data the weights were trained on, and the "
                      "blurred input's in parentheses; see MODELS.md")
    if not describe:
        console.print("descriptions: 'deblur-cli models --json', or a terminal 150 columns wide")


# the blur kinds and mixes of deblur_core.blur, with their extents (README's "Blur synthesis" lists them all)
BLUR_HELP = ("gaussian | motion (5-21 px) | shake (25 px kernel) | video (pans to 15 px) | long (pans and motion "
             "of 25-40 px) | nonuniform (a foreground moving 8-40 px over a background moving 1-20 px), or a mix: "
             "mix (the first four) | realistic (motion and pans 3-40 px, shake to 31 px, defocus, non-uniform); "
             "or none (no blur) | light (defocus sigma 0.3-0.8 or a 1-2 px shake)")


# The defaults are TrainConfig's, spelled out: reading them from deblur_core.train would import torch and
# make every --help ~2.5 s slower. tests/cli/test_cli.py fails when one drifts from its TrainConfig field.
@app.command()
def train(
    model: Annotated[str, typer.Option(help="Model variant to train (see 'deblur-cli models').")] = "srn",
    data: Annotated[str, typer.Option(help="Dataset: default | cifar10:PATH | reds:PATH | gopro:PATH | pairs:PATH | folder:PATH.")] = "default",
    blur: Annotated[str, typer.Option(help="Synthetic blur for default/folder data: " + BLUR_HELP + ".")] = "mix",
    out: Annotated[str | None, typer.Option(help="Run directory (default: runs/<model>).")] = None,
    steps: Annotated[int | None, typer.Option(help="Total optimizer steps (default 2000; on --resume, the run's own).")] = None,
    batch_size: Annotated[int, typer.Option(help="Patches per step (per process under torchrun).")] = 16,
    patch: Annotated[int, typer.Option(help="Training crop size in pixels.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak Adam learning rate (cosine decay after warm-up).")] = 5e-4,
    warmup: Annotated[int, typer.Option(help="Linear learning-rate warm-up steps.")] = 50,
    loss: Annotated[str, typer.Option(help="Loss: mse | l1 | charbonnier.")] = "mse",
    fft_loss: Annotated[float, typer.Option(help="Weight of an L1 loss on the image's FFT, added at every scale (0.1 in MIMO-UNet).")] = 0.0,
    optimizer: Annotated[str, typer.Option(help="adam | adamw.")] = "adam",
    weight_decay: Annotated[float, typer.Option(help="Decoupled weight decay (with --optimizer adamw).")] = 0.0,
    noise: Annotated[float, typer.Option(help="Synthetic data: largest sensor read-noise sigma (0-1 scale); each sample draws its own, plus shot noise.")] = 0.0,
    saturate: Annotated[float, typer.Option(help="Synthetic data: share of samples whose highlights saturate past white before the blur.")] = 0.0,
    rotate: Annotated[bool, typer.Option("--rotate", help="Synthetic data: rotate crops by 90 degrees too, not only flip them.")] = False,
    jpeg: Annotated[float, typer.Option(help="Synthetic data: share of samples saved as JPEG (quality 60-95) after the blur and 8-bit rounding.")] = 0.0,
    sharp_share: Annotated[float, typer.Option(help="Synthetic data: share of samples (0-1) left sharp or blurred only lightly, half each, so the network learns to leave sharp frames as they are (0: every sample blurred).")] = 0.1,
    precision: Annotated[str | None, typer.Option(help="auto | fp32 | bf16 | fp16 autocast (auto: bf16 on GPUs that have it, else fp16 on GPUs; bf16 on CPUs with AMX, fp32 on other CPUs, where bf16 is far slower; the run stores what auto chose). With --resume it replaces the run's own (default: auto for a new run, the run's own on --resume).", show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Processes drawing the next batches' blur kernels ahead (-1: 6 on a GPU, 0 on a CPU).")] = -1,
    val_every: Annotated[int, typer.Option(help="Validate and checkpoint every N steps.")] = 250,
    val_count: Annotated[int, typer.Option(help="Number of validation crops.")] = 48,
    val_patch: Annotated[int, typer.Option(help="Validation crop size in pixels.")] = 128,
    log_every: Annotated[int, typer.Option(help="Write a metrics.jsonl line every N steps.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for the model init and every batch.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    max_minutes: Annotated[float | None, typer.Option(help="Stop cleanly with a checkpoint after this many minutes (default: no limit).")] = None,
    decay_by_time: Annotated[bool, typer.Option("--decay-by-time", help="With --max-minutes: decay the learning rate over the minutes too, whichever of steps and minutes runs out first, so a run slower than its --steps assumed still decays before it is stopped (the rate then depends on the machine's speed).")] = False,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the training step's forward and backward (needs a C++ compiler on a CPU): nafnet-cpu trained 1.31x faster on an AMX CPU, nafnet 1.36-1.45x; the first step takes 30-80 s to compile. With --resume it replaces the run's own (default: off for a new run, the run's own on --resume).", show_default=False)] = None,
    init: Annotated[str | None, typer.Option(help="Fine-tune: start from these weights, a .safetensors checkpoint or 'shipped' (the variant's shipped weights).")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run in this directory from its last checkpoint, with its own settings (only --steps, --max-minutes, --precision and --compile may change).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model; checkpoints, metrics.jsonl and curve.png go to the run directory.

    Runs unchanged under 'torchrun --nproc-per-node N' (DistributedDataParallel; rank 0 writes).
    """
    # over 60 lines only because typer reads the options from the signature, one line each
    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.train import TrainConfig, load_run_config
    from deblur_core.train import train as run_training

    try:
        if resume is not None:
            cfg = load_run_config(resume, steps=steps, max_minutes=max_minutes, precision=precision,
                                  compile=compile)
        else:
            # options left unset keep TrainConfig's defaults (the run directory runs/<model>, 2000 steps)
            given = dict(out=out, steps=steps, max_minutes=max_minutes, init=init, precision=precision,
                         compile=compile)
            cfg = TrainConfig(model=model, data=data, blur=blur, batch_size=batch_size, patch=patch, lr=lr,
                              warmup=warmup, loss=loss, fft_loss=fft_loss, optimizer=optimizer,
                              weight_decay=weight_decay, noise=noise, saturate=saturate, rotate=rotate,
                              jpeg=jpeg, sharp_share=sharp_share, workers=workers, val_every=val_every,
                              val_count=val_count,
                              val_patch=val_patch, log_every=log_every, seed=seed, device=device,
                              decay_by_time=decay_by_time,
                              **{k: v for k, v in given.items() if v is not None})
    except (ValueError, DeblurError) as e:
        fail(str(e), 2)
    try:
        with Bar("train", enabled=not quiet, fields={"loss": "loss -", "val": "val -", "rate": ""}) as bar:
            progress = None if quiet else _show_training(bar)
            summary = run_training(cfg, resume=resume is not None, progress=progress).summary
    except CheckpointError as e:  # --init or --resume weights that cannot be used: a usage error, as in batch
        fail(str(e), 2)
    except (DeblurError, ValueError) as e:
        fail(str(e))
    if summary.get("best_val_psnr") is not None:
        console.print(
            f"step {summary['step']}: validation PSNR {summary['val_psnr']:.2f} dB "
            f"(blurred input {summary['input_psnr']:.2f} dB, best {summary['best_val_psnr']:.2f} dB), "
            f"{summary['steps_per_s']} steps/s -> {summary['run']}"
        )


def _show_training(bar: Bar) -> ProgressFn:
    """``train``'s progress shown on ``bar``: the last
    logged loss, the last validation PSNR, and the steps/s since the first call (a resumed run's first step)."""
    start: tuple[int, float] | None = None

    def show(p: Progress) -> None:
        nonlocal start
        start = start or (p.done, time.perf_counter())
        rate = (p.done - start[0]) / max(time.perf_counter() - start[1], 1e-9)
        shown = {"loss": f"loss {p.loss:.4g}"} if p.loss is not None else {}
        bar.update(p, val=f"val {p.val_psnr:.2f} dB" if p.val_psnr is not None else "val -",
                   rate=f"{rate:.2f} steps/s", **shown)

    return show


@app.command("eval")
def evaluate_cmd(
    model: Annotated[str, typer.Option(help="Model variant to evaluate.")] = DEFAULT_MODEL,
    data: Annotated[list[str], typer.Option(help="Dataset spec (repeatable), as for 'train'; its held-out images are scored.")] = ["default"],  # noqa: B006
    blur: Annotated[str, typer.Option(help="Synthetic blur for default/folder data: " + BLUR_HELP + ".")] = "gaussian",
    weights: Annotated[str | None, typer.Option(help="A .safetensors checkpoint (default: the shipped weights).")] = None,
    crops: Annotated[bool, typer.Option("--crops", help="Score the fixed validation crops training reports (a quick look) instead of every held-out image whole.")] = False,
    val_count: Annotated[int, typer.Option(help="With --crops: number of validation crops.")] = 48,
    tile: Annotated[int | None, typer.Option(help="Whole images: run the model in tiles of this size where larger. Default: from the memory budget, as batch does.", show_default="from the memory budget")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16: the network's arithmetic (auto: bf16 on GPUs that have it, fp16 on older GPUs, bf16 on CPUs with AMX but for the nafnet models, whose fp32 CPU path is faster, else fp32).")] = "auto",
    baseline: Annotated[bool, typer.Option(help="Also run Richardson-Lucy with the true kernel where known.")] = True,
    tta: Annotated[int, typer.Option(help=TTA_HELP)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (with a row per image; an unchanged image's infinite PSNR is null).")] = False,
    csv: Annotated[str | None, typer.Option(help="Also write one row per image and method to this CSV file.")] = None,
) -> None:
    """Score a model in the seed's format (MSE, PSNR, SSIM) beside the blurred input and Richardson-Lucy, with
    the level shift: how much darker or brighter the output came out than the sharp image.

    --blur none scores what a model does to sharp images (the input row is the image itself, PSNR inf), --blur
    light what it does to nearly sharp ones: a model should leave both as they are.

    Every held-out image is scored whole (the mean of per-image values), as GoPro's and REDS's protocols
    do: pairs:DIR scores DIR/val (or, without one, all of DIR), reds: and gopro: their val/test split,
    default/folder: their validation photos blurred by the project's synthesis of --blur.
    """
    from deblur_core.data import open_dataset
    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.evaluate import evaluate
    from deblur_core.inference import load_deblurrer
    from deblur_core.tta import check_tta

    try:
        check_tta(tta)
    except ValueError as e:
        fail(str(e), 2)
    try:
        deb = load_deblurrer(model, weights, device=device, precision=precision, tta=tta)
        sources = [open_dataset(spec, blur=blur, val_count=val_count, for_eval=not crops) for spec in data]
        results = []
        for src in sources:
            with err_console.status(f"scoring {src.name}") as status:
                results.append(evaluate(deb.model, src, device=deb.device, precision=deb.precision,
                                        baseline=baseline, crops=crops, tile=tile,
                                        progress=lambda p: status.update(f"scoring {src.name}: {p.done} images done")))
    except CheckpointError as e:  # weights that cannot be used: a usage error, as in batch and export
        fail(str(e), 2)
    except (DeblurError, ValueError) as e:
        fail(str(e), 1)
    for r in results:
        r.update(model=model, weights=str(deb.weights) if deb.weights else None, blur=blur, precision=deb.precision,
                 tta=tta)
    if csv:
        _write_eval_csv(csv, results)
    if as_json:
        typer.echo(json.dumps(_finite(results), indent=2))
        return
    if not deb.trained:
        note(f"no trained weights for '{model}': scoring the untrained network")
    for r in results:
        what = "crops" if crops else "whole images"
        tta_note = f", tta {tta}" if tta > 1 else ""
        table = Table(title=f"{r['dataset']} ({r['images']} {what}, blur: {blur}, {deb.precision}{tta_note})")
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


@app.command()
def blur(
    input: Annotated[str, typer.Argument(help="Folder of sharp images or frames (read recursively).")],
    out: Annotated[str, typer.Option(help="Output folder: OUT/blur/... and OUT/sharp/... mirror INPUT.")],
    kind: Annotated[str, typer.Option(help=BLUR_HELP + ".")] = "mix",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same blur.")] = 0,
    noise: Annotated[float, typer.Option(help="Std of additive gaussian noise (0-1 scale).")] = 0.0,
    jpeg: Annotated[int, typer.Option(help="Save each blurred image through a JPEG of this quality (1-100) first; 0: none. 8-bit images only.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write a paired blurred/sharp dataset from your own sharp footage (usable as --data pairs:OUT)."""
    from deblur_core.errors import DeblurError
    from deblur_core.data.make_pairs import make_blur_pairs

    try:
        with Bar("blurring", enabled=not quiet) as bar:
            report = make_blur_pairs(input, out, kind=kind, seed=seed, noise_sigma=noise, jpeg_quality=jpeg,
                                     progress=bar.update)
    except ValueError as e:
        fail(str(e), 2)
    except DeblurError as e:
        fail(str(e), 1)
    console.print(f"wrote {report.written} pairs to {out}")
    for path, reason in report.failed:
        err_console.print(f"[red]failed:[/] {path}: {reason}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def export(
    out: Annotated[str, typer.Option(help="The file to write (its folder is created).", show_default=False)],
    model: Annotated[str, typer.Option(help="Model variant to export (see 'deblur-cli models').")] = DEFAULT_MODEL,
    weights: Annotated[str | None, typer.Option(help="A .safetensors checkpoint (default: the weights shipped for the model, if any).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx (the only format so far).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset, 18 or newer (srn's antialiased downscaling needs 18).")] = 18,
) -> None:
    """Export a model to ONNX for runtimes without PyTorch: input 'blurred', float32 (batch, C, height, width)
    in [0, 1], any batch, height and width; output 'sharp', the same shape, clamped to [0, 1]: what 'batch'
    computes for a frame before writing it (with --precision fp32).

    Needs the export extra (pip install 'deblur-toolkit\\[export]'); with onnxruntime installed the file is
    checked against batch's fp32 deblurring on a random input.
    """
    from rich.markup import escape

    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.export import export_model

    # messages may hold brackets ("pip install 'deblur-toolkit[export]'"), which rich would take for markup
    try:
        with err_console.status(f"exporting {model} (about half a minute)"):
            result = export_model(model, out, weights=weights, format=fmt, opset=opset)
    except (ValueError, CheckpointError) as e:
        fail(escape(str(e)), 2)
    except DeblurError as e:
        fail(escape(str(e)), 1)
    size_mb = result.path.stat().st_size / 1e6
    weights_note = f"weights {result.weights.name}" if result.weights else "untrained"
    console.print(f"wrote {result.path} ({model}, {weights_note}, ONNX opset {result.opset}, {size_mb:.1f} MB)")
    if result.max_abs_diff is None:
        console.print("not checked: onnxruntime is not installed")
    else:
        console.print(f"onnxruntime matches batch's fp32 deblurring to {result.max_abs_diff:.1e} on a 67x93 input")
    if not result.weights:
        note(f"no trained weights for '{model}': the exported network is untrained and returns its input "
             "unchanged; pass --weights.")


app.command()(batch)
