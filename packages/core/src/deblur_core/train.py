"""Training: one config dataclass and one function.

The loop reads top to bottom: learning rate -> validate/checkpoint -> forward/backward -> clip -> step ->
log. A training batch is a pure function of (seed, step, rank) (see :mod:`deblur_core.data`), so resuming
needs only the step, the model, the optimizer and the RNG state, all kept in one atomically written
``train_state.safetensors``; a resumed run continues the interrupted run's loss curve exactly.
Under ``torchrun`` the same function trains with DistributedDataParallel (gloo on CPU, NCCL on GPUs);
only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .checkpoint import atomic_path, load_checkpoint, pretrained_path, read_metadata, save_checkpoint
from .data import open_dataset
from .errors import DeblurError
from .inference import PRECISIONS, inference_dtype, resolve_device
from .metrics import psnr, ssim
from .models import get_model

__all__ = ["TrainConfig", "TrainResult", "train", "load_run_config", "multiscale_loss", "validate", "LOSSES"]


@dataclass
class TrainConfig:
    model: str = "srn"  # registry name of the variant to train
    data: str = "default"  # dataset spec: default | cifar10:PATH | reds:PATH | gopro:PATH | pairs:PATH | folder:PATH
    blur: str = "mix"  # synthetic blur for default/folder data: gaussian|motion|shake|video|mix
    out: str = "runs/srn"  # run directory: checkpoints, metrics.jsonl, curve.png
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
    noise: float = 0.0  # synthetic data: largest read-noise sigma per sample (plus shot noise), see batches.py
    saturate: float = 0.0  # synthetic data: share of samples with highlights saturated past white
    rotate: bool = False  # synthetic data: also transpose crops (8 rotations/reflections, not only flips)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: autocast dtype (auto: bf16 on GPUs that have it, fp32 on CPUs)
    workers: int = -1  # processes drawing the next batches' kernels ahead; -1 = auto (0 on CPU, 6 on GPU)
    grad_clip: float = 1.0  # max global gradient norm
    val_every: int = 250  # validate and checkpoint every this many steps
    val_count: int = 48  # validation crops (six swing by +-0.6 dB; more give a steadier number)
    val_patch: int = 128  # validation crop size
    log_every: int = 10  # write a metrics.jsonl line every this many steps
    seed: int = 0  # model init and every batch derive from it
    device: str = "auto"  # auto | cpu | cuda
    max_minutes: float = 0.0  # stop cleanly (with a checkpoint) after this wall time; 0 = no limit
    init: str = ""  # start from these weights (a .safetensors checkpoint, or "shipped"): fine-tuning
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # constructor overrides for the variant

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got '{self.loss}'")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got '{self.optimizer}'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got '{self.precision}'")
        if self.fft_loss < 0 or self.noise < 0 or self.weight_decay < 0 or not 0 <= self.saturate <= 1:
            raise ValueError("fft_loss, noise and weight_decay must be >= 0 and saturate in [0, 1]")
        for name in ("steps", "batch_size", "patch", "val_every", "log_every", "val_count"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "charbonnier": _charbonnier}


def fft_l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference of the 2-D real FFTs (real and imaginary parts), in fp32."""
    fx, fy = torch.fft.rfft2(x.float()), torch.fft.rfft2(y.float())
    return (torch.view_as_real(fx) - torch.view_as_real(fy)).abs().mean()


def multiscale_loss(outputs: Tensor | list[Tensor], sharp: Tensor, loss: str = "mse", fft: float = 0.0) -> Tensor:
    """Sum over scales of the loss between each output and the sharp image resized to its size (SRN);
    a single output is compared with the sharp image directly. ``fft`` > 0 adds that weight times
    :func:`fft_l1` at every scale (MIMO-UNet's frequency loss)."""
    fn = LOSSES[loss]
    outs = outputs if isinstance(outputs, list) else [outputs]
    total = sharp.new_zeros((), dtype=torch.float32)
    for o in outs:
        o = o.float()
        target = sharp
        if o.shape[-2:] != sharp.shape[-2:]:
            target = F.interpolate(sharp, size=o.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        total = total + fn(o, target)
        if fft > 0:
            total = total + fft * fft_l1(o, target)
    return total


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training run, or None for plain fp32.

    Inference's rule (:func:`deblur_core.inference.inference_dtype`: on GPUs bf16 where native, else
    fp16), except that ``auto`` trains in fp32 on every CPU: bf16 runs ~140x slower than fp32 on CPUs
    without native support, and on those with it (AMX) its effect on training has not been measured here.
    """
    if precision == "auto" and device.type != "cuda":
        return None
    return inference_dtype(precision, device)


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
        m.append((out - b.sharp).pow(2).mean(dim=(1, 2, 3)))
    model.train(was_training)
    return {"val_psnr": float(torch.cat(p).mean()), "val_ssim": float(torch.cat(s).mean()), "val_mse": float(torch.cat(m).mean())}


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(1.0, t)))


def _save_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig, best: float,
                train_seconds: float) -> None:
    """Model, Adam moments and RNG state in one safetensors file, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    tensors["rng.cpu"] = torch.get_rng_state()
    meta = {"step": step, "config": asdict(cfg), "param_groups": osd["param_groups"], "best_psnr": best,
            "train_seconds": train_seconds}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"deblur_train": json.dumps(meta)})


def _load_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float, float]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["deblur_train"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    # moments come back contiguous; give them their parameter's layout (channels_last), which fused
    # optimizers require
    for p, st in opt.state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)
    torch.set_rng_state(tensors["rng.cpu"])
    return int(meta["step"]), float(meta["best_psnr"]), float(meta.get("train_seconds", 0.0))


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
    model.load_state_dict(tensors, strict=True)
    earlier = list(meta.get("init", []))
    earlier.append({"weights": str(path), "config": meta.get("config", {}),
                    "step": meta.get("metrics", {}).get("step"),
                    "train_seconds": meta.get("metrics", {}).get("train_seconds")})
    return {"init": earlier}


def _truncate_log(path: Path, step: int) -> None:
    # a killed run may have logged past its last checkpoint: drop those lines so the curve continues
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def _agree(flag: bool, world: int) -> bool:
    """True on every rank if it is true on any: a time limit must stop all ranks at the same step."""
    if world <= 1:
        return flag
    t = torch.tensor(float(flag))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _average_buffers(model: nn.Module, world: int) -> None:
    """Average BatchNorm running statistics over ranks before validating and saving.

    DDP keeps parameters identical, but each rank updates its running statistics from its own batches;
    averaging makes them describe all the data and leaves every rank with the same model.
    """
    if world <= 1:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)


def _init_distributed(device: torch.device) -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The config a run directory was trained with, to resume it (``train(cfg, resume=True)``)."""
    run = Path(run_dir)
    if not (run / "train_state.safetensors").is_file() or not (run / "config.json").is_file():
        raise DeblurError(f"cannot resume: '{run}' holds no train_state.safetensors/config.json of a run")
    return TrainConfig.from_dict({**json.loads((run / "config.json").read_text()), "out": str(run)})


@dataclass
class TrainResult:
    model: nn.Module  # the trained network (every rank holds identical weights under DDP)
    summary: dict[str, Any]  # step, wall time, steps/s, best and last validation metrics


def train(cfg: TrainConfig, *, resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``, writing checkpoints and logs to ``cfg.out``.

    ``resume=True`` continues the run in ``cfg.out`` from its last saved step (see
    :func:`load_run_config`); ``cfg.steps`` and ``cfg.max_minutes`` may be raised to extend it.
    """
    device = resolve_device(cfg.device)
    rank, world = _init_distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    run = Path(cfg.out)
    source = open_dataset(cfg.data, blur=cfg.blur, val_patch=cfg.val_patch, val_count=cfg.val_count,
                          channels=cfg.model_kwargs.get("in_channels", 3))
    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, **cfg.model_kwargs).to(device).train()
    model = model.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPUs and tensor cores
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # training crops have one size: autotuning pays at once
    optim = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = optim(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                **({"fused": True} if device.type == "cuda" else {}))
    step, best, prior_seconds = 0, -math.inf, 0.0  # prior_seconds: wall time of earlier calls of a resumed run
    lineage: dict[str, Any] = {}  # how the starting weights of a fine-tuning run were trained
    if resume:
        step, best, prior_seconds = _load_state(run / "train_state.safetensors", model, opt)
        if (run / "last.safetensors").is_file():
            lineage = {k: v for k, v in read_metadata(run / "last.safetensors").items() if k == "init"}
    elif cfg.init:
        lineage = _init_weights(cfg, model)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    amp = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # bf16 needs no loss scaling
    make = getattr(source, "device_batches", None)
    if make is not None:  # synthetic blur: made on the training device, kernels drawn ahead by workers
        workers = cfg.workers if cfg.workers >= 0 else (6 if device.type == "cuda" else 0)
        batches = make(cfg.batch_size, cfg.patch, seed=cfg.seed, rank=rank, device=device, noise=cfg.noise,
                       saturate=cfg.saturate, rotate=cfg.rotate, workers=workers).iterate(step, cfg.steps)
    else:
        batches = (_host_batch(source, cfg, s, rank, device) for s in range(step, cfg.steps))

    is_main = rank == 0
    log_path = run / "metrics.jsonl"
    if is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if resume:
            _truncate_log(log_path, step)
        else:
            log_path.write_text("")
    progress = _Progress(cfg.steps, step, enabled=is_main and not quiet)
    input_psnr = None
    last_val: dict[str, float] = {}
    t0, loss_n = time.time(), 0
    loss_sum = torch.zeros((), device=device)  # summed on the device: reading it every step would stall a GPU
    start_step = step
    try:
        for blur, sharp in batches:
            # 1. learning rate for this step (warm-up, then cosine decay)
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step)
            # 2. the batch this (seed, step, rank) defines arrived from the iterator
            blur = blur.contiguous(memory_format=torch.channels_last)
            # 3. forward / backward / clip / step
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = multiscale_loss(net(blur), sharp, cfg.loss, cfg.fft_loss)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            step += 1
            loss_sum, loss_n = loss_sum + loss.detach(), loss_n + 1
            # 4. log, validate, checkpoint (rank 0 only)
            out_of_time = _agree(cfg.max_minutes > 0 and time.time() - t0 > cfg.max_minutes * 60, world)
            record: dict[str, Any] = {}
            if step % cfg.log_every == 0 or step == cfg.steps:
                record = {"step": step, "loss": float(loss_sum) / loss_n, "lr": opt.param_groups[0]["lr"]}
                loss_sum.zero_()
                loss_n = 0
            if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
                _average_buffers(model, world)
                if is_main:
                    if input_psnr is None:
                        input_psnr = _input_psnr(source)
                    last_val = validate(model, source, device)
                    record = {"step": step, **record, **last_val, "input_psnr": input_psnr}
                    train_seconds = round(prior_seconds + time.time() - t0, 1)
                    meta = dict(config=asdict(cfg), metrics={**last_val, "input_psnr": input_psnr, "step": step,
                                                             "train_seconds": train_seconds}, extra=lineage)
                    save_checkpoint(run / "last.safetensors", model, name=cfg.model, kwargs=cfg.model_kwargs, **meta)
                    if last_val["val_psnr"] > best:
                        best = last_val["val_psnr"]
                        save_checkpoint(run / "best.safetensors", model, name=cfg.model, kwargs=cfg.model_kwargs, **meta)
                    _save_state(run / "train_state.safetensors", model, opt, step, cfg, best, train_seconds)
                if world > 1:
                    dist.barrier()
            if record and is_main:
                record["elapsed_s"] = round(prior_seconds + time.time() - t0, 2)  # continues across --resume
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if record:
                progress.update(step, record.get("loss"), last_val.get("val_psnr"))
            if out_of_time:
                break
    finally:
        progress.close()
    elapsed = time.time() - t0
    if is_main:
        _plot_curve(log_path, run / "curve.png")
    summary = {
        "run": str(run),
        "model": cfg.model,
        "step": step,
        "steps_this_call": step - start_step,
        "elapsed_s": round(elapsed, 1),
        "train_seconds": round(prior_seconds + elapsed, 1),
        "steps_per_s": round((step - start_step) / elapsed, 3) if elapsed > 0 else None,
        "best_val_psnr": best if best > -math.inf else None,
        "input_psnr": input_psnr,
        **last_val,
    }
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(model=model, summary=summary)


def _host_batch(source, cfg: TrainConfig, step: int, rank: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """A batch of a source read from disk (real pairs, CIFAR-10), copied to the training device."""
    b = source.train_batch(step, cfg.batch_size, cfg.patch, seed=cfg.seed, rank=rank)
    return b.blur.to(device, non_blocking=True), b.sharp.to(device, non_blocking=True)


def _input_psnr(source) -> float:
    vals = [psnr(b.blur, b.sharp) for b in source.val_batches(16)]
    return float(torch.cat(vals).mean())


def _plot_curve(log_path: Path, png: Path) -> None:
    """Training loss and validation PSNR per step, for a person to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    if not rows:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    tr = [r for r in rows if "loss" in r]
    a1.plot([r["step"] for r in tr], [r["loss"] for r in tr])
    a1.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    va = [r for r in rows if "val_psnr" in r]
    if va:
        a2.plot([r["step"] for r in va], [r["val_psnr"] for r in va], marker="o", label="model")
        a2.axhline(va[0]["input_psnr"], color="gray", ls="--", label="blurred input")
        a2.legend()
    a2.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class _Progress:
    """A rich progress bar with step, loss, validation PSNR, steps/s and ETA (or nothing when quiet)."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
            TextColumn("{task.fields[rate]} steps/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=total, completed=start, loss="-", val="-", rate="-")
        self.t0, self.s0 = time.time(), start

    def update(self, step: int, loss: float | None, val: float | None) -> None:
        if self.bar is None:
            return
        rate = (step - self.s0) / max(1e-9, time.time() - self.t0)
        fields = {"loss": f"{loss:.4g}"} if loss is not None else {}
        self.bar.update(self.task, completed=step, val=f"{val:.2f} dB" if val is not None else "-",
                        rate=f"{rate:.2f}", **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
