"""Options of the benchmark suite and what its saved JSON carries besides pytest-benchmark's own fields.

The suite is outside the default test run (the root ``pyproject.toml`` collects ``tests/`` only and passes
``--benchmark-disable``); see ``benchmarks/README.md`` for the command that runs it and renders the report.
"""

from __future__ import annotations

import os

import pytest
import torch

from harness import CUDA, FULL, QUICK, THREADS, Sizes, machine_name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deblur benchmarks")
    group.addoption("--quick", action="store_true", default=os.environ.get("DEBLUR_BENCH_QUICK") == "1",
                    help="smoke run: tiny resolutions, few rounds (also DEBLUR_BENCH_QUICK=1)")
    group.addoption("--models", default="all",
                    help="comma-separated variants of the 256x256 sweep (default: all)")
    group.addoption("--models-720p", default="auto",
                    help="variants run at 1280x720: 'auto' (srn,srn-nolstm,nafnet,resunet1 on the CPU, every "
                         "variant on CUDA), 'all', or a comma-separated list")
    group.addoption("--compile", action="store_true", default=os.environ.get("DEBLUR_BENCH_COMPILE") == "1",
                    help="also time the optimized path under torch.compile, kernels cached in "
                         ".benchmarks/inductor-cache (also DEBLUR_BENCH_COMPILE=1)")
    group.addoption("--machine", default=os.environ.get("DEBLUR_BENCH_MACHINE"),
                    help="this machine's name in the report (default: derived from the CPU and GPU)")


def pytest_configure(config: pytest.Config) -> None:
    # torch.compile's own modules use a deprecated torch.jit API: not this project's to fix
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def pytest_report_header(config: pytest.Config) -> str:
    gpu = torch.cuda.get_device_name(0) if CUDA else "none"
    mode = "quick (smoke)" if config.getoption("--quick") else "full"
    return f"deblur benchmarks: {mode}, torch {torch.__version__}, {THREADS} CPU thread(s), GPU: {gpu}"


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    """What the report needs about the run besides pytest-benchmark's machine_info."""
    output_json["deblur"] = {
        "machine": config.getoption("--machine") or machine_name(),
        "quick": bool(config.getoption("--quick")),
        "threads": THREADS,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if CUDA else None,
    }


@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    return QUICK if pytestconfig.getoption("--quick") else FULL


@pytest.fixture(scope="session")
def use_compile(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--compile"))
