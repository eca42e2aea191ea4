"""Training: one config dataclass and one function.

The loop reads top to bottom: learning rate -> validate/checkpoint -> forward/backward -> clip -> step ->
log. A training batch is a pure function of (seed, step, rank) (see :mod:`deblur_core.data`), so resuming
needs only the step, the model, the optimizer and the RNG state, all kept in one atomically written
``train_state.safetensors``; a resumed run continues the interrupted run's loss curve exactly.
Under ``torchrun`` the same function trains with DistributedDataParallel (gloo on CPU, NCCL on GPUs);
only rank 0 writes files. The losses live in :mod:`deblur_core.losses`; progress goes to the caller's
``progress`` callback (:data:`deblur_core.progress.ProgressFn`), which draws it (the CLI's bar) or not.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import (load_checkpoint, load_train_state, load_weights, pretrained_path,
                         read_metadata, save_checkpoint, save_train_state)
from .distributed import DistContext
from .data import open_dataset
from .data.ahead import made_ahead
from .errors import DeblurError
from .inference import resolve_device
from .losses import LOSSES, multiscale_loss
from .metrics import mse, psnr, ssim
from .models import get_model, list_models
from .precision import autocast_dtype, check_precision, precision_name
from .progress import Progress, ProgressFn
from .run_log import open_log, plot_curve

__all__ = ["TrainConfig", "TrainResult", "train", "load_run_config", "validate", "GPU_PLAN_WORKERS"]

GPU_PLAN_WORKERS = 6  # processes drawing plans ahead beside a GPU (workers=-1); a CPU draws them itself

@dataclass
class TrainConfig:
    model: str = "srn"  # registry name of the variant to train
    data: str = "default"  # dataset spec: default | cifar10:PATH | reds:PATH | gopro:PATH | pairs:PATH | folder:PATH
    blur: str = "mix"  # synthetic blur for default/folder data: a kind or mix of deblur_core.blur (realistic: the long mix)
    out: str = ""  # run directory: checkpoints, metrics.jsonl, curve.png ("": runs/<model>)
    steps: int = 2000  # total optimizer steps
    batch_size: int = 16  # patches per step (per process under torchrun)
    patch: int = 64  # square training crop size
    lr: float = 5e-4  # peak Adam learning rate
    lr_min: float = 1e-5  # learning rate at the end of the cosine decay
    warmup: int = 50  # linear warm-up steps, so Adam's first noisy steps don't wreck the init
    loss: str = "mse"  # mse | l1 | charbonnier
    fft_loss: float = 0.0  # weight of an L1 loss on the 2-D FFT (MIMO-UNet uses 0.1): sharp edges are high frequencies
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0  # decoupled weight decay (adamw)
    noise: float = 0.0  # synthetic data: largest read-noise sigma per sample (plus shot noise), see data/batches.py
    saturate: float = 0.0  # synthetic data: share of samples with highlights saturated past white
    rotate: bool = False  # synthetic data: also transpose crops (8 rotations/reflections, not only flips)
    jpeg: float = 0.0  # synthetic data: share of samples saved as JPEG (quality 60-95) after the blur
    # synthetic data: share of samples left sharp or lightly blurred (see blur.with_sharp_samples): without them a
    # network never sees a sharp input and may alter the sharp frames real footage is mostly made of
    sharp_share: float = 0.1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: autocast dtype (auto: see precision.autocast_dtype; stored resolved)
    workers: int = -1  # processes drawing the next batches' kernels ahead; -1 = auto (0 on CPU, 6 on GPU)
    grad_clip: float = 1.0  # max global gradient norm
    val_every: int = 250  # validate and checkpoint every this many steps
    val_count: int = 48  # validation crops (six swing by +-0.6 dB; more give a steadier number)
    val_patch: int = 128  # validation crop size
    log_every: int = 10  # write a metrics.jsonl line every this many steps
    seed: int = 0  # model init and every batch derive from it
    device: str = "auto"  # auto | cpu | cuda
    max_minutes: float = 0.0  # stop cleanly (with a checkpoint) after this wall time; 0 = no limit
    # with max_minutes: the cosine also runs on the run's training seconds over max_minutes, whichever is further
    # along, so a run that steps slower than its step count assumed still decays before the time limit stops it
    # (the learning rate then depends on the machine's speed, and a resumed run no longer replays it exactly)
    decay_by_time: bool = False
    # torch.compile the training forward and its backward: it fuses the elementwise work between the layers
    # (faster steps, benchmarks/test_training_nafnet.py), but the first step compiles for a minute or so, so it
    # pays on runs of more than a few hundred steps. On one CUDA GPU the compiled passes also replay as CUDA
    # graphs (see _compile_mode)
    compile: bool = False
    init: str = ""  # start from these weights (a .safetensors checkpoint, or "shipped"): fine-tuning
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # constructor overrides for the variant

    def __post_init__(self) -> None:
        if self.model not in list_models():
            raise ValueError(f"unknown model '{self.model}'; choose one of: {', '.join(list_models())}")
        self.out = self.out or f"runs/{self.model}"
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got '{self.loss}'")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got '{self.optimizer}'")
        check_precision(self.precision)
        if self.fft_loss < 0 or self.noise < 0 or self.weight_decay < 0:
            raise ValueError("fft_loss, noise and weight_decay must be >= 0")
        for name in ("saturate", "jpeg", "sharp_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1] (a share of the samples), got {getattr(self, name)}")
        for name in ("steps", "batch_size", "patch", "val_every", "log_every", "val_count"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        # a saved config without sharp_share drew no sharp samples: keep its batches as they were
        return cls(**{"sharp_share": 0.0, **{k: v for k, v in d.items() if k in known}})


@torch.no_grad()
def validate(model: nn.Module, source, device: torch.device, batch_size: int = 8) -> dict[str, float]:
    """Mean per-image PSNR/SSIM and MSE of the model's output on the validation set (eval mode)."""
    was_training = model.training
    model.eval()
    p, s, m = [], [], []
    for b in source.val_batches(batch_size):
        out = model(b.blur.to(device)).clamp(0, 1).float().cpu()
        p.append(psnr(out, b.sharp))
        s.append(ssim(out, b.sharp))
        m.append(mse(out, b.sharp))
    model.train(was_training)
    return {"val_psnr": float(torch.cat(p).mean()), "val_ssim": float(torch.cat(s).mean()), "val_mse": float(torch.cat(m).mean())}


def _lr_at(cfg: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """The learning rate of ``step``, ``seconds`` of training into the run: linear warm-up, then cosine decay
    over the steps (or over ``max_minutes`` too, with ``decay_by_time``)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.decay_by_time and cfg.max_minutes > 0:
        t = max(t, seconds / (cfg.max_minutes * 60))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(1.0, t)))


def _init_weights(cfg: TrainConfig, model: nn.Module) -> dict[str, Any]:
    """Load the starting weights of a fine-tuning run; returns what they record of their own training.

    The record (``init``: the earlier runs' configs, steps and wall time) travels into this run's
    checkpoints, so a model trained in several fine-tuning stages still says how it was made.
    """
    path = pretrained_path(cfg.model) if cfg.init == "shipped" else Path(cfg.init)
    if path is None:
        raise DeblurError(f"--init shipped: no weights ship for '{cfg.model}' (see 'deblur-cli models')")
    tensors, meta = load_checkpoint(path)
    if meta["model"] != cfg.model or meta.get("kwargs", {}) != cfg.model_kwargs:
        raise DeblurError(f"--init '{path}' holds weights for '{meta['model']}' {meta.get('kwargs') or ''}, "
                          f"not for '{cfg.model}' {cfg.model_kwargs or ''}")
    load_weights(model, tensors, path, cfg.model)
    earlier = list(meta.get("init", []))
    earlier.append({"weights": str(path), "config": meta.get("config", {}),
                    "step": meta.get("metrics", {}).get("step"),
                    "train_seconds": meta.get("metrics", {}).get("train_seconds"),
                    **({"averaged": meta["averaged"]} if meta.get("averaged") else {})})  # scripts/average_weights.py
    return {"init": earlier}


def load_run_config(run_dir: str | os.PathLike, *, steps: int | None = None, max_minutes: float | None = None,
                    precision: str | None = None, compile: bool | None = None) -> TrainConfig:
    """The config a run directory was trained with, to resume it (``train(cfg, resume=True)``).

    A resumed run keeps every setting of its own except four: ``steps`` (None: the run's own) may extend
    it, ``max_minutes`` limits this call only (None: no limit; an earlier call's limit is not reused), and
    ``precision`` and ``compile`` (None: the run's own) belong to the machine, not the run: bf16 that is fast on
    one CPU (AMX) is emulated on another, where a run continues in fp32, and compiling needs a C++ compiler (on
    a CPU) that another machine may lack.
    """
    run = Path(run_dir)
    if not (run / "train_state.safetensors").is_file() or not (run / "config.json").is_file():
        raise DeblurError(f"cannot resume: '{run}' holds no train_state.safetensors/config.json of a run")
    saved = json.loads((run / "config.json").read_text())
    return TrainConfig.from_dict({**saved, "out": str(run), "steps": steps or saved["steps"],
                                  "max_minutes": max_minutes or 0.0, "precision": precision or saved["precision"],
                                  "compile": saved.get("compile", False) if compile is None else compile})


@dataclass
class TrainResult:
    model: nn.Module  # the trained network (every rank holds identical weights under DDP)
    summary: dict[str, Any]  # step, wall time, steps/s, best and last validation metrics


@dataclass
class _State:
    """What a run carries from step to step (and, through train_state.safetensors, across --resume)."""

    step: int = 0
    best: float = -math.inf  # best validation PSNR so far
    prior_seconds: float = 0.0  # wall time of earlier calls of a resumed run
    lineage: dict[str, Any] = field(default_factory=dict)  # how a fine-tuning run's starting weights were made
    input_psnr: float | None = None  # the blurred validation set's PSNR (computed once)
    last_val: dict[str, float] = field(default_factory=dict)


def _compiled(net: nn.Module, cfg: TrainConfig, device: torch.device, world_size: int) -> tuple[nn.Module, bool]:
    """``net`` compiled where ``cfg.compile`` asks, and whether its steps replay as CUDA graphs."""
    if not cfg.compile:
        return net, False
    mode = _compile_mode(device, world_size)
    _check_compiler(device)
    # the crops keep one shape: compiled once, for static shapes
    return torch.compile(net, dynamic=False, mode=mode), mode == "reduce-overhead"


def train(cfg: TrainConfig, *, resume: bool = False, progress: ProgressFn | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``, writing checkpoints and logs to ``cfg.out``. ``resume=True`` continues
    the run in ``cfg.out`` from its last saved step (see :func:`load_run_config`); ``cfg.steps`` and
    ``cfg.max_minutes`` may be raised to extend it.
    ``progress`` (rank 0; None: silent) sees the start step, then every step written to metrics.jsonl with the
    mean loss since its last call and the last validation PSNR (:class:`deblur_core.progress.Progress`).
    """
    ctx = DistContext.from_env()
    device = torch.device(ctx.device(resolve_device(cfg.device)))
    ctx.init_process_group(device)
    run = Path(cfg.out)
    source = open_dataset(cfg.data, blur=cfg.blur, val_patch=cfg.val_patch, val_count=cfg.val_count,
                          channels=cfg.model_kwargs.get("in_channels", 3))
    model, opt, state = _start(cfg, device, run if resume else None)
    net = nn.parallel.DistributedDataParallel(model) if ctx.world_size > 1 else model
    net, graphs = _compiled(net, cfg, device, ctx.world_size)
    amp = autocast_dtype(cfg.precision, device)
    # "auto" is decided once, here, and stored as what it chose: a run resumed on another kind of CPU (or a GPU)
    # keeps the arithmetic it started with
    cfg = replace(cfg, precision=precision_name(amp)) if cfg.precision == "auto" else cfg
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # bf16 needs no loss scaling
    if ctx.is_main:
        open_log(run, asdict(cfg), state.step if resume else None)
    if progress and ctx.is_main:
        progress(Progress(state.step, cfg.steps))
    t0, start_step = time.time(), state.step
    loss_sum, loss_n = torch.zeros((), device=device), 0  # summed on the device: a per-step read stalls a GPU
    elapsed = 0.0  # this call's seconds at the end of the last step, the same on every rank
    for blur, sharp in _batches(source, cfg, state.step, ctx.rank, device):
        lr = _lr_at(cfg, state.step, state.prior_seconds + elapsed)
        if graphs:  # a new iteration: the graphs' outputs of the last one (its gradients) are spent
            torch.compiler.cudagraph_mark_step_begin()
        loss = _step(net, model, opt, scaler, amp, cfg, lr, blur, sharp)
        state.step += 1
        loss_sum, loss_n = loss_sum + loss, loss_n + 1
        elapsed = ctx.max(time.time() - t0)
        out_of_time = cfg.max_minutes > 0 and elapsed > cfg.max_minutes * 60
        record: dict[str, Any] = {}
        if state.step % cfg.log_every == 0 or state.step == cfg.steps:
            record = {"step": state.step, "loss": float(loss_sum) / loss_n, "lr": opt.param_groups[0]["lr"]}
            loss_sum, loss_n = torch.zeros((), device=device), 0
        if state.step % cfg.val_every == 0 or state.step == cfg.steps or out_of_time:
            ctx.average_buffers(model)
            if ctx.is_main:
                record.update(_checkpoint(run, cfg, model, opt, source, device, state, time.time() - t0))
            ctx.barrier()
        if record and ctx.is_main:
            record["elapsed_s"] = round(state.prior_seconds + time.time() - t0, 2)  # continues across --resume
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if progress:
                progress(Progress(state.step, cfg.steps, loss=record.get("loss"),
                                  val_psnr=state.last_val.get("val_psnr")))
        if out_of_time:
            break
    elapsed = time.time() - t0
    if ctx.is_main:
        plot_curve(run / "metrics.jsonl", run / "curve.png")
    ctx.close()
    return TrainResult(model=model, summary=_summary(run, cfg, state, start_step, elapsed))


def _start(cfg: TrainConfig, device: torch.device, resume_from: Path | None,
           ) -> tuple[nn.Module, torch.optim.Optimizer, _State]:
    """The model and optimizer a run starts from: fresh (seeded), fine-tuned from ``cfg.init``, or resumed."""
    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, **cfg.model_kwargs).to(device).train()
    model = model.to(memory_format=torch.channels_last)  # the layout oneDNN and tensor cores convolve fastest
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # training crops have one size: autotuning pays at once
    optim = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = optim(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                **({"fused": True} if device.type == "cuda" else {}))
    state = _State()
    if resume_from is not None:
        meta = load_train_state(resume_from / "train_state.safetensors", model, opt)
        state.step, state.best = int(meta["step"]), float(meta["best_psnr"])
        state.prior_seconds = float(meta.get("train_seconds", 0.0))
        if (resume_from / "last.safetensors").is_file():
            state.lineage = {k: v for k, v in read_metadata(resume_from / "last.safetensors").items() if k == "init"}
    elif cfg.init:
        state.lineage = _init_weights(cfg, model)
    return model, opt, state


def _check_compiler(device: torch.device) -> None:
    """Fail at once, with what to do, where --compile would fail only at the first step with a compiler's
    traceback: on a CPU, torch.compile's kernels are C++ that it builds with the machine's compiler."""
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "clang++") if c):
        raise DeblurError("--compile on a CPU needs a C++ compiler (g++ or clang++ on PATH, or $CXX): "
                          "install one (Debian: apt install g++) or train without --compile")


def _compile_mode(device: torch.device, world_size: int) -> str:
    """torch.compile's mode for training on ``device``: ``reduce-overhead`` (the compiled forward and backward
    recorded once as CUDA graphs and replayed) on a single CUDA GPU, ``default`` elsewhere.

    A small network's step is hundreds of short kernels that leave a GPU waiting on their launches; a graph
    launches them all at once. Graphs need tensors of one shape, which training crops have (``dynamic=False``),
    and they are left out under DistributedDataParallel, whose gradient hooks talk to the other processes
    between the kernels. ``max-autotune`` would also time each convolution's candidate kernels, minutes of
    compiling that a short run on a lent GPU cannot spare. On a CPU there are no graphs to replay.
    """
    return "reduce-overhead" if device.type == "cuda" and world_size == 1 else "default"


def _makes_ahead(device: torch.device) -> bool:
    """Whether the next batch is made in a background thread while the step runs: on a GPU, whose steps
    return once queued and leave the host idle; not on a CPU, where the step takes the cores itself."""
    return device.type == "cuda"


def _batches(source, cfg: TrainConfig, step: int, rank: int, device: torch.device):
    """(blurred, sharp) batches on ``device`` for steps ``step`` .. ``cfg.steps - 1``."""
    make = getattr(source, "device_batches", None)
    if make is None:  # pairs read from disk: made on the CPU, copied over
        batches = (_host_batch(source, cfg, s, rank, device) for s in range(step, cfg.steps))
    else:  # synthetic blur: made on the training device, kernels drawn ahead by worker processes
        workers = cfg.workers if cfg.workers >= 0 else (GPU_PLAN_WORKERS if device.type == "cuda" else 0)
        batches = make(cfg.batch_size, cfg.patch, seed=cfg.seed, rank=rank, device=device, noise=cfg.noise,
                       saturate=cfg.saturate, rotate=cfg.rotate, jpeg=cfg.jpeg, sharp_share=cfg.sharp_share,
                       workers=workers).iterate(step, cfg.steps)
    if not _makes_ahead(device):
        return batches
    # on a GPU, on a stream of their own: the copies of a batch's making then wait for it alone, not for the step
    return made_ahead(batches, stream=torch.cuda.Stream(device) if device.type == "cuda" else None)


def _step(net: nn.Module, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          amp: torch.dtype | None, cfg: TrainConfig, lr: float, blur: Tensor, sharp: Tensor) -> Tensor:
    """One optimizer step at learning rate ``lr``: forward, backward, clip, update. Returns the (detached) loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    # before the forward: the last step's gradients, which CUDA graphs' replays overwrite, are then let go
    opt.zero_grad(set_to_none=True)
    blur = blur.contiguous(memory_format=torch.channels_last)
    with torch.autocast(blur.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = multiscale_loss(net(blur), sharp, cfg.loss, cfg.fft_loss)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(opt)
    scaler.update()
    return loss.detach()


def _checkpoint(run: Path, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer, source,
                device: torch.device, state: _State, seconds: float) -> dict[str, Any]:
    """Validate; write last.safetensors, best.safetensors (if better) and train_state.safetensors.
    Returns the validation record for metrics.jsonl."""
    if state.input_psnr is None:
        state.input_psnr = _input_psnr(source)
    state.last_val = validate(model, source, device)
    train_seconds = round(state.prior_seconds + seconds, 1)
    meta = dict(config=asdict(cfg), extra=state.lineage, metrics={
        **state.last_val, "input_psnr": state.input_psnr, "step": state.step, "train_seconds": train_seconds})
    save_checkpoint(run / "last.safetensors", model, name=cfg.model, kwargs=cfg.model_kwargs, **meta)
    if state.last_val["val_psnr"] > state.best:
        state.best = state.last_val["val_psnr"]
        save_checkpoint(run / "best.safetensors", model, name=cfg.model, kwargs=cfg.model_kwargs, **meta)
    save_train_state(run / "train_state.safetensors", model, opt, {
        "step": state.step, "config": asdict(cfg), "best_psnr": state.best, "train_seconds": train_seconds})
    return {"step": state.step, **state.last_val, "input_psnr": state.input_psnr}


def _summary(run: Path, cfg: TrainConfig, state: _State, start_step: int, elapsed: float) -> dict[str, Any]:
    return {
        "run": str(run),
        "model": cfg.model,
        "step": state.step,
        "steps_this_call": state.step - start_step,
        "elapsed_s": round(elapsed, 1),
        "train_seconds": round(state.prior_seconds + elapsed, 1),
        "steps_per_s": round((state.step - start_step) / elapsed, 3) if elapsed > 0 else None,
        "best_val_psnr": state.best if state.best > -math.inf else None,
        "input_psnr": state.input_psnr,
        **state.last_val,
    }


def _host_batch(source, cfg: TrainConfig, step: int, rank: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """A batch of a source read from disk (real pairs, CIFAR-10), copied to the training device."""
    b = source.train_batch(step, cfg.batch_size, cfg.patch, seed=cfg.seed, rank=rank)
    return b.blur.to(device, non_blocking=True), b.sharp.to(device, non_blocking=True)


def _input_psnr(source) -> float:
    vals = [psnr(b.blur, b.sharp) for b in source.val_batches(16)]
    return float(torch.cat(vals).mean())
