"""scripts/ship_weights.py --to: a run's weights as fp16 and its curve, kept in a committed progress folder."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from deblur_core.checkpoint import load_model, save_checkpoint
from deblur_core.models import get_model
from helpers import randomise

ROOT = Path(__file__).resolve().parent.parent


def test_progress_folder_holds_fp16_weights_that_continue_a_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = randomise(get_model("nafnet"))
    save_checkpoint(run / "last.safetensors", model, name="nafnet", config={"blur": "realistic"},
                    metrics={"step": 40, "val_psnr": 25.5})
    (run / "config.json").write_text(json.dumps({"model": "nafnet", "steps": 40}))
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 0.5}\n')
    dest = tmp_path / "training" / "nafnet"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_weights.py"), str(run), "--which", "last",
                           "--to", str(dest), "--stage", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["stage2-config.json", "stage2-metrics.jsonl",
                                                      "weights-fp16.safetensors"]
    assert (dest / "stage2-metrics.jsonl").read_text() == '{"step": 10, "loss": 0.5}\n'
    again, meta = load_model(dest / "weights-fp16.safetensors")
    assert meta["metrics"]["step"] == 40 and meta["config"]["blur"] == "realistic"
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), msg=k)  # stored in fp16, loaded back as fp32


def test_a_checkpoint_file_cannot_go_to_a_progress_folder(tmp_path):
    # a progress folder keeps the run's config.json and metrics.jsonl beside the weights; a lone file has none
    ckpt = tmp_path / "weights-fp16.safetensors"
    save_checkpoint(ckpt, get_model("nafnet"), name="nafnet", config={"blur": "realistic"}, metrics={"step": 1})
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_weights.py"), str(ckpt), "--to",
                           str(tmp_path / "dest")], capture_output=True, text=True)
    assert proc.returncode == 2 and "pass the run directory" in proc.stderr
    assert not (tmp_path / "dest").exists()
