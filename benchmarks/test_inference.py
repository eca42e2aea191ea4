"""Inference throughput: the machine's ceiling, every variant, and the naive path against the optimized one.

Groups (one table each in the report):

* ``peak``: square matmuls of a few sizes and 3x3 convolutions of a few widths, the machine's own ceiling per
  precision (fp32; bf16 on a CPU with native bf16; fp16 and bf16 on CUDA). The report takes the best round of
  the fastest of them as the peak and gives every other figure as a percentage of the one for its device and
  precision. The convolutions are there because a matmul is not the ceiling: on this project's AMD EPYC,
  oneDNN's 3x3 convolution ran 226 GFLOP/s in fp32 where the best matmul ran 191, and networks made of such
  convolutions had shown 103-110% of a matmul-only peak.
* ``inference-<H>x<W>``: model only, channels_last + ``torch.inference_mode`` (+ autocast), per variant x
  device x precision x batch size, at 256x256 for every variant and at 1280x720 for a configurable set
  (``--models``, ``--models-720p``), on photographs. A reduced-precision case records the PSNR of its output
  against the fp32 output of the same variant on the same frames (``psnr_vs_fp32_db``).
* ``naive-vs-optimized``: ``srn`` at 1280x720, the naive path (eager, NCHW, fp32, one frame at a time,
  autograd on, no cuDNN autotuning) against the optimized one (channels_last, inference_mode, batches,
  cuDNN autotuning; bf16 autocast on CUDA, fp16 where the GPU has no bf16; ``--compile`` adds
  torch.compile). Each benchmark checks its output against the naive one (and records its PSNR against it,
  ``psnr_vs_naive_db``); ``test_optimized_matches_naive`` checks that the fp32 paths agree to 1e-3.
* ``nafnet-former-vs-current``: ``nafnet`` at 1280x720 on the CPU, model only, on its shipped weights: its
  forward before the CPU inference path (``nafnet_former.py``) and today's, whose output must match the
  former one to 1e-4. Issue #15 asks today's to take at most 1/2.5 of the former's time; the report shows
  the ratio.
"""

from __future__ import annotations

import functools
import time

import pytest
import torch

from deblur_core.inference import load_deblurrer
from deblur_core.models import get_model
from deblur_core.precision import DTYPES
from harness import (CUDA, MODELS_720P_CPU, NAIVE_MODEL, autocast, count_gflop, cudnn_autotune, device_params,
                     gpu_profile, gpu_profile_params, measure, model_list, peak_params, photo_batch, precision_params,
                     psnr_db, randomise, reduced_precision, sizes_for, synchronize)
from nafnet_former import former_forward

TOLERANCE = 1e-3  # largest absolute difference allowed between the optimized and the naive output ...
TOLERANCE_REDUCED = 2e-2  # ... when the optimized one runs under fp16/bf16 autocast
TOLERANCE_FORMER = 1e-4  # largest absolute difference allowed between nafnet's current and former forward

# (model, device, H, W, batch) -> the fp32 output of test_model_throughput, the reference of the reduced precision
_fp32_outputs: dict[tuple, torch.Tensor] = {}
# (H, W) -> the output of nafnet's former forward in test_nafnet_former_vs_current, the reference of today's
_former_outputs: dict[tuple[int, int], torch.Tensor] = {}


def _label(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The sizes of ``test_matmul_peak`` and ``test_conv_peak``, and the sweep of ``test_model_throughput``:
    every variant at the small size with each small batch size, the chosen variants at the large size, on each
    (device, precision). The GPU profile sweeps only the large size, on the accelerator."""
    config = metafunc.config
    s = sizes_for(config)
    if metafunc.function.__name__ == "test_matmul_peak":
        params = [pytest.param(*p.values, n, marks=p.marks, id=f"{p.id}-{n}")
                  for p in peak_params() for n in (s.matmul_cuda if p.values[0] == "cuda" else s.matmul_cpu)]
        metafunc.parametrize(("device", "precision", "n"), params)
    if metafunc.function.__name__ == "test_conv_peak":
        params = [pytest.param(*p.values, shape, marks=p.marks, id=f"{p.id}-{'x'.join(map(str, shape))}")
                  for p in peak_params() for shape in (s.conv_cuda if p.values[0] == "cuda" else s.conv_cpu)]
        metafunc.parametrize(("device", "precision", "shape"), params)
    if metafunc.function.__name__ != "test_model_throughput":
        return
    profile = gpu_profile(config)
    small = [] if profile else model_list(config.getoption("--models"))
    spec = config.getoption("--models-720p")
    params = []
    for p in gpu_profile_params() if profile else precision_params():
        device, precision = p.values
        if spec != "auto":
            large = model_list(spec)
        elif profile:
            large = model_list("shipped")
        else:
            large = model_list("all") if device == "cuda" else list(MODELS_720P_CPU)
        # bf16 on a CPU (AMX) only at the large size, beside fp32: what --precision auto gains there
        runs = [] if (device, precision) == ("cpu", "bf16") else [(name, s.small, b) for name in small
                                                                  for b in s.small_batches]
        runs += [(name, s.large, s.large_batch) for name in large]
        for name, hw, batch in runs:
            params.append(pytest.param(name, device, precision, hw, batch, marks=p.marks,
                                       id=f"{name}-{device}-{precision}-{_label(hw)}-b{batch}"))
    metafunc.parametrize(("name", "device", "precision", "hw", "batch"), params)


@pytest.mark.gpu_profile
def test_matmul_peak(benchmark, sizes, device, precision, n):
    """One square matmul of size ``n`` (fp16/bf16 as such, for the tensor cores): the report's peak for a
    device and precision is the best round over the sizes."""
    benchmark.group = "peak"
    dtype = DTYPES[precision]  # the precision itself (not autocast), for the tensor cores and bf16 units
    torch.manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype)  # made where they are used: 16384² on a CPU takes seconds
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run():
        c = a @ b
        synchronize(device)
        return c

    measure(benchmark, run, sizes, device=device, frames=0, megapixels=0.0, gflop=2 * n**3 / 1e9, kind="peak",
            precision=precision, matmul=n)


@pytest.mark.gpu_profile
def test_conv_peak(benchmark, sizes, device, precision, shape):
    """One 3x3 convolution, ``channels`` in and out, on a batch of ``side`` x ``side`` maps, laid out as the
    models run (channels_last; cuDNN autotuning is on for the suite): the report's peak for a device and
    precision is the best round over these and the matmuls."""
    benchmark.group = "peak"
    channels, side, batch = shape
    dtype = DTYPES[precision]
    torch.manual_seed(0)
    x = torch.randn(batch, channels, side, side, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype).to(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            y = torch.nn.functional.conv2d(x, w, padding=1)
        synchronize(device)
        return y

    gflop = 2 * channels * channels * 9 * side * side * batch / 1e9
    measure(benchmark, run, sizes, device=device, frames=0, megapixels=0.0, gflop=gflop, kind="peak",
            precision=precision, conv=list(shape))


@pytest.mark.gpu_profile
def test_model_throughput(benchmark, pytestconfig, sizes, name, device, precision, hw, batch):
    """Model-only frames/s of one variant, the way ``deblur_core.inference`` runs it, on photographs. The
    GPU profile runs fp32 with cuDNN's heuristic choice of algorithms instead of autotuning them: autotuning
    IEEE fp32 took 3-37 s a variant on an H100, most of the profile's time."""
    benchmark.group = f"inference-{_label(hw)}"
    torch.manual_seed(0)
    deb = load_deblurrer(name, device=device)  # channels_last
    model = randomise(deb.model)
    x = photo_batch(batch, hw, device)
    autotune = not (gpu_profile(pytestconfig) and precision == "fp32")

    def run(precision=precision):
        with cudnn_autotune(autotune), torch.inference_mode(), autocast(device, precision):
            y = model(x)
        synchronize(device)
        return y

    h, w = hw
    info = {"cudnn_autotune": autotune} if device == "cuda" else {}
    out = measure(benchmark, run, sizes, device=device, frames=batch, megapixels=batch * h * w / 1e6,
                  gflop=count_gflop(model, tuple(x.shape)), kind="inference", model=name, precision=precision,
                  resolution=_label(hw), batch=batch, **info)
    key = (name, device, hw, batch)
    if precision == "fp32":
        _fp32_outputs[key] = out
        return
    reference = _fp32_outputs.get(key)
    if reference is None:  # its fp32 case did not run (deselected, or past the budget): one fp32 call
        with cudnn_autotune(False):
            reference = run("fp32")
    benchmark.extra_info["psnr_vs_fp32_db"] = _finite(psnr_db(out, reference))


def _finite(db: float) -> float | None:
    return round(db, 2) if db != float("inf") else None  # None: identical outputs


def _naive_model(device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomise(get_model(NAIVE_MODEL)).eval().to(device)  # NCHW, as built


def _optimized_model(device: str, compiled: bool) -> torch.nn.Module:
    model = _naive_model(device).to(memory_format=torch.channels_last)
    return torch.compile(model, dynamic=False) if compiled else model


def _optimized_precision(device: str) -> str:
    # the reduced precision on CUDA; fp32 on the CPU, which is what deblur_core runs there
    return reduced_precision(device) if device == "cuda" else "fp32"


def _frames(sizes, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(sizes.optimized_batch, 3, *sizes.large, generator=g).to(device)


def _run_naive(model, frames: torch.Tensor, device: str) -> torch.Tensor:
    # eager, NCHW, fp32, autograd on (no inference_mode / no_grad), one frame at a time, no cuDNN autotuning
    with cudnn_autotune(False):
        outs = [model(frame[None]) for frame in frames]
    synchronize(device)
    return torch.cat(outs)


@functools.cache
def _naive_output(sizes, device: str) -> torch.Tensor:
    """What the naive path makes of ``_frames``: the reference every other path must match."""
    with torch.no_grad():
        return _run_naive(_naive_model(device), _frames(sizes, device), device)


def _run_optimized(model, frames: torch.Tensor, device: str) -> torch.Tensor:
    # the whole batch at once, channels_last, no autograd, reduced precision on CUDA
    with torch.inference_mode(), autocast(device, _optimized_precision(device)):
        y = model(frames.contiguous(memory_format=torch.channels_last))
    synchronize(device)
    return y.float()


@pytest.mark.gpu_profile
@pytest.mark.parametrize("path", ["naive", "optimized", "compiled"])
@pytest.mark.parametrize("device", device_params())
def test_naive_vs_optimized(benchmark, sizes, use_compile, device, path):
    """``srn`` at 1280x720 on the naive path and the optimized one; the report shows the speed-up. The
    output of each must match the naive one."""
    if path == "compiled" and not use_compile:
        pytest.skip("torch.compile path not asked for (pass --compile)")
    benchmark.group = "naive-vs-optimized"
    frames = _frames(sizes, device)
    precision = "fp32" if path == "naive" else _optimized_precision(device)
    info = {}
    if path == "naive":
        model = _naive_model(device)
        run = lambda: _run_naive(model, frames, device)  # noqa: E731
    else:
        model = _optimized_model(device, compiled=path == "compiled")
        run = lambda: _run_optimized(model, frames, device)  # noqa: E731
    if path == "compiled":  # compile (or load the cached kernels) before the rounds are sized
        start = time.perf_counter()
        try:
            run()
        except Exception as err:  # e.g. no C compiler for the generated kernels on this machine
            pytest.skip(f"torch.compile failed here: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
        info["compile_s"] = round(time.perf_counter() - start, 2)
    b, _, h, w = frames.shape
    out = measure(benchmark, run, sizes, device=device, frames=b, megapixels=b * h * w / 1e6,
                  gflop=count_gflop(_naive_model("cpu"), (b, 3, h, w)), kind="path", path=path, model=NAIVE_MODEL,
                  precision=precision, resolution=_label((h, w)), batch=1 if path == "naive" else b, **info)
    if path == "naive":
        return
    reference = _naive_output(sizes, device)
    diff = (out.float() - reference).abs().max().item()
    benchmark.extra_info.update(max_abs_diff_vs_naive=diff, psnr_vs_naive_db=_finite(psnr_db(out, reference)))
    assert diff <= (TOLERANCE if precision == "fp32" else TOLERANCE_REDUCED), f"{path} output differs by {diff:.2e}"


@pytest.mark.parametrize("device", device_params())
def test_optimized_matches_naive(sizes, use_compile, device):
    """Not a benchmark: the optimized path (fp32, also compiled with --compile) computes what the naive one
    does, to 1e-3, on a network with random weights (an untrained one is the identity)."""
    frames = _frames(sizes, device)
    reference = _naive_output(sizes, device)
    for compiled in [False] + ([True] if use_compile else []):
        with torch.inference_mode():
            out = _optimized_model(device, compiled)(frames.contiguous(memory_format=torch.channels_last))
        synchronize(device)
        assert not torch.equal(reference, frames), "the randomised network should change its input"
        diff = (out.float() - reference).abs().max().item()
        assert diff <= TOLERANCE, f"optimized{' (compiled)' if compiled else ''} output differs by {diff:.2e}"


@pytest.mark.parametrize("forward", ["former", "current"])
def test_nafnet_former_vs_current(benchmark, sizes, forward):
    """``nafnet`` at the large size on the CPU, model only (channels_last, ``torch.inference_mode``, the
    shipped weights, one photograph): its former forward, then today's, which must compute the same to
    1e-4. The report gives today's speed over the former one's."""
    benchmark.group = "nafnet-former-vs-current"
    model = load_deblurrer("nafnet", device="cpu").model  # shipped weights, channels_last
    x = photo_batch(1, sizes.large)
    forward_fn = functools.partial(former_forward, model) if forward == "former" else model

    def run():
        with torch.inference_mode():
            return forward_fn(x)

    h, w = sizes.large
    out = measure(benchmark, run, sizes, device="cpu", frames=1, megapixels=h * w / 1e6,
                  gflop=count_gflop(model, tuple(x.shape)), kind="former", forward=forward, model="nafnet",
                  precision="fp32", resolution=_label(sizes.large), batch=1)
    if forward == "former":
        _former_outputs[sizes.large] = out
        return
    reference = _former_outputs.get(sizes.large)
    if reference is None:  # the former case did not run (deselected): one call of the former forward
        with torch.inference_mode():
            reference = former_forward(model, x)
    diff = (out - reference).abs().max().item()
    benchmark.extra_info["max_abs_diff_vs_former"] = diff
    assert diff <= TOLERANCE_FORMER, f"nafnet's output differs from its former forward's by {diff:.2e}"


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
