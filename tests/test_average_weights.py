"""scripts/average_weights.py: the mean of one run's checkpoints, whose record a fine-tune started from it keeps."""

import subprocess
import sys
from pathlib import Path

import torch

from deblur_core.checkpoint import load_model, read_metadata, save_checkpoint
from deblur_core.models import get_model
from deblur_core.train import TrainConfig, _init_weights
from helpers import randomise

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "scripts" / "average_weights.py")


def test_the_mean_of_checkpoints_keeps_the_latest_record_and_the_steps_it_averaged(tmp_path):
    models, paths = [], []
    for i, step in enumerate([300, 500, 400]):
        models.append(randomise(get_model("srn-nolstm"), seed=i))
        paths.append(save_checkpoint(tmp_path / f"s{step}.safetensors", models[-1], name="srn-nolstm",
                                     config={"lr": step}, metrics={"step": step, "train_seconds": step / 10}))
    out = tmp_path / "mean.safetensors"
    proc = subprocess.run([sys.executable, SCRIPT, str(out), *map(str, paths)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    mean, meta = load_model(out)
    for k, v in mean.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, sum(m.state_dict()[k] for m in models) / 3, msg=k)
    assert meta["metrics"]["step"] == 500 and meta["config"] == {"lr": 500}
    assert [a["step"] for a in meta["averaged"]] == [300, 500, 400]

    # a fine-tune from the mean records the stage it came from as the training up to the latest checkpoint
    record = _init_weights(TrainConfig(model="srn-nolstm", init=str(out)), get_model("srn-nolstm"))["init"]
    assert record[-1]["step"] == 500 and [a["step"] for a in record[-1]["averaged"]] == [300, 500, 400]
    assert read_metadata(out)["averaged"][0]["weights"] == str(paths[0])


def test_checkpoints_of_different_variants_are_refused(tmp_path):
    a = save_checkpoint(tmp_path / "a.safetensors", get_model("srn-nolstm"), name="srn-nolstm", metrics={"step": 1})
    b = save_checkpoint(tmp_path / "b.safetensors", get_model("nafnet"), name="nafnet", metrics={"step": 2})
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "out.safetensors"), str(a), str(b)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "different variants" in proc.stderr
    assert not (tmp_path / "out.safetensors").exists()
