"""Inference throughput: the machine's ceiling, every variant, and the naive path against the optimized one.

Groups (one table each in the report):

* ``peak``: square matmuls, the machine's own fp32 ceiling (and fp16/bf16 tensor cores on CUDA); every
  other figure is also reported as a percentage of the matching one.
* ``inference-<H>x<W>``: model only, channels_last + ``torch.inference_mode`` (+ autocast on CUDA), per
  variant x device x precision x batch size, at 256x256 for every variant and at 1280x720 for a
  configurable set (``--models``, ``--models-720p``).
* ``naive-vs-optimized``: ``srn`` at 1280x720, the naive path (eager, NCHW, fp32, one frame at a time,
  autograd on) against the optimized one (channels_last, inference_mode, batches; fp16 autocast on CUDA;
  ``--compile`` adds torch.compile). ``test_optimized_matches_naive`` checks that they agree to 1e-3.
"""

from __future__ import annotations

import pytest
import torch

from deblur_core.inference import load_deblurrer
from deblur_core.models import get_model
from harness import (CUDA, FULL, MODELS_720P_CPU, QUICK, autocast, count_gflop, device_params, measure,
                     model_list, precision_params, randomise, synchronize)

NAIVE_MODEL = "srn"
TOLERANCE = 1e-3  # largest absolute difference allowed between the optimized and the naive output


def _label(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The sweep of ``test_model_throughput``: every variant at the small size with each small batch size,
    the chosen variants at the large size with batch 1, on each (device, precision)."""
    if metafunc.function.__name__ != "test_model_throughput":
        return
    config = metafunc.config
    s = QUICK if config.getoption("--quick") else FULL
    small = model_list(config.getoption("--models"))
    spec = config.getoption("--models-720p")
    params = []
    for p in precision_params():
        device, precision = p.values
        if spec == "auto":
            large = model_list("all") if device == "cuda" else list(MODELS_720P_CPU)
        else:
            large = model_list(spec)
        runs = [(name, s.small, b) for name in small for b in s.small_batches] + [(name, s.large, 1) for name in large]
        for name, hw, batch in runs:
            params.append(pytest.param(name, device, precision, hw, batch, marks=p.marks,
                                       id=f"{name}-{device}-{precision}-{_label(hw)}-b{batch}"))
    metafunc.parametrize(("name", "device", "precision", "hw", "batch"), params)


@pytest.mark.parametrize(("device", "precision"), precision_params())
def test_matmul_peak(benchmark, sizes, device, precision):
    """The machine's ceiling: GFLOP/s of one square matmul (fp16/bf16 as such, for the tensor cores)."""
    benchmark.group = "peak"
    n = sizes.matmul_cuda if device == "cuda" else sizes.matmul_cpu
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)

    def run():
        c = a @ b
        synchronize(device)
        return c

    measure(benchmark, run, sizes, device=device, frames=0, megapixels=0.0, gflop=2 * n**3 / 1e9, kind="peak",
            precision=precision, matmul=n)


def test_model_throughput(benchmark, sizes, name, device, precision, hw, batch):
    """Model-only frames/s of one variant, the way ``deblur_core.inference`` runs it."""
    benchmark.group = f"inference-{_label(hw)}"
    torch.manual_seed(0)
    deb = load_deblurrer(name, device=device)  # channels_last
    model = randomise(deb.model)
    x = torch.rand(batch, 3, *hw, device=device).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), autocast(device, precision):
            y = model(x)
        synchronize(device)
        return y

    h, w = hw
    measure(benchmark, run, sizes, device=device, frames=batch, megapixels=batch * h * w / 1e6,
            gflop=count_gflop(model, tuple(x.shape)), kind="inference", model=name, precision=precision,
            resolution=_label(hw), batch=batch)


def _naive_model(device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomise(get_model(NAIVE_MODEL)).eval().to(device)  # NCHW, as built


def _optimized_model(device: str, compiled: bool) -> torch.nn.Module:
    model = _naive_model(device).to(memory_format=torch.channels_last)
    return torch.compile(model, dynamic=False) if compiled else model


def _frames(sizes, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(sizes.optimized_batch, 3, *sizes.large, generator=g).to(device)


def _run_naive(model, frames: torch.Tensor, device: str) -> torch.Tensor:
    # eager, NCHW, fp32, autograd on (no inference_mode / no_grad), one frame at a time
    outs = [model(frame[None]) for frame in frames]
    synchronize(device)
    return torch.cat(outs)


def _run_optimized(model, frames: torch.Tensor, device: str) -> torch.Tensor:
    # the whole batch at once, channels_last, no autograd; fp16 autocast on CUDA (as deblur_core.inference)
    precision = "fp16" if device == "cuda" else "fp32"
    with torch.inference_mode(), autocast(device, precision):
        y = model(frames.contiguous(memory_format=torch.channels_last))
    synchronize(device)
    return y.float()


@pytest.mark.parametrize("path", ["naive", "optimized", "compiled"])
@pytest.mark.parametrize("device", device_params())
def test_naive_vs_optimized(benchmark, sizes, use_compile, device, path):
    """``srn`` at 1280x720 on the naive path and the optimized one; the report shows the speed-up."""
    if path == "compiled" and not use_compile:
        pytest.skip("torch.compile path not asked for (pass --compile)")
    benchmark.group = "naive-vs-optimized"
    frames = _frames(sizes, device)
    if path == "naive":
        model = _naive_model(device)
        run = lambda: _run_naive(model, frames, device)  # noqa: E731
    else:
        model = _optimized_model(device, compiled=path == "compiled")
        run = lambda: _run_optimized(model, frames, device)  # noqa: E731
        if path == "compiled":
            run()  # compiles (or loads the cached kernels), so the rounds are sized on the compiled speed
    b, _, h, w = frames.shape
    measure(benchmark, run, sizes, device=device, frames=b, megapixels=b * h * w / 1e6,
            gflop=count_gflop(_naive_model("cpu"), (b, 3, h, w)), kind="path", path=path, model=NAIVE_MODEL,
            precision="fp16" if device == "cuda" and path != "naive" else "fp32", resolution=_label((h, w)),
            batch=1 if path == "naive" else b)


@pytest.mark.parametrize("device", device_params())
def test_optimized_matches_naive(sizes, use_compile, device):
    """Not a benchmark: the optimized path (fp32, also compiled with --compile) computes what the naive one
    does, to 1e-3, on a network with random weights (an untrained one is the identity)."""
    frames = _frames(sizes, device)
    with torch.no_grad():
        reference = _run_naive(_naive_model(device), frames, device)
    for compiled in [False] + ([True] if use_compile else []):
        with torch.inference_mode():
            out = _optimized_model(device, compiled)(frames.contiguous(memory_format=torch.channels_last))
        synchronize(device)
        assert not torch.equal(reference, frames), "the randomised network should change its input"
        diff = (out.float() - reference).abs().max().item()
        assert diff <= TOLERANCE, f"optimized{' (compiled)' if compiled else ''} output differs by {diff:.2e}"


@pytest.mark.parametrize("precision", [
    pytest.param("fp16", marks=pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")),
    pytest.param("bf16", marks=pytest.mark.skipif(not (CUDA and torch.cuda.is_bf16_supported()),
                                                  reason="no CUDA GPU with bf16 on this machine")),
])
def test_autocast_close_to_fp32_on_cuda(sizes, precision):
    """Not a benchmark: the reduced-precision path on CUDA stays close to fp32 (looser than 1e-3)."""
    frames = _frames(sizes, "cuda")
    model = _optimized_model("cuda", compiled=False)
    with torch.inference_mode():
        reference = model(frames)
        with autocast("cuda", precision):
            out = model(frames).float()
    diff = (out - reference).abs().max().item()
    assert diff <= 2e-2, f"{precision} autocast output differs from fp32 by {diff:.2e}"
