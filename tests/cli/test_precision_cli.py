"""--precision of deblur-cli batch and eval: passed to the core, shown, and refused when unknown."""

import json

import torch
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.inference import load_deblurrer
from deblur_core.io import Image, read_image, write_image

from helpers import assert_output_of, random_checkpoint

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_batch_runs_at_the_precision_asked_and_says_so(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", Image(data=torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0)),
                                     bit_depth=16))
    summary, weights = tmp_path / "s.json", random_checkpoint(tmp_path / "w.safetensors")
    r = runner.invoke(app, ["batch", str(src), "--model", "srn-nolstm", "--weights", str(weights), "--precision",
                            "bf16", "--device", "cpu", "--json-summary", str(summary)], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "cpu (bf16)" in r.stdout
    assert json.loads(summary.read_text())["precision"] == "bf16"
    out = read_image(tmp_path / "in_deblurred" / "a.png")
    assert out.bit_depth == 16
    deb = load_deblurrer("srn-nolstm", weights, device="cpu", precision="bf16")
    assert_output_of(out.data, deb, read_image(src / "a.png").data, 16)


def test_unknown_precision_is_a_usage_error(tmp_path):
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", torch.rand(3, 8, 8))
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--precision", "half"], env=WIDE)
    assert r.exit_code == 2 and "precision must be one of auto, fp32, bf16, fp16" in r.output
    assert not (tmp_path / "in_deblurred").exists()


def test_eval_reports_its_precision():
    r = runner.invoke(app, ["eval", "--model", "srn-nolstm", "--data", "default", "--crops", "--val-count", "2",
                            "--no-baseline", "--precision", "fp32", "--json"], env=WIDE)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["precision"] == "fp32"
    for cmd in ("batch", "eval"):
        assert "--precision" in runner.invoke(app, [cmd, "--help"], env=WIDE).output
