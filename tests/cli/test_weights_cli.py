"""Weights that cannot be used: every command that loads them refuses them in one line, exit 2, before any output."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.checkpoint import pretrained_path, read_metadata, save_checkpoint, save_train_state
from deblur_core.io import Image, write_image
from deblur_core.models import get_model

from helpers import poisoned_copy

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def nan_weights(tmp_path_factory) -> tuple[Path, str]:
    """nafnet-cpu's shipped weights with one NaN, and the name of the tensor holding it."""
    path = tmp_path_factory.mktemp("weights") / "nan1.safetensors"
    return path, poisoned_copy(pretrained_path("nafnet-cpu"), path)


def _frames(root: Path) -> Path:
    root.mkdir()
    write_image(root / "1.png", Image(data=torch.rand(3, 24, 32)))
    return root


def _refused(r, path: Path, tensor: str) -> None:
    assert r.exit_code == 2, r.output
    assert f"'{path}' holds non-finite weights: tensor '{tensor}'" in r.stderr
    assert "Traceback" not in r.output


def test_batch_refuses_non_finite_weights_and_writes_nothing(tmp_path, nan_weights):
    path, tensor = nan_weights
    out = tmp_path / "out"
    r = runner.invoke(app, ["batch", str(_frames(tmp_path / "in")), "--model", "nafnet-cpu", "--weights", str(path),
                            "--out", str(out)], env=WIDE)
    _refused(r, path, tensor)
    assert not out.exists()


def test_eval_export_and_train_init_refuse_them_too(tmp_path, nan_weights):
    path, tensor = nan_weights
    r = runner.invoke(app, ["eval", "--model", "nafnet-cpu", "--weights", str(path), "--crops", "--val-count", "2",
                            "--no-baseline"], env=WIDE)
    _refused(r, path, tensor)
    onnx = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", "--model", "nafnet-cpu", "--weights", str(path), "--out", str(onnx)], env=WIDE)
    _refused(r, path, tensor)
    assert not onnx.exists()
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--model", "nafnet-cpu", "--init", str(path), "--out", str(run), "--steps", "1",
                            "--quiet"], env=WIDE)
    _refused(r, path, tensor)
    assert not run.exists()


def test_train_resume_refuses_a_state_holding_nan(tmp_path):
    from deblur_core.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(model="srn-small", out=str(run), steps=4, val_count=2, device="cpu")
    (run / "config.json").write_text(json.dumps(asdict(cfg)))
    model = get_model("srn-small")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_train_state(run / "train_state.safetensors", model, torch.optim.Adam(model.parameters()),
                     {"step": 2, "best_psnr": 20.0})
    before = sorted(run.iterdir())
    r = runner.invoke(app, ["train", "--resume", str(run), "--quiet"], env=WIDE)
    _refused(r, run / "train_state.safetensors", "model." + next(iter(model.state_dict())))
    assert sorted(run.iterdir()) == before


def test_a_weight_file_that_does_not_fit_is_one_short_line_and_verbose_lists_every_name(tmp_path):
    # srn's tensors labelled nafnet-cpu: none of the 400 names fits
    wrong = save_checkpoint(tmp_path / "wrong.safetensors", get_model("srn"), name="srn")
    tensors = load_file(str(wrong))
    save_file(tensors, str(wrong), metadata={"deblur": json.dumps({**read_metadata(wrong), "model": "nafnet-cpu"})})
    frames = _frames(tmp_path / "in")
    args = ["batch", str(frames), "--model", "nafnet-cpu", "--weights", str(wrong), "--out", str(tmp_path / "out")]
    r = runner.invoke(app, args, env=WIDE)
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert len(line) < 400 and "does not fit model 'nafnet-cpu'" in line and f"{len(tensors)} unexpected" in line, line
    r = runner.invoke(app, ["--verbose", *args], env=WIDE)
    assert r.exit_code == 2
    assert all(name in r.stderr for name in [*tensors, *get_model("nafnet-cpu").state_dict()])


def test_a_project_checkpoint_names_its_own_model(tmp_path):
    """--weights alone is enough: the variant is read from the checkpoint."""
    from helpers import randomise

    path = save_checkpoint(tmp_path / "mine.safetensors", randomise(get_model("nafnet")), name="nafnet")
    frames = _frames(tmp_path / "frames")
    r = runner.invoke(app, ["batch", str(frames), "--weights", str(path), "--device", "cpu", "--quiet",
                            "--json-summary", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["model"] == "nafnet"
    r = runner.invoke(app, ["batch", str(frames), "--weights", str(path), "--model", "srn"])
    assert r.exit_code == 2 and "not 'srn'" in r.output


def test_a_published_checkpoint_without_spandrel_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "spandrel", None)  # as on a plain install
    torch.save({"intro.weight": torch.ones(4, 3, 3, 3)}, tmp_path / "net.pth")
    for command in (["batch", str(_frames(tmp_path / "frames"))], ["eval", "--crops"], ["export", "--out", str(tmp_path / "n.onnx")]):
        r = runner.invoke(app, [*command, "--weights", str(tmp_path / "net.pth")])
        assert r.exit_code == 2, r.output
        assert "pip install 'deblur-toolkit[zoo]'" in r.output and "Traceback" not in r.output
    # converting needs no spandrel: the tensors are read as data and written as they are
    r = runner.invoke(app, ["convert", str(tmp_path / "net.pth"), str(tmp_path / "net.safetensors")])
    assert r.exit_code == 0 and "spandrel is not installed" in r.output, r.output
    assert torch.equal(load_file(str(tmp_path / "net.safetensors"))["intro.weight"], torch.ones(4, 3, 3, 3))
    r = runner.invoke(app, ["convert", str(tmp_path / "missing.pth"), str(tmp_path / "m.safetensors")])
    assert r.exit_code == 2 and "does not exist" in r.output
