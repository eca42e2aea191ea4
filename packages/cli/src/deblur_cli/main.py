"""The ``deblur-cli`` command. Each command parses its options, calls one core function and presents the
result; the work itself lives in :mod:`deblur_core`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="deblur-cli",
    help="Remove blur from images and video frames with deep networks.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Remove blur from images and video frames with deep networks."""


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


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Model variant to train (see 'deblur-cli models').")] = "srn",
    data: Annotated[str, typer.Option(help="Dataset: default | cifar10:PATH | reds:PATH | gopro:PATH | pairs:PATH | folder:PATH.")] = "default",
    blur: Annotated[str, typer.Option(help="Synthetic blur for default/folder data: gaussian|motion|shake|video|mix.")] = "mix",
    out: Annotated[str | None, typer.Option(help="Run directory (default: runs/<model>).")] = None,
    steps: Annotated[int | None, typer.Option(help="Total optimizer steps (default 2000; on --resume, the run's own).")] = None,
    batch_size: Annotated[int, typer.Option(help="Patches per step (per process under torchrun).")] = 16,
    patch: Annotated[int, typer.Option(help="Training crop size in pixels.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak Adam learning rate (cosine decay after warm-up).")] = 5e-4,
    loss: Annotated[str, typer.Option(help="Loss: mse | l1 | charbonnier.")] = "mse",
    val_every: Annotated[int, typer.Option(help="Validate and checkpoint every N steps.")] = 250,
    val_count: Annotated[int, typer.Option(help="Number of validation crops.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed for the model init and every batch.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    max_minutes: Annotated[float | None, typer.Option(help="Stop cleanly with a checkpoint after this many minutes (default: no limit).")] = None,
    init: Annotated[str | None, typer.Option(help="Fine-tune: start from these weights, a .safetensors checkpoint or 'shipped' (the variant's shipped weights).")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run in this directory from its last checkpoint, with its own settings (only --steps and --max-minutes may change).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model; checkpoints, metrics.jsonl and curve.png go to the run directory.

    Runs unchanged under 'torchrun --nproc-per-node N' (DistributedDataParallel; rank 0 writes).
    """
    from deblur_core.errors import DeblurError
    from deblur_core.models import list_models
    from deblur_core.train import TrainConfig, load_run_config
    from deblur_core.train import train as run_training

    try:
        if resume is not None:
            cfg = load_run_config(resume)
            if steps is not None:
                cfg.steps = steps
            cfg.max_minutes = max_minutes or 0.0
        else:
            if model not in list_models():
                _fail(f"unknown model '{model}'; choose one of: {', '.join(list_models())}", 2)
            cfg = TrainConfig(model=model, data=data, blur=blur, out=out or f"runs/{model}", steps=steps or 2000,
                              batch_size=batch_size, patch=patch, lr=lr, loss=loss, val_every=val_every,
                              val_count=val_count, seed=seed, device=device, max_minutes=max_minutes or 0.0,
                              init=init or "")
    except (ValueError, DeblurError) as e:
        _fail(str(e), 2)
    try:
        summary = run_training(cfg, resume=resume is not None, quiet=quiet).summary
    except (DeblurError, ValueError) as e:
        _fail(str(e))
    if summary.get("best_val_psnr") is not None:
        console.print(
            f"step {summary['step']}: validation PSNR {summary['val_psnr']:.2f} dB "
            f"(blurred input {summary['input_psnr']:.2f} dB, best {summary['best_val_psnr']:.2f} dB), "
            f"{summary['steps_per_s']} steps/s -> {summary['run']}"
        )


@app.command("eval")
def evaluate_cmd(
    model: Annotated[str, typer.Option(help="Model variant to evaluate.")] = "srn",
    data: Annotated[list[str], typer.Option(help="Dataset spec (repeatable), as for 'train'.")] = ["default"],  # noqa: B006
    blur: Annotated[str, typer.Option(help="Synthetic blur for default/folder data.")] = "gaussian",
    weights: Annotated[str | None, typer.Option(help="A .safetensors checkpoint (default: the shipped weights).")] = None,
    val_count: Annotated[int, typer.Option(help="Number of validation crops.")] = 48,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    baseline: Annotated[bool, typer.Option(help="Also run Richardson-Lucy with the true kernel where known.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Score a model in the seed's format (MSE, PSNR, SSIM) beside the blurred input and Richardson-Lucy."""
    from deblur_core.data import open_dataset
    from deblur_core.errors import DeblurError
    from deblur_core.evaluate import evaluate
    from deblur_core.inference import load_deblurrer

    try:
        deb = load_deblurrer(model, weights, device=device)
        results = [evaluate(deb.model, open_dataset(spec, blur=blur, val_count=val_count), device=deb.device,
                            baseline=baseline) for spec in data]
    except (DeblurError, ValueError) as e:
        _fail(str(e), 1)
    for r in results:
        r.update(model=model, weights=str(deb.weights) if deb.weights else None, blur=blur)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    if not deb.trained:
        err_console.print(f"[yellow]note:[/] no trained weights for '{model}': scoring the untrained network")
    for r in results:
        table = Table(title=f"{r['dataset']} ({r['images']} images, blur: {blur})")
        for col in ("", "MSE", "PSNR (dB)", "SSIM"):
            table.add_column(col, justify="right" if col else "left")
        labels = {"blurred": "blurred input", "model": model, "richardson_lucy": "Richardson-Lucy (true kernel)"}
        for row, vals in r["rows"].items():
            table.add_row(labels.get(row, row), f"{vals['mse']:.5f}", f"{vals['psnr']:.2f}", f"{vals['ssim']:.4f}")
        console.print(table)


@app.command()
def blur(
    input: Annotated[str, typer.Argument(help="Folder of sharp images or frames (read recursively).")],
    out: Annotated[str, typer.Option(help="Output folder: OUT/blur/... and OUT/sharp/... mirror INPUT.")],
    kind: Annotated[str, typer.Option(help="gaussian | motion | shake | video | mix.")] = "mix",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same blur.")] = 0,
    noise: Annotated[float, typer.Option(help="Std of additive gaussian noise (0-1 scale).")] = 0.0,
) -> None:
    """Write a paired blurred/sharp dataset from your own sharp footage (usable as --data pairs:OUT)."""
    from deblur_core.blur import BLUR_KINDS
    from deblur_core.errors import DeblurError
    from deblur_core.pairs import make_blur_pairs

    if kind not in (*BLUR_KINDS, "mix"):
        _fail(f"unknown blur kind '{kind}'; choose one of: {', '.join((*BLUR_KINDS, 'mix'))}", 2)
    try:
        report = make_blur_pairs(input, out, kind=kind, seed=seed, noise_sigma=noise)
    except ValueError as e:
        _fail(str(e), 2)
    except DeblurError as e:
        _fail(str(e), 1)
    console.print(f"wrote {report.written} pairs to {out}")
    for path, reason in report.failed:
        err_console.print(f"[red]failed:[/] {path}: {reason}")
    if report.failed:
        raise typer.Exit(1)


from .batch_cmd import batch  # noqa: E402  (its own module; it imports this one lazily, so no cycle)

app.command()(batch)
