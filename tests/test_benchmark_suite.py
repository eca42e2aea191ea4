"""The benchmark suite still runs and renders its report: a smoke run (``--quick``, tiny frames, ~15 s), and
the GPU profile's one-line command as the GPU machine gets it, run here on the CPU with tiny frames.

Benchmarks are outside the default test run, so without this a change to the code they call could break
them unnoticed until the next real measurement. No timing is asserted: only that every benchmark ran and
the report has its rows.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import CPU_BF16, gpu_machine_name, model_list  # noqa: E402
from report import GPU_COMMAND, Row, Run  # noqa: E402


@pytest.mark.slow
def test_quick_benchmark_run_and_report(tmp_path):
    out = tmp_path / "quick.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--quick", "--benchmark-enable",
                          f"--benchmark-json={out}", "-p", "no:cacheprovider", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    names = {b["name"] for b in json.loads(out.read_text())["benchmarks"]}
    for kind in ("gaussian", "motion", "shake", "video", "mix"):
        assert f"test_train_batch_synthesis[{kind}]" in names
    assert any(n.startswith("test_train_step[srn-recipe") for n in names)

    rep = subprocess.run([sys.executable, "benchmarks/report.py", str(out), "--out-dir", str(tmp_path / "reports")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    md = next((tmp_path / "reports").glob("*-quick.md")).read_text()
    assert "## Acceptance figures" in md
    row = next(line for line in md.splitlines() if line.startswith("| mix blur training batch 64x64 b16 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3].replace(",", "")) > 0  # crops/s
    assert cells[5] == cells[6] == "–"  # no counted GFLOP, so no share of the matmul peak


@pytest.mark.slow
def test_gpu_profile_command_on_the_cpu(tmp_path):
    """The command the GPU machine runs, here: only the profile's cases, on the CPU (the accelerator here),
    and a report under $OUT with the peak per precision, the hardware, and the naive/optimized paths."""
    env = {**os.environ, "OUT": str(tmp_path), "DEBLUR_BENCH_QUICK": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-c", GPU_COMMAND], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout[-3000:]
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["deblur"]["profile"] == "gpu" and data["machine_info"]["hardware"]["cpu_flags"]
    names = {b["name"] for b in data["benchmarks"]}
    assert not any(n.startswith("test_train") or "cuda" in n for n in names)  # not in the profile / no GPU here
    precisions = ["fp32", "bf16"] if CPU_BF16 else ["fp32"]
    swept = {re.match(r"test_model_throughput\[(.+)-cpu-(fp32|bf16)-160x96-b1\]", n) for n in names} - {None}
    assert {(m[1], m[2]) for m in swept} == {(name, p) for name in model_list("shipped") for p in precisions}
    assert {f"test_naive_vs_optimized[cpu-{path}]" for path in ("naive", "optimized", "compiled")} <= names

    md = next(tmp_path.glob("*-quick.md")).read_text()
    assert "GPU profile (`--profile gpu`)" in md and "instruction sets: " in md
    peak = [line for line in md.splitlines() if line.startswith(("| matmul ", "| conv 3x3 "))]
    assert any(line.startswith("| conv 3x3 ") for line in peak)
    chosen = [line.split("|")[3].strip() for line in peak if "**yes**" in line]
    assert sorted(chosen) == sorted(precisions)  # one peak per precision, the best of its cases
    assert ("## Per model, 160x96, cpu: fp32 vs bf16" in md) == CPU_BF16
    assert re.search(r"\| srn 160x96 compiled \(2 frames; compiling took \d+ s\) \|", md)


def test_gpu_machine_name():
    assert gpu_machine_name("NVIDIA H100 80GB HBM3") == "nvidia-h100"
    assert gpu_machine_name("NVIDIA H200") == "nvidia-h200"
    assert gpu_machine_name("NVIDIA H100 PCIe") == "nvidia-h100-pcie"


def test_peak_is_the_fastest_ceiling_case_matmul_or_convolution():
    """A network of 3x3 convolutions can outrun the best matmul (on this project's EPYC, fp32: oneDNN's
    convolution 226 GFLOP/s, the best matmul 191): the peak is the best round over both kinds, per device and
    precision, so no share exceeds it."""
    def row(name, seconds, gflop, **info):
        return Row(fullname=name, group=info.get("kind", ""), median_s=seconds, min_s=seconds, rounds=3,
                   info={"device": "cpu", "precision": "fp32", "gflop": gflop, **info})

    matmul = row("mm", 1.0, 191.0, kind="peak", matmul=2048)
    conv = row("conv", 1.0, 226.0, kind="peak", conv=[128, 128, 1])
    bf16 = row("mm-bf16", 1.0, 420.0, kind="peak", matmul=1024, precision="bf16")
    model = row("srn", 1.0, 218.0, kind="inference", model="srn", resolution="256x256", batch=1, frames=1)
    run = Run(path=Path("x.json"), data={}, rows=[matmul, conv, bf16, model])
    assert run.peak_row("cpu", "fp32") is conv and run.peak("cpu", "fp32") == pytest.approx(226.0)
    assert run.peak_row("cpu", "bf16") is bf16
    assert run.pct_of_peak(model) == pytest.approx(100 * 218 / 226)  # was 114% of the matmul alone
    assert conv.label == "conv 3x3 128 ch 128x128 b1" and matmul.label == "matmul 2048x2048"
