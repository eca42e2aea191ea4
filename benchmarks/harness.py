"""What every benchmark here shares: thread and backend settings, sizes, timing, FLOP and memory counts.

Each benchmark times one callable through :func:`measure` and so stores in ``benchmark.extra_info`` the
work one call does (frames, megapixels, counted GFLOP), its setting (device, precision, batch, threads),
the peak memory of one call and, once timed, its rates (frames/s, MP/s, GFLOP/s).
``benchmarks/report.py`` turns the saved JSON into the markdown report.
"""

from __future__ import annotations

import copy
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deblur_core.models import list_models

__all__ = [
    "CUDA", "MODELS_720P_CPU", "THREADS", "FULL", "QUICK", "Sizes", "autocast", "count_gflop", "device_params",
    "machine_name",
    "measure", "model_list", "peak_memory_mb", "precision_params", "randomise", "synchronize",
]

# All the machine's cores for a real run; OMP_NUM_THREADS overrides (smoke runs beside other work use 1).
THREADS = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
torch.set_num_threads(THREADS)

CUDA = torch.cuda.is_available()
if CUDA:
    # fp32 means IEEE fp32 on the GPU too, so "% of the fp32 matmul peak" compares like with like;
    # the fast reduced-precision paths are the fp16/bf16 autocast ones.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # input shapes are fixed within a benchmark: autotune once

# torch.compile keeps its kernels here, so --compile pays its 12-27 s per model once per machine
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".benchmarks" /
                                                     "inductor-cache"))

# the variants benchmarked at 1280x720 on a CPU by default: the heavy ones take 10-80 s a frame there
MODELS_720P_CPU = ("srn", "srn-nolstm", "nafnet", "resunet1")

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Sizes:
    """Resolutions and amounts of work: the real ones, or tiny ones for a smoke run (``--quick``)."""

    small: tuple[int, int]  # (H, W) of the sweep over every variant: "256x256"
    large: tuple[int, int]  # (H, W) of the video-frame benchmarks: "1280x720"
    small_batches: tuple[int, ...]  # batch sizes of the sweep at the small size
    e2e_frames: int  # frames in the folder of the end-to-end benchmark
    e2e_batch: int  # batch size of the end-to-end run and of its model-only twin
    optimized_batch: int  # frames per batch on the optimized path (the naive path runs them one by one)
    train_patch: int  # square training crop
    train_batch: int  # crops per training step
    matmul_cpu: int  # square matmul size of the machine-ceiling benchmark on the CPU ...
    matmul_cuda: int  # ... and on the GPU
    seconds: float  # time budget of one benchmark: rounds = budget / (duration of one call) ...
    min_rounds: int  # ... within these bounds
    max_rounds: int


FULL = Sizes(small=(256, 256), large=(720, 1280), small_batches=(1, 4), e2e_frames=8, e2e_batch=1,
             optimized_batch=2, train_patch=256, train_batch=4, matmul_cpu=2048, matmul_cuda=8192, seconds=8.0,
             min_rounds=3, max_rounds=50)
QUICK = Sizes(small=(64, 64), large=(96, 160), small_batches=(1, 4), e2e_frames=3, e2e_batch=1,
              optimized_batch=2, train_patch=64, train_batch=2, matmul_cpu=256, matmul_cuda=1024, seconds=0.2,
              min_rounds=1, max_rounds=3)


def model_list(spec: str) -> list[str]:
    """``all`` or comma-separated registry names, checked."""
    if spec == "all":
        return list_models()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        raise pytest.UsageError(f"unknown model(s) {unknown}; available: {', '.join(list_models())}")
    return names


_NO_GPU = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")


def device_params() -> list:
    """``cpu`` always; ``cuda`` skipped, with the reason shown, where there is no GPU."""
    return ["cpu", pytest.param("cuda", marks=_NO_GPU)]


def precision_params() -> list:
    """(device, precision) pairs: fp32 only on the CPU (bf16 autocast ran ~140x slower than fp32 on a CPU
    without native bf16, so it is never benchmarked there); fp32, fp16 and bf16 autocast on CUDA."""
    no_bf16 = pytest.mark.skipif(CUDA and not torch.cuda.is_bf16_supported(), reason="GPU without bf16")
    return [
        pytest.param("cpu", "fp32", id="cpu-fp32"),
        pytest.param("cuda", "fp32", id="cuda-fp32", marks=_NO_GPU),
        pytest.param("cuda", "fp16", id="cuda-fp16", marks=_NO_GPU),
        pytest.param("cuda", "bf16", id="cuda-bf16", marks=[_NO_GPU, no_bf16]),
    ]


def autocast(device: str, precision: str):
    dtype = _PRECISIONS[precision]
    return torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the zero-initialised output layers small random weights: an untrained network here is the
    identity, and a comparison of two paths must see the whole network compute."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_((torch.randn(p.shape, generator=g) * 0.01).to(p.device, p.dtype))
    return model


def count_gflop(model: nn.Module, shape: tuple[int, ...], *, backward: bool = False) -> float:
    """FLOPs (a multiply-add counts 2) of one forward, or forward + backward, pass on ``shape``, in GFLOP.

    Counted on the meta device (shapes only, no arithmetic) like ``deblur_core.models.gflops_per_megapixel``,
    but at the benchmark's own shape, so padding to the network's stride is included.
    """
    meta = copy.deepcopy(model).to("meta").train(backward)
    x = torch.empty(shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(backward):
        out = meta(x)
        if backward:
            outs = out if isinstance(out, list) else [out]
            sum(o.sum() for o in outs).backward()
    return counter.get_total_flops() / 1e9


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_memory_mb(device: str, fn: Callable[[], Any]) -> tuple[float, float]:
    """Memory of one call of ``fn`` at its peak, in MiB: (rise over the memory held before the call, the
    process's total at the peak).

    On CUDA, from ``max_memory_allocated``. On the CPU, from the process's resident high-water mark
    (VmHWM, reset through /proc/self/clear_refs; tracemalloc does not see torch's allocations); the rise is
    a lower bound there, as memory the allocator kept from earlier calls is already resident.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return (peak - base) / 2**20, peak / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass  # then the rise is measured over the process's earlier peak: a lower bound still
    base = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    return max(0, peak - base) / 1024, peak / 1024


def measure(benchmark, fn: Callable[[], Any], sizes: Sizes, *, device: str, frames: int, megapixels: float,
            gflop: float, **info: Any) -> Any:
    """Time ``fn`` (one call = ``frames`` frames, ``megapixels`` MP, ``gflop`` counted GFLOP) and record it.

    One untimed call first warms up (allocator, oneDNN primitives, cudnn autotuning, compilation) and
    measures the peak memory; its duration sets the number of rounds so that a benchmark takes about
    ``sizes.seconds``. ``fn`` must synchronize CUDA itself. Returns the last call's result.
    """
    start = time.perf_counter()
    peak_mb, total_mb = peak_memory_mb(device, fn)
    first_s = time.perf_counter() - start
    rounds = int(min(sizes.max_rounds, max(sizes.min_rounds, sizes.seconds // max(first_s, 1e-6))))
    benchmark.extra_info.update(device=device, frames=frames, megapixels=round(megapixels, 6),
                                gflop=round(gflop, 3), peak_memory_mb=round(peak_mb, 1),
                                peak_total_memory_mb=round(total_mb, 1), threads=THREADS,
                                first_call_s=round(first_s, 4), **info)
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(frames_per_s=frames / median, megapixels_per_s=megapixels / median,
                                    gflop_per_s=gflop / median)
    return result


def machine_name() -> str:
    """A file-name-safe name for this machine: CPU model and core count, and the GPU if there is one."""
    cpu = os.uname().machine
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1] for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpu = re.sub(r"\((r|tm)\)|\bprocessor\b|\b\d+-core\b", "", cpu, flags=re.I)
    name = f"{cpu}-{len(os.sched_getaffinity(0))}c"
    if CUDA:
        name += "-" + torch.cuda.get_device_name(0)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
