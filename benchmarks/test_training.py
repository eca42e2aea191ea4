"""Training throughput (samples/s) of ``srn`` on 256x256 patches: one optimizer step as ``train()`` takes it;
and the cost of making a batch of synthetic training data, per blur kind, at the shipped ``srn``'s recipe
(16 crops of 64x64), beside one optimizer step on such a batch: the data must not hold the network back.

A step is forward + multiscale loss + backward + gradient clipping + Adam step, channels_last on the CPU
and fp16 autocast with a gradient scaler on CUDA, as in ``deblur_core.train``. The batches are made before
timing (synthetic blur is the data pipeline's cost, not the network's). GFLOP/s counts the forward and
backward passes.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from deblur_core.models import get_model
from harness import count_gflop, device_params, measure, synchronize

try:
    from deblur_core.blur import BLUR_KINDS
    from deblur_core.data import open_dataset
    from deblur_core.data.batches import plan_loader
    from deblur_core.train import GPU_PLAN_WORKERS, TrainConfig, train
    from deblur_core.losses import multiscale_loss
except ImportError as err:  # kornia (or a codec) missing, as on the GPU machine unless their wheels are carried
    pytest.skip(f"deblur_core's training code cannot be imported here: {err}", allow_module_level=True)

MODEL = "srn"
GPU_RECIPE = (32, 256)  # (crops, patch) of scripts/gpu_train.sh's training batches
BATCHES = 4  # distinct batches cycled through the rounds
# test_gpu_recipe_loop: one part of gpu_train.sh's recipe changed at a time
LOOP_VARIANTS = {"as-trained": {}, "eager": {"compile": False}, "jpeg": {"jpeg": 0.2},
                 "plans-in-process": {"workers": 0}, "mix-blur": {"blur": "mix"}}
PLANS = 24  # plans a call of test_gpu_recipe_plans takes: as many as its loader draws ahead (6 workers x 4)
RECIPE = (16, 64)  # (crops, patch) of the shipped srn's training batches


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("at_recipe", [False, True], ids=["bench-size", "srn-recipe"])
def test_train_step(benchmark, sizes, device, at_recipe):
    benchmark.group = "training"
    b, patch = RECIPE if at_recipe else (sizes.train_batch, sizes.train_patch)
    make = open_dataset("default", blur="gaussian", val_count=1).device_batches(b, patch, seed=0)
    fmt = torch.channels_last if device == "cpu" else torch.contiguous_format
    data = [(blur.to(device).contiguous(memory_format=fmt), sharp.to(device))
            for blur, sharp in map(make, range(BATCHES))]

    torch.manual_seed(0)
    model = get_model(MODEL).to(device).train()
    gflop = count_gflop(model, (b, 3, patch, patch), backward=True)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    step = iter(range(10**9))

    def run():
        blur, sharp = data[next(step) % BATCHES]
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = multiscale_loss(model(blur), sharp)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        synchronize(device)
        return loss.item()

    loss = measure(benchmark, run, sizes, device=device, frames=b, megapixels=b * patch * patch / 1e6, gflop=gflop,
                   kind="training", model=MODEL, precision="fp16" if amp else "fp32", resolution=f"{patch}x{patch}",
                   batch=b)
    assert torch.isfinite(torch.tensor(loss))
    if "frames_per_s" in benchmark.extra_info:
        benchmark.extra_info["samples_per_s"] = benchmark.extra_info["frames_per_s"]


@pytest.mark.parametrize("blur", [*BLUR_KINDS, "mix"])
def test_train_batch_synthesis(benchmark, sizes, blur):
    """What ``train()`` pays for each batch before the network runs: crops cut from the bundled photos,
    blurred on the fly (one kernel per crop), quantised to 8 bits, by the source's ``device_batches`` as
    training makes them on a CPU (plans drawn in this process). Always on the CPU."""
    benchmark.group = "training"
    b, patch = RECIPE
    make = open_dataset("default", blur=blur, val_count=1).device_batches(b, patch, seed=0)
    step = iter(range(10**9))
    blurred, sharp = measure(benchmark, lambda: make(next(step)), sizes, device="cpu", frames=b,
                             megapixels=b * patch * patch / 1e6, gflop=0.0, kind="data", blur=blur,
                             resolution=f"{patch}x{patch}", batch=b)
    assert blurred.shape == (b, 3, patch, patch) and not torch.equal(blurred, sharp)


def _gpu_recipe(sizes) -> tuple[int, int]:
    """(crops, patch) of gpu_train.sh's batches; the smoke run's own small ones under ``--quick``."""
    return GPU_RECIPE if sizes.train_patch >= GPU_RECIPE[1] else (sizes.train_batch, sizes.train_patch)


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("blur", ["mix", "realistic"])
def test_gpu_recipe_batch(benchmark, sizes, device, blur):
    """The batch ``scripts/gpu_train.sh`` trains on (32 crops of 256x256, noise, saturated highlights, no JPEG,
    rotations), made on the training device from a plan drawn beforehand, as the DataLoader workers draw
    them: the device's share of the data pipeline. Its first GPU window trained at 180-280 crops/s with the
    realistic synthesis whichever the network (``srn`` ran 670 a second on the mix), so this case says whether
    making the batch is what bounds it. ``plan_s``: one plan drawn in this process, the workers' share."""
    benchmark.group = "training"
    b, patch = _gpu_recipe(sizes)
    make = open_dataset("default", blur=blur, val_count=1).device_batches(
        b, patch, seed=0, device=device, noise=0.01, saturate=0.1, rotate=True)
    t = time.perf_counter()
    plans = [make.planner(step) for step in range(BATCHES)]
    plan_s = (time.perf_counter() - t) / BATCHES
    step = iter(range(10**9))

    def run():
        out = make.make(plans[next(step) % BATCHES])
        synchronize(device)
        return out

    blurred, sharp = measure(benchmark, run, sizes, device=device, frames=b, megapixels=b * patch * patch / 1e6,
                             gflop=0.0, kind="data", blur=blur, resolution=f"{patch}x{patch}", batch=b)
    benchmark.extra_info["plan_s"] = round(plan_s, 4)
    assert blurred.shape == sharp.shape == (b, 3, patch, patch) and not torch.equal(blurred, sharp)


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
def test_gpu_recipe_plans(benchmark, sizes, device):
    """Realistic plans of gpu_train.sh's batches as the training loop receives them, drawn ahead by its
    DataLoader workers (``GPU_PLAN_WORKERS`` beside a GPU, 2 on a CPU): the rate the workers can feed.
    Each call takes ``PLANS`` plans from one running loader (the warm-up call drains what it drew ahead).
    The H200 fed 100-103 a second, whether the plans travelled as tensors or as numpy arrays, where
    training ran at 5.5-8 steps/s: the plans do not bound it."""
    benchmark.group = "training"
    b, patch = _gpu_recipe(sizes)
    make = open_dataset("default", blur="realistic", val_count=1).device_batches(
        b, patch, seed=0, noise=0.01, saturate=0.1, rotate=True)
    workers = GPU_PLAN_WORKERS if device == "cuda" else 2
    plans = plan_loader(make.planner, 0, 10**9, workers)

    def run():
        return [next(plans) for _ in range(PLANS)]

    try:
        drawn = measure(benchmark, run, sizes, device=device, frames=PLANS, megapixels=0.0, gflop=0.0, kind="plans",
                        blur="realistic", batch=b, workers=workers)
    finally:
        plans.close()  # stops the workers
    if "frames_per_s" in benchmark.extra_info:
        benchmark.extra_info["plans_per_s"] = benchmark.extra_info["frames_per_s"]
    assert all(isinstance(p.blur.kernels, torch.Tensor) and p.image.shape == (2 * b,) for p in drawn)


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("model_name", ["srn", "nafnet-cpu"])
def test_gpu_recipe_step(benchmark, sizes, device, model_name):
    """One optimizer step of each network ``scripts/gpu_train.sh`` trains, at its recipe (32 crops of 256x256,
    L1 + 0.1 x FFT loss, AdamW, gradient clipping, channels_last, bf16 autocast on a GPU that has it, as
    ``--precision auto`` trains), on batches made beforehand: the network's share of a training step, beside
    ``test_gpu_recipe_batch``'s data share."""
    benchmark.group = "training"
    b, patch = _gpu_recipe(sizes)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    torch.manual_seed(0)
    model = get_model(model_name).train()
    gflop = count_gflop(model, (b, 3, patch, patch), backward=True)
    model = model.to(device, memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(BATCHES, b, 3, patch, patch, generator=g)
    blur = torch.nn.functional.avg_pool2d(sharp.flatten(0, 1), 5, 1, 2, count_include_pad=False).view_as(sharp)
    data = [(blur[i].to(device).contiguous(memory_format=torch.channels_last), sharp[i].to(device))
            for i in range(BATCHES)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    step = iter(range(10**9))

    def run():
        x, y = data[next(step) % BATCHES]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = multiscale_loss(model(x), y, "l1", 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        synchronize(device)
        return loss.item()

    loss = measure(benchmark, run, sizes, device=device, frames=b, megapixels=b * patch * patch / 1e6, gflop=gflop,
                   kind="training", model=model_name, precision="bf16" if bf16 else "fp32",
                   resolution=f"{patch}x{patch}", batch=b)
    assert torch.isfinite(torch.tensor(loss))


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("variant", list(LOOP_VARIANTS))
def test_gpu_recipe_loop(benchmark, sizes, device, variant, tmp_path):
    """``train()`` itself for a few dozen steps of ``nafnet-cpu`` at gpu_train.sh's recipe (on the bundled
    photos), whole, compiled as gpu_train.sh trains it (CUDA graphs on a GPU): the second H200 window trained at
    147 ms a step where making a batch (21 ms) and an optimizer step (69 ms), timed apart, add to 90. Each
    variant changes one part of the recipe (the eager step; 20% JPEG, whose codec runs on the CPU; plans drawn
    in the training process; the `mix` synthesis), and the first runs under cProfile, whose top functions by own time go into the JSON (``python_top``). ``steps_per_s``:
    the loop's rate over its second half, past start-up and cuDNN autotuning. On a CPU, a toy size."""
    benchmark.group = "training"
    b, patch = _gpu_recipe(sizes) if device == "cuda" else (sizes.train_batch, min(64, sizes.train_patch))
    steps = 60 if device == "cuda" else 12
    recipe = dict(model="nafnet-cpu", data="default", blur="realistic", steps=steps, batch_size=b, patch=patch,
                  lr=1e-3, warmup=10, loss="l1", fft_loss=0.1, optimizer="adamw", weight_decay=1e-4, noise=0.01,
                  saturate=0.1, jpeg=0.0, rotate=True, compile=True, val_every=10**6, val_count=1, val_patch=64,
                  log_every=2, device=device, out=str(tmp_path / "run"))
    cfg = TrainConfig(**{**recipe, **LOOP_VARIANTS[variant]})
    profile = cProfile.Profile() if variant == "as-trained" else None

    def run():
        if profile:
            profile.enable()
        try:
            return train(cfg)
        finally:
            if profile:
                profile.disable()

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in rows if r["step"] >= steps // 2 and "val_psnr" not in r]
    rate = (timed[-1]["step"] - timed[0]["step"]) / max(1e-6, timed[-1]["elapsed_s"] - timed[0]["elapsed_s"])
    benchmark.extra_info.update(device=device, kind="loop", model="nafnet-cpu", variant=variant, batch=b,
                                resolution=f"{patch}x{patch}", frames=steps * b, steps_per_s=round(rate, 3),
                                crops_per_s=round(rate * b, 1), blur=cfg.blur, jpeg=cfg.jpeg, workers=cfg.workers,
                                compiled=cfg.compile)
    if profile:
        stats = pstats.Stats(profile)
        top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # (file, line, fn): own time
        benchmark.extra_info["python_top"] = [
            f"{Path(f).name}:{line}({fn}) own {tt:.2f} s, with callees {ct:.2f} s, {nc} calls"
            for (f, line, fn), (_, nc, tt, ct, _) in top]
    assert rate > 0 and rows[-1]["step"] == steps
