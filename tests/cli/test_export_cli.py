"""deblur-cli export, through typer's CliRunner: the file, the message, and clean failures (usage errors exit 2)."""

import sys

import pytest
from typer.testing import CliRunner

from deblur_cli.main import app

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
    assert "onnxruntime matches torch to" in r.output
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["blurred"]


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
    assert "pip install 'deblur[export]'" in r.output


def test_help_lists_export():
    r = runner.invoke(app, ["--help"])
    assert "export" in r.output
    r = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option in ("--model", "--weights", "--format", "--out", "--opset"):
        assert option in r.output
    assert "pip install 'deblur[export]'" in r.output
