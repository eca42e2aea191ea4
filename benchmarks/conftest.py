"""Options of the benchmark suite and what its saved JSON carries besides pytest-benchmark's own fields.

The suite is outside the default test run (the root ``pyproject.toml`` collects ``tests/`` only and passes
``--benchmark-disable``); see ``benchmarks/README.md`` for the command that runs it and renders the report.

``--profile gpu`` runs the GPU profile: only the tests marked ``gpu_profile``, only on the accelerator
(CUDA, or the CPU where there is none), the shipped variants at 1280x720 in fp32 and the reduced precision,
about half a second of rounds a case, within ``--budget-s`` seconds, the cases the acceptance checks need
first (see :func:`_profile_order`), so that a run cut by its budget loses only the extras.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from harness import (ACCELERATOR, CUDA, NAIVE_MODEL, THREADS, Sizes, gpu_profile, hardware, machine_name,
                     profile_precisions, sizes_for)

_GPU_PROFILE_BUDGET_S = 125.0  # with `timeout -s INT 140`: leaves the last case, the report and start-up room
_PEAKS = ("test_matmul_peak", "test_conv_peak")  # the machine-ceiling cases: every precision, first size first


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deblur benchmarks")
    group.addoption("--quick", action="store_true", default=os.environ.get("DEBLUR_BENCH_QUICK") == "1",
                    help="smoke run: tiny resolutions, few rounds (also DEBLUR_BENCH_QUICK=1)")
    group.addoption("--profile", choices=("full", "gpu"), default=os.environ.get("DEBLUR_BENCH_PROFILE", "full"),
                    help="'full' (default): every benchmark on every device; 'gpu': the shipped variants at "
                         "1280x720 on the accelerator only, ~1 s a case, ~2 minutes (also DEBLUR_BENCH_PROFILE)")
    group.addoption("--budget-s", type=float, default=float(os.environ.get("DEBLUR_BENCH_BUDGET_S", "-1")),
                    help="skip the tests that would start after this many seconds, so a time-limited run still "
                         f"writes its JSON (default: {_GPU_PROFILE_BUDGET_S:g} with --profile gpu, else none)")
    group.addoption("--models", default="all",
                    help="comma-separated variants of the 256x256 sweep, 'all' (default) or 'shipped'")
    group.addoption("--models-720p", default="auto",
                    help="variants run at 1280x720: 'auto' (srn,srn-nolstm,nafnet,resunet1 on the CPU, every "
                         "variant on CUDA; the shipped ones with --profile gpu), 'all', 'shipped', or a "
                         "comma-separated list")
    compile_default = os.environ.get("DEBLUR_BENCH_COMPILE")
    group.addoption("--compile", action="store_true", dest="compile",
                    default=None if compile_default is None else compile_default == "1",
                    help="also time the optimized path under torch.compile, kernels cached in "
                         ".benchmarks/inductor-cache (also DEBLUR_BENCH_COMPILE=1; on by default with "
                         "--profile gpu)")
    group.addoption("--no-compile", action="store_false", dest="compile",
                    help="leave torch.compile out (also DEBLUR_BENCH_COMPILE=0)")
    group.addoption("--machine", default=os.environ.get("DEBLUR_BENCH_MACHINE"),
                    help="this machine's name in the report (default: the GPU's, else the CPU's and core count)")


_START = pytest.StashKey[float]()  # when the run began, for --budget-s


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_START] = time.monotonic()
    config.addinivalue_line("markers", "gpu_profile: part of the GPU profile (--profile gpu)")
    # torch.compile's own modules use a deprecated torch.jit API: not this project's to fix
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def _budget_s(config: pytest.Config) -> float:
    budget = config.getoption("--budget-s")
    if budget < 0:
        return _GPU_PROFILE_BUDGET_S if gpu_profile(config) else 0.0
    return budget


def _in_gpu_profile(item: pytest.Item) -> bool:
    """Marked ``gpu_profile``, on the accelerator, and (except the peak, which measures every precision) in
    fp32 or the accelerator's reduced precision."""
    if item.get_closest_marker("gpu_profile") is None:
        return False
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    if params.get("device", ACCELERATOR) != ACCELERATOR:
        return False
    return item.originalname in _PEAKS or params.get("precision", "fp32") in profile_precisions(ACCELERATOR)


def _profile_order(items: list[pytest.Item]) -> dict[str, tuple]:
    """The GPU profile's order, acceptance cases first: the matmul and convolution peaks at their first size
    per precision (what "% of peak" divides by), ``srn``'s naive then optimized path, each variant in fp32 then
    the reduced precision (``srn`` first), the end-to-end ``batch`` case (model-only twin first: the ratio
    needs it) and the IO pipeline alone, then the other peak sizes, and torch.compile last (it can take a
    minute on a fresh machine)."""
    def params(item: pytest.Item) -> dict:
        spec = getattr(item, "callspec", None)
        return spec.params if spec else {}

    first_size = {}
    for item in items:
        if item.originalname in _PEAKS:
            p = params(item)
            first_size.setdefault((item.originalname, p["device"], p["precision"]), p.get("n", p.get("shape")))
    models = list(dict.fromkeys(params(i)["name"] for i in items if i.originalname == "test_model_throughput"))
    models.sort(key=lambda name: name != NAIVE_MODEL)  # stable: the others keep their order

    def key(item: pytest.Item) -> tuple:
        p, name = params(item), item.originalname
        if name in _PEAKS:
            return (0,) if first_size[name, p["device"], p["precision"]] == p.get("n", p.get("shape")) else (5,)
        if name == "test_naive_vs_optimized":
            return {"naive": (1,), "optimized": (2,)}.get(p["path"], (6,))
        if name == "test_model_throughput":
            return 3, models.index(p["name"]), p["precision"] != "fp32"
        if name in ("test_model_only", "test_batch_folder"):
            return 4, name == "test_batch_folder"
        if name == "test_io_pipeline":  # the codec's bound on batch, beside it
            return 4, 2, p["workers"]
        return (5,)

    return {item.nodeid: key(item) for item in items}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_profile(config):
        deselected = [item for item in items if not _in_gpu_profile(item)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if _in_gpu_profile(item)]
        order = _profile_order(items)
        items.sort(key=lambda item: order[item.nodeid])
        return
    # nafnet's former forward first, in a process that has run nothing else, as a user's nafnet-only run is:
    # it allocates many fresh 100+ MB buffers, and after the naive srn case (a 6 GB peak) such allocations
    # cost far less (the former forward: 1.5 s -> 0.5-0.7 s measured here), which flatters the yardstick only.
    # torch.compile can take a minute on a fresh machine: last, so a time-limited run has the rest
    items.sort(key=lambda item: (item.originalname != "test_nafnet_former_vs_current", "compiled" in item.name))


@pytest.fixture(autouse=True)
def _within_budget(request: pytest.FixtureRequest) -> None:
    budget = _budget_s(request.config)
    if budget and time.monotonic() - request.config.stash[_START] > budget:
        pytest.skip(f"the run's time budget of {budget:g} s is spent (--budget-s)")


def pytest_report_header(config: pytest.Config) -> str:
    hw = hardware()
    mode = "quick (smoke)" if config.getoption("--quick") else "full sizes"
    return (f"deblur benchmarks: profile {config.getoption('--profile')}, {mode}, torch {torch.__version__}, "
            f"{THREADS} CPU thread(s); CPU: {hw['cpu']} ({', '.join(hw['cpu_flags'])}); GPU: {hw['gpu'] or 'none'}")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["hardware"] = hardware()


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    """What the report needs about the run besides pytest-benchmark's machine_info."""
    output_json["deblur"] = {
        "machine": config.getoption("--machine") or machine_name(),
        "quick": bool(config.getoption("--quick")),
        "profile": config.getoption("--profile"),
        "threads": THREADS,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if CUDA else None,
    }


@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    return sizes_for(pytestconfig)


@pytest.fixture(scope="session")
def use_compile(pytestconfig: pytest.Config) -> bool:
    chosen = pytestconfig.getoption("compile")
    return gpu_profile(pytestconfig) if chosen is None else chosen
