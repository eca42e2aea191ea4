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
           "RUNS": str(tmp_path / "runs"), "MINUTES": "0.1", "SHARE": "0.5", "PATCH": "32", "BATCH": "2",
           "SMOKE_STEPS": "6", "VAL_EVERY": "4", "VAL_COUNT": "2", "VAL_PATCH": "32", "WARMUP": "2",
           "PY": sys.executable, "BENCH_CMD": "echo bench > $BENCH_OUT/bench.txt",
           # a model whose smoke phase fails is left out, and the others train on its minutes
           "MODELS": "srn no-such-model nafnet-cpu"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    # at most 8 files come back from the GPU machine, none in nested folders
    assert files == ["log.txt", "nafnet-cpu-best-fp16.safetensors", "nafnet-cpu-last-fp16.safetensors",
                     "results.tar.gz", "srn-best-fp16.safetensors", "srn-last-fp16.safetensors"]
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
        smoke = {m: json.load(tar.extractfile(f"smoke-{m}.json")) for m in ("srn", "nafnet-cpu")}
    for m in ("srn", "nafnet-cpu"):
        assert {f"{m}-config.json", f"{m}-metrics.jsonl", f"{m}-curve.png"} <= names
        assert smoke[m]["steps_per_s"] > 0 and smoke[m]["fp16_roundtrip_max_diff"] < 1e-2
    assert "bench/bench.txt" in names
    log = (out / "log.txt").read_text()
    assert "smoke failed for no-such-model: left out" in log
    for phase in ("phase 1", "phase 2: smoke (srn)", "phase 2: smoke (nafnet-cpu)", "phase 3: train srn for 0.05",
                  "phase 3: train nafnet-cpu for 0.05", "phase 4", "phase 5", "done"):
        assert phase in log

    from deblur_core.checkpoint import load_model

    for m in ("srn", "nafnet-cpu"):
        model, meta = load_model(out / f"{m}-best-fp16.safetensors")
        cfg = meta["config"]
        assert meta["model"] == m and cfg["blur"] == "broad" and cfg["fft_loss"] == 0.1 and cfg["rotate"]
        assert cfg["jpeg"] == 0.0 and cfg["noise"] == 0.01 and cfg["decay_by_time"] and cfg["max_minutes"] > 0
        assert cfg["sharp_share"] == 0.1
        assert cfg["compile"] == (m == "nafnet-cpu") and smoke[m]["compile"] == (m == "nafnet-cpu")
    # the do-no-harm recipe on the broad synthesis, in every training command the script ran
    commands = [line for line in log.splitlines() if " -m deblur_cli train --model" in line]
    assert len(commands) == 5  # the smoke phase of each of the three models, the run of each that passed it
    assert all("--blur broad" in c and "--sharp-share 0.1" in c and "--jpeg 0.0" in c for c in commands)
    # nafnet-cpu's step compiled (CUDA graphs on a GPU), srn's eager
    assert all(("--compile" in c) == ("--model nafnet-cpu" in c) for c in commands)
    assert "smoke phases took" in log and "compiled smoke failed" not in log
    # both from their shipped weights
    for m in ("srn", "nafnet-cpu"):
        assert load_model(out / f"{m}-best-fp16.safetensors")[1]["init"][-1]["weights"].endswith(f"weights/{m}.safetensors")


@pytest.mark.slow
def test_gpu_script_trains_eagerly_a_model_whose_compiled_smoke_phase_fails(tmp_path):
    """A compiler that does not work (here: $CXX names none, and torch's kernel cache is empty) costs the model
    its compiled step, not its training."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 1)):
        (tmp_path / "photos" / split).mkdir(parents=True)
        for i in range(n):
            iio.imwrite(tmp_path / "photos" / split / f"p{i}.png", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WHEELS": str(tmp_path / "no-wheels"), "DATA": str(tmp_path / "photos"),
           "RUNS": str(tmp_path / "runs"), "MINUTES": "0.05", "PATCH": "32", "BATCH": "2", "SMOKE_STEPS": "4",
           "VAL_EVERY": "4", "VAL_COUNT": "2", "VAL_PATCH": "32", "WARMUP": "2", "PY": sys.executable,
           "MODELS": "srn-small", "COMPILE": "srn-small", "CXX": str(tmp_path / "no-such-compiler"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor-cache")}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "compiled smoke failed for srn-small: once more without --compile" in log
    assert "smoke failed for srn-small: left out" not in log and "phase 3: train srn-small" in log
    commands = [line for line in log.splitlines() if " -m deblur_cli train --model" in line]
    assert len(commands) == 3 and "--compile" in commands[0] and "--compile" not in " ".join(commands[1:])
    from deblur_core.checkpoint import load_model

    assert load_model(out / "srn-small-best-fp16.safetensors")[1]["config"]["compile"] is False


@pytest.mark.slow
def test_gpu_script_stops_at_a_failing_smoke_phase(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WHEELS": str(tmp_path / "none"),
           "DATA": str(tmp_path / "missing"), "RUNS": str(tmp_path / "runs"), "PY": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "phase 2" in log and "phase 3" not in log
