"""What every benchmark here shares: thread and backend settings, sizes, timing, FLOP and memory counts.

Each benchmark times one callable through :func:`measure` and so stores in ``benchmark.extra_info`` the
work one call does (frames, megapixels, counted GFLOP), its setting (device, precision, batch, threads),
the peak memory of one call and, once timed, its rates (frames/s, MP/s, GFLOP/s).
``benchmarks/report.py`` turns the saved JSON into the markdown report.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from deblur_core.checkpoint import pretrained_path
from deblur_core.models import list_models
from deblur_core.models.profile import count_gflop
from deblur_core.precision import DTYPES, autocast as _autocast, inference_dtype, precision_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import randomise  # noqa: E402  the tests' helper: one way to give a network random weights

__all__ = [
    "ACCELERATOR", "CPU_AUTO_BF16", "CPU_BF16", "CUDA", "FULL", "GPU_PROFILE", "MODELS_720P_CPU", "NAIVE_MODEL", "QUICK", "THREADS",
    "Sizes",
    "autocast", "count_gflop", "cudnn_autotune", "device_params", "gpu_machine_name", "gpu_profile",
    "gpu_profile_params", "hardware", "machine_name", "measure", "model_list", "peak_memory_mb", "peak_params",
    "photo_batch", "precision_params", "profile_precisions", "psnr_db", "randomise", "reduced_precision",
    "sizes_for", "synchronize",
]

# All the machine's cores for a real run; OMP_NUM_THREADS overrides (smoke runs beside other work use 1).
THREADS = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
torch.set_num_threads(THREADS)

CUDA = torch.cuda.is_available()
ACCELERATOR = "cuda" if CUDA else "cpu"  # the device the GPU profile (--profile gpu) runs on
if CUDA:
    # fp32 means IEEE fp32 on the GPU too, so "% of the fp32 peak" compares like with like;
    # the fast reduced-precision paths are the fp16/bf16 autocast ones.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # input shapes are fixed within a benchmark: autotune once

# torch.compile keeps its kernels here, so --compile pays its 12-27 s per model once per machine
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".benchmarks" /
                                                     "inductor-cache"))

# the variants benchmarked at 1280x720 on a CPU by default: the heavy ones take 10-80 s a frame there
MODELS_720P_CPU = ("srn", "srn-nolstm", "nafnet", "nafnet-cpu", "resunet1")
NAIVE_MODEL = "srn"  # the variant of the naive/optimized paths and of the acceptance checks

# The CPU instruction sets that decide what a CPU figure means (see hardware()); bf16 runs on a CPU only
# where it has native bf16 instructions: without them bf16 ran ~140x slower than fp32.
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


def _cpuinfo(key: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == key), "")
    except OSError:
        return ""


def _cpu_has_bf16() -> bool:
    native = {"avx512_bf16", "amx_bf16"} & set(_cpuinfo("flags").split())
    return bool(native) and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


CPU_BF16 = _cpu_has_bf16()
# what deblur_core runs at --precision auto on this CPU: bf16 only with AMX (see inference_dtype)
CPU_AUTO_BF16 = inference_dtype("auto", "cpu") is not None


@dataclass(frozen=True)
class Sizes:
    """Resolutions and amounts of work: the real ones, or tiny ones for a smoke run (``--quick``)."""

    small: tuple[int, int]  # (H, W) of the sweep over every variant: "256x256"
    large: tuple[int, int]  # (H, W) of the video-frame benchmarks: "1280x720"
    small_batches: tuple[int, ...]  # batch sizes of the sweep at the small size
    large_batch: int  # batch size of the sweep at the large size
    e2e_frames: int  # frames in the folder of the end-to-end benchmark
    e2e_batch: int  # batch size of the end-to-end run and of its model-only twin
    optimized_batch: int  # frames per batch on the optimized path (the naive path runs them one by one)
    train_patch: int  # square training crop
    train_batch: int  # crops per training step
    matmul_cpu: tuple[int, ...]  # square matmul sizes of the machine-ceiling benchmark on the CPU ...
    matmul_cuda: tuple[int, ...]  # ... and on the GPU; the peak is the best of them and of the convolutions
    conv_cpu: tuple[tuple[int, int, int], ...]  # (channels, side, batch) of the 3x3 convolutions of the ceiling ...
    conv_cuda: tuple[tuple[int, int, int], ...]  # ... on the GPU
    seconds: float  # time budget of one benchmark: rounds = budget / (duration of one call) ...
    min_rounds: int  # ... within these bounds
    max_rounds: int
    warmup: int  # untimed calls before the one that measures memory (at least 1 on CUDA: cudnn autotuning)


FULL = Sizes(small=(256, 256), large=(720, 1280), small_batches=(1, 4), large_batch=1, e2e_frames=8, e2e_batch=1,
             optimized_batch=2, train_patch=256, train_batch=4, matmul_cpu=(1024, 2048, 4096),
             matmul_cuda=(4096, 8192, 16384), conv_cpu=((128, 128, 1), (256, 64, 1)),
             conv_cuda=((256, 128, 32), (512, 64, 32)), seconds=8.0, min_rounds=3, max_rounds=50, warmup=0)
QUICK = Sizes(small=(64, 64), large=(96, 160), small_batches=(1, 4), large_batch=1, e2e_frames=3, e2e_batch=1,
              optimized_batch=2, train_patch=64, train_batch=2, matmul_cpu=(128, 256), matmul_cuda=(512, 1024),
              conv_cpu=((16, 32, 1),), conv_cuda=((64, 64, 4),),
              seconds=0.2, min_rounds=1, max_rounds=3, warmup=1)
# --profile gpu: the shipped variants at 1280x720 in batches of 4 (deblur-cli batch's default), about half a
# second of rounds a case, so the whole profile fits in 2 minutes on an H100; the GPU's matmul peak from
# 4096² and 8192² (16384² added at most 2.4% in the first H100 run, for 1.2 s in fp32), and one convolution;
# `batch` end to end on 96 frames (24 batches): on 8 (two batches) the H200 spent two thirds of the run filling
# the pipeline (the first batch read before the network starts) and draining it (the last one written after)
GPU_PROFILE = Sizes(small=(256, 256), large=(720, 1280), small_batches=(), large_batch=4, e2e_frames=96,
                    e2e_batch=4, optimized_batch=8, train_patch=256, train_batch=4, matmul_cpu=(1024, 2048),
                    matmul_cuda=(4096, 8192), conv_cpu=((128, 128, 1),), conv_cuda=((256, 128, 32),), seconds=0.5,
                    min_rounds=3, max_rounds=200, warmup=1)


def model_list(spec: str) -> list[str]:
    """``all``, ``shipped`` (the variants whose trained weights ship) or comma-separated registry names, checked."""
    if spec == "all":
        return list_models()
    if spec == "shipped":
        return [name for name in list_models() if pretrained_path(name) is not None]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        raise pytest.UsageError(f"unknown model(s) {unknown}; available: {', '.join(list_models())}")
    return names


_NO_GPU = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")
_MARKS = {
    ("cpu", "fp32"): [],
    ("cpu", "bf16"): [pytest.mark.skipif(not CPU_BF16, reason="no native bf16 on this CPU (avx512_bf16/amx_bf16)")],
    ("cuda", "fp32"): [_NO_GPU],
    ("cuda", "fp16"): [_NO_GPU],
    ("cuda", "bf16"): [_NO_GPU, pytest.mark.skipif(CUDA and not torch.cuda.is_bf16_supported(),
                                                   reason="GPU without bf16")],
}


def device_params() -> list:
    """``cpu`` always; ``cuda`` skipped, with the reason shown, where there is no GPU."""
    return ["cpu", pytest.param("cuda", marks=_NO_GPU)]


def _setting(device: str, precision: str):
    return pytest.param(device, precision, id=f"{device}-{precision}", marks=_MARKS[device, precision])


def precision_params() -> list:
    """(device, precision) pairs of the model benchmarks: fp32 on the CPU, and bf16 where deblur_core runs
    it at ``--precision auto`` (a CPU with AMX; skipped elsewhere); fp32, fp16 and bf16 autocast on CUDA."""
    auto_bf16 = pytest.param("cpu", "bf16", id="cpu-bf16", marks=[pytest.mark.skipif(
        not CPU_AUTO_BF16, reason="no AMX: deblur_core runs fp32 on this CPU at --precision auto")])
    return [_setting(*s) if s != ("cpu", "bf16") else auto_bf16 for s in _MARKS]


def peak_params() -> list:
    """(device, precision) pairs of the peak (matmul and convolution): also bf16 on a CPU with native bf16."""
    return [_setting(*s) for s in _MARKS]


def reduced_precision(device: str) -> str | None:
    """The fast precision of ``device``: on CUDA what deblur_core runs at ``--precision auto`` (bf16 where it
    is native, else fp16); on a CPU bf16 where it has native bf16 instructions (AMX or AVX512-BF16), else
    None."""
    if device == "cuda":
        return precision_name(inference_dtype("auto", device))
    return "bf16" if CPU_BF16 else None


def profile_precisions(device: str) -> list[str]:
    """The precisions the GPU profile runs its models in: fp32 and the reduced one."""
    return ["fp32"] + [p for p in [reduced_precision(device)] if p]


def gpu_profile_params() -> list:
    """(device, precision) pairs of the model benchmarks in the GPU profile: the accelerator only."""
    return [_setting(ACCELERATOR, p) for p in profile_precisions(ACCELERATOR)]


def gpu_profile(config: pytest.Config) -> bool:
    return config.getoption("--profile") == "gpu"


def sizes_for(config: pytest.Config) -> Sizes:
    """The sizes of this run: tiny with ``--quick``, else the GPU profile's or the full run's."""
    if config.getoption("--quick"):
        return QUICK
    return GPU_PROFILE if gpu_profile(config) else FULL


def autocast(device: str, precision: str):
    """Autocast to the dtype of ``precision`` (``fp32``: none) on ``device``."""
    return _autocast(device, DTYPES[precision])


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def cudnn_autotune(enabled: bool):
    """cuDNN's per-shape algorithm search on or off inside the block (it is on for the whole suite)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# real photographs bundled with scikit-image: what the networks see matters for the reduced-precision PSNR
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


@functools.cache
def _photos(n: int, hw: tuple[int, int]) -> torch.Tensor:
    import skimage.data

    frames = []
    for i in range(n):
        photo = torch.from_numpy(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()).permute(2, 0, 1)[None].float()
        frames.append(torch.nn.functional.interpolate(photo / 255, size=hw, mode="bilinear", antialias=True))
    return torch.cat(frames).clamp_(0, 1)


def photo_batch(n: int, hw: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """``n`` photographs resized to ``hw`` (H, W), (n, 3, H, W) float in [0, 1], channels_last on ``device``."""
    return _photos(n, hw).to(device).contiguous(memory_format=torch.channels_last)


def psnr_db(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of ``x`` against ``reference`` (both clamped to [0, 1]) from the MSE of the whole batch, in dB."""
    mse = (x.float().clamp(0, 1) - reference.float().clamp(0, 1)).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


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

    ``sizes.warmup`` untimed calls (at least one on CUDA) warm up (allocator, oneDNN primitives, cudnn
    autotuning, compilation); then one more untimed call measures the peak memory, and its duration sets
    the number of rounds so that a benchmark takes about ``sizes.seconds``. ``fn`` must synchronize CUDA
    itself. Returns the last call's result.
    """
    start = time.perf_counter()
    for _ in range(sizes.warmup if device == "cpu" else max(1, sizes.warmup)):
        fn()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    peak_mb, total_mb = peak_memory_mb(device, fn)
    call_s = time.perf_counter() - start
    rounds = int(min(sizes.max_rounds, max(sizes.min_rounds, sizes.seconds // max(call_s, 1e-6))))
    benchmark.extra_info.update(device=device, frames=frames, megapixels=round(megapixels, 6),
                                gflop=round(gflop, 3), peak_memory_mb=round(peak_mb, 1),
                                peak_total_memory_mb=round(total_mb, 1), threads=THREADS,
                                warmup_s=round(warmup_s, 4), first_call_s=round(call_s, 4), **info)
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(frames_per_s=frames / median, megapixels_per_s=megapixels / median,
                                    gflop_per_s=gflop / median)
    return result


def hardware() -> dict[str, Any]:
    """What a figure's meaning depends on: the CPU model and its instruction sets, and the GPU."""
    flags = set(_cpuinfo("flags").split())
    info: dict[str, Any] = {
        "cpu": _cpuinfo("model name") or os.uname().machine,
        "cpu_flags": [f for f in _CPU_FLAGS if f in flags],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked: AVX2, AVX512...
        "cpu_bf16": CPU_BF16,
        "cores": len(os.sched_getaffinity(0)),
        "gpu": None,
    }
    if CUDA:
        major, minor = torch.cuda.get_device_capability(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_capability=f"{major}.{minor}", cuda=torch.version.cuda,
                    gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                    gpu_bf16=torch.cuda.is_bf16_supported())
    return info


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def gpu_machine_name(device_name: str) -> str:
    """``torch.cuda.get_device_name`` without the memory size and type: ``NVIDIA H100 80GB HBM3`` ->
    ``nvidia-h100``."""
    return _slug(re.sub(r"\b\d+\s*GB\b|\bHBM\w*|\bGDDR\w*", "", device_name, flags=re.I))


def machine_name() -> str:
    """A file-name-safe name for this machine: the GPU's if there is one (``nvidia-h100``), else the CPU
    model and core count (``amd-epyc-2c``)."""
    if CUDA:
        return gpu_machine_name(torch.cuda.get_device_name(0))
    cpu = _cpuinfo("model name") or os.uname().machine
    cpu = re.sub(r"\((r|tm)\)|\bprocessor\b|\b\d+-core\b", "", cpu, flags=re.I)
    return _slug(f"{cpu}-{len(os.sched_getaffinity(0))}c")
