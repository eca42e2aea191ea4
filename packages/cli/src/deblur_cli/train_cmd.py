"""``deblur-cli train``: parse the options into a :class:`deblur_core.train.TrainConfig`, train, show progress."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from deblur_core.progress import Progress, ProgressFn

from .console import Bar, console, fail
from .texts import BLUR_HELP

__all__ = ["train"]


# The defaults are TrainConfig's, spelled out: reading them from deblur_core.train would import torch and
# make every --help ~2.5 s slower. tests/cli/test_cli.py fails when one drifts from its TrainConfig field.
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
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the training step's forward and backward (needs a C++ compiler on a CPU), replayed as CUDA graphs on a single GPU: faster steps for the nafnet models (docs/speed.md), after a first step that takes a minute or so to compile (seconds when the same run compiled on this machine before). With --resume it replaces the run's own (default: off for a new run, the run's own on --resume).", show_default=False)] = None,
    init: Annotated[str | None, typer.Option(help="Fine-tune: start from these weights, a .safetensors checkpoint or 'shipped' (the variant's shipped weights).")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run in this directory from its last checkpoint, with its own settings (only --steps, --max-minutes, --precision and --compile may change).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model; checkpoints, metrics.jsonl and curve.png go to the run directory.

    Runs unchanged under 'torchrun --nproc-per-node N' (DistributedDataParallel; rank 0 writes).
    """
    # every option but these two is the TrainConfig field of its name
    options = {k: v for k, v in locals().items() if k not in ("resume", "quiet")}
    summary = _run(_config(options, resume), resume is not None, quiet)
    if summary.get("best_val_psnr") is not None:
        console.print(
            f"step {summary['step']}: validation PSNR {summary['val_psnr']:.2f} dB "
            f"(blurred input {summary['input_psnr']:.2f} dB, best {summary['best_val_psnr']:.2f} dB), "
            f"{summary['steps_per_s']} steps/s -> {summary['run']}"
        )


def _config(options: dict, resume: str | None):
    """The run's TrainConfig: a resumed run's own (only the options that may change replace its values), else
    one from the options, those left unset (None) keeping TrainConfig's defaults."""
    from deblur_core.errors import DeblurError
    from deblur_core.train import TrainConfig, load_run_config

    try:
        if resume is not None:
            return load_run_config(resume, **{k: options[k] for k in ("steps", "max_minutes", "precision", "compile")})
        return TrainConfig(**{k: v for k, v in options.items() if v is not None})
    except (ValueError, DeblurError) as e:
        fail(str(e), 2)


def _run(cfg, resume: bool, quiet: bool) -> dict:
    """Train with a progress bar (unless quiet); the run's summary. Weights that cannot be used are a usage
    error (exit 2), as in batch; any other failure exits 1."""
    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.train import train as run_training

    try:
        with Bar("train", enabled=not quiet, fields={"loss": "loss -", "val": "val -", "rate": ""}) as bar:
            return run_training(cfg, resume=resume, progress=None if quiet else _show_training(bar)).summary
    except CheckpointError as e:
        fail(str(e), 2)
    except (DeblurError, ValueError) as e:
        fail(str(e))


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
