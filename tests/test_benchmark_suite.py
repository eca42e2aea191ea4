"""The benchmark suite still runs and renders its report: a smoke run (``--quick``, tiny frames, ~15 s).

Benchmarks are outside the default test run, so without this a change to the code they call could break
them unnoticed until the next real measurement. No timing is asserted: only that every benchmark ran and
the report has its rows.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
