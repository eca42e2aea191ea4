"""deblur-cli export, through typer's CliRunner: the file, the message, and clean failures (usage errors exit 2)."""

import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.io import read_image, to_array, write_image

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")

runner = CliRunner()


def test_export_writes_a_checked_onnx_file(tmp_path):
    out = tmp_path / "models" / "caessc.onnx"
    r = runner.invoke(app, ["export", "--model", "caessc-d30-f64", "--format", "onnx", "--out", str(out)],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert out.is_file()
    assert f"wrote {out} (caessc-d30-f64, weights caessc-d30-f64.safetensors, ONNX opset 18" in r.output
    assert "onnxruntime matches batch's fp32 deblurring to" in r.output
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["blurred"]


def test_export_gives_what_batch_writes(tmp_path):
    """The exported file's output on a frame, quantised to 8 bits as batch quantises, is the frame batch writes."""
    (tmp_path / "frames").mkdir()
    write_image(tmp_path / "frames" / "in.png", torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(1)))
    r = runner.invoke(app, ["export", "--model", "srn-small", "--out", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["batch", str(tmp_path / "frames"), "--model", "srn-small", "--device", "cpu",
                            "--precision", "fp32", "--out", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 0, r.output
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    blurred = read_image(tmp_path / "frames" / "in.png").data[None]
    sharp = session.run(["sharp"], {"blurred": blurred.numpy()})[0]
    assert sharp.min() >= 0 and sharp.max() <= 1  # srn-small's raw output leaves [0, 1] on this noise
    got = to_array(torch.from_numpy(sharp), 8).astype(int)
    written = to_array(read_image(tmp_path / "out" / "in.png").data, 8).astype(int)
    # within 1e-4 of batch's floats: equal but where a value sits on a rounding boundary
    assert np.abs(got - written).max() <= 1 and (got == written).mean() > 0.999


def test_export_of_an_untrained_variant_says_so(tmp_path):
    r = runner.invoke(app, ["export", "--model", "resunet1", "--out", str(tmp_path / "r.onnx"), "--opset", "20"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "(resunet1, untrained, ONNX opset 20" in r.output
    assert "no trained weights for 'resunet1'" in r.output


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "srn", "--format", "tflite"], "unknown export format 'tflite'"),
    (["--model", "srn", "--opset", "13"], "opset must be between 18"),
    (["--model", "srn", "--weights", "missing.safetensors"], "does not exist"),
])
def test_usage_errors_exit_2(tmp_path, args, message):
    r = runner.invoke(app, ["export", *args, "--out", str(tmp_path / "m.onnx")], env={"COLUMNS": "200"})
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output


def test_unwritable_out_exits_2(tmp_path):
    r = runner.invoke(app, ["export", "--model", "srn", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "is a folder" in r.output
    (tmp_path / "file").write_text("")
    r = runner.invoke(app, ["export", "--model", "srn", "--out", str(tmp_path / "file" / "m.onnx")],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "is a file, not a folder" in r.output


def test_missing_export_packages_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    r = runner.invoke(app, ["export", "--model", "srn", "--out", str(tmp_path / "m.onnx")], env={"COLUMNS": "200"})
    assert r.exit_code == 1
    assert "pip install 'deblur-toolkit[export]'" in r.output


def test_help_lists_export():
    r = runner.invoke(app, ["--help"])
    assert "export" in r.output
    r = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option in ("--model", "--weights", "--format", "--out", "--opset"):
        assert option in r.output
    assert "input 'blurred'" in r.output and "output 'sharp'" in r.output and "clamped to [0, 1]" in r.output
    assert "pip install 'deblur-toolkit[export]'" in r.output
