"""Rehearse scripts/gpu_train.sh, the one command a GPU machine runs, end to end on this CPU at toy size."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_at_toy_size(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        (tmp_path / "photos" / split).mkdir(parents=True)
        for i in range(n):
            img = (rng.random((60, 80, 3)) > 0.5).astype(np.uint8) * 200 + 20
            iio.imwrite(tmp_path / "photos" / split / f"p{i}.png", img)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WHEELS": str(tmp_path / "no-wheels"), "DATA": str(tmp_path / "photos"),
           "RUN": str(tmp_path / "runs" / "srn"), "MINUTES": "0.05", "PATCH": "32", "BATCH": "2",
           "SMOKE_STEPS": "6", "VAL_EVERY": "4", "VAL_COUNT": "2", "VAL_PATCH": "32", "WARMUP": "2",
           "PY": sys.executable, "BENCH_CMD": "echo bench > $BENCH_OUT/bench.txt"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    # at most 8 files come back from the GPU machine, none in nested folders
    assert files == ["log.txt", "results.tar.gz", "srn-best-fp16.safetensors", "srn-last-fp16.safetensors"]
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
        smoke = json.load(tar.extractfile("smoke.json"))
    assert {"config.json", "metrics.jsonl", "smoke.json", "curve.png", "bench/bench.txt"} <= names
    assert smoke["steps_per_s"] > 0 and smoke["fp16_roundtrip_max_diff"] < 1e-2
    log = (out / "log.txt").read_text()
    for phase in ("phase 1", "phase 2", "phase 3", "phase 4", "phase 5", "done"):
        assert phase in log

    from deblur_core.checkpoint import load_model

    model, meta = load_model(out / "srn-best-fp16.safetensors")
    assert meta["model"] == "srn" and meta["config"]["fft_loss"] == 0.1 and meta["config"]["rotate"]


@pytest.mark.slow
def test_gpu_script_stops_at_a_failing_smoke_phase(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WHEELS": str(tmp_path / "none"),
           "DATA": str(tmp_path / "missing"), "RUN": str(tmp_path / "runs" / "srn"), "PY": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "phase 2" in log and "phase 3" not in log
