"""deblur-cli: models, train, eval, blur, through typer's CliRunner."""

import dataclasses
import hashlib
import inspect
import csv
import json
import os
import typing

import numpy as np
import pytest
import torch
import imageio.v3 as iio
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.checkpoint import pretrained_path, save_checkpoint
from deblur_core.data import open_dataset
from deblur_core.evaluate import evaluate, richardson_lucy
from deblur_core.io import read_image, write_image
from deblur_core.models import count_parameters, get_model, list_models

from helpers import randomise

runner = CliRunner()


def test_help_lists_every_command():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("models", "train", "eval", "blur"):
        assert cmd in r.output


def test_train_help_shows_the_defaults_it_spells_out():
    # rich reads "[...]" in a help text as markup and drops it: the defaults must survive to the screen
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "default 2000; on --resume, the run's own" in r.output
    assert "(default: no limit)" in r.output


def test_train_option_defaults_are_train_configs():
    """Every option of 'train' that is a TrainConfig field defaults to that field's default (None: left unset,
    TrainConfig fills it in), and --steps' help spells out TrainConfig's number."""
    from deblur_cli import train_cmd
    from deblur_core.train import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    params = inspect.signature(train_cmd.train).parameters
    assert set(params) - set(fields) == {"resume", "quiet"}
    drifted = {name: (p.default, fields[name].default) for name, p in params.items()
               if name in fields and p.default is not None and p.default != fields[name].default}
    assert not drifted, drifted  # option: (its default, TrainConfig's)
    steps_help = typing.get_type_hints(train_cmd.train, include_extras=True)["steps"].__metadata__[0].help
    assert f"default {fields['steps'].default}" in steps_help


def test_models_json_lists_every_variant_with_cost():
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert {row["name"] for row in rows} == set(list_models())
    srn = next(row for row in rows if row["name"] == "srn")
    assert srn["params"] == count_parameters(get_model("srn"))
    assert 600 < srn["gflops_per_mp"] < 1100  # 32/64/128 channels: ~850 GFLOP per megapixel
    assert all(isinstance(row["weights"], bool) for row in rows)
    # variants with shipped weights come first, each saying what it was trained on and how well it did
    flags = [row["weights"] for row in rows]
    assert flags == sorted(flags, reverse=True)
    for row in rows:
        assert row["weights"] == (pretrained_path(row["name"]) is not None) == bool(row["trained_on"])
        if row["weights"]:
            assert row["metrics"]["val_psnr"] > row["metrics"]["input_psnr"]


def test_models_table():
    r = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "srn-paper" in r.output and "8.06M" in r.output
    assert "A lighter SRN for CPUs" in r.output  # descriptions shown when there is room


@pytest.mark.parametrize("columns", [80, 100])
def test_models_table_fits_a_standard_terminal(columns):
    # a narrow terminal drops the descriptions instead of squeezing every cell to a word per line
    r = runner.invoke(app, ["models"], env={"COLUMNS": str(columns)})
    assert r.exit_code == 0
    rows = {line.split()[0]: line for line in r.output.splitlines() if line.strip()}
    for row in json.loads(runner.invoke(app, ["models", "--json"]).output):
        line = rows[row["name"]]  # every name whole, at the start of its own line
        assert f"{row['params'] / 1e6:.2f}M" in line and f"{row['gflops_per_mp']:.1f}" in line
        if row["weights"]:
            assert f"{row['metrics']['val_psnr']:.2f} ({row['metrics']['input_psnr']:.2f})" in line
    assert "--json" in r.output


def _randomised_checkpoint(path, name="nafnet"):
    model = randomise(get_model(name))
    return save_checkpoint(path, model, name=name), model


def test_eval_json_matches_core_metric_functions(tmp_path):
    ckpt, model = _randomised_checkpoint(tmp_path / "w.safetensors")
    r = runner.invoke(app, ["eval", "--model", "nafnet", "--weights", str(ckpt), "--data", "default",
                            "--blur", "gaussian", "--crops", "--val-count", "4", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)[0]
    want = evaluate(model.eval(), open_dataset("default", blur="gaussian", val_count=4), crops=True)
    assert got["images"] == 4
    for row in ("blurred", "model", "richardson_lucy"):
        for k in ("mse", "psnr", "ssim"):
            assert got["rows"][row][k] == pytest.approx(want["rows"][row][k], rel=1e-5)


def test_eval_blur_none_scores_the_harm_to_sharp_images(tmp_path):
    """The input row of unblurred images is the identity; a network that alters them shows it in every column."""
    args = ["eval", "--model", "nafnet", "--data", "default", "--blur", "none", "--crops", "--val-count", "3",
            "--device", "cpu"]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)[0]["rows"]
    assert "richardson_lucy" not in rows  # no kernel to deconvolve
    assert rows["blurred"]["psnr"] is None and rows["blurred"]["ssim"] == pytest.approx(1.0)  # inf: JSON has none
    assert rows["blurred"]["shift"] == [0.0, 0.0, 0.0] and rows["blurred"]["max_abs_shift"] == 0.0
    # the shipped gaussian-trained nafnet sharpens what is already sharp
    assert rows["model"]["psnr"] < 40 and rows["model"]["ssim"] < 0.99 and rows["model"]["max_abs_shift"] > 0
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "sharp input (unchanged)" in table.stdout and "inf" in table.stdout


def test_eval_light_and_csv_give_the_level_shift(tmp_path):
    out = tmp_path / "scores.csv"
    r = runner.invoke(app, ["eval", "--model", "srn-nolstm", "--data", "default", "--blur", "light", "--device", "cpu",
                            "--csv", str(out), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)[0]
    rows = list(csv.DictReader(out.open()))
    assert {row["method"] for row in rows} == {"blurred", "model", "richardson_lucy"}
    assert len(rows) == 3 * got["images"]
    per = got["per_image"][0]
    first = next(row for row in rows if row["image"] == per["image"] and row["method"] == "model")
    assert float(first["shift_g"]) == pytest.approx(per["model"]["shift"][1])
    # an untrained network is the identity: the model scores exactly what the input does
    assert got["rows"]["model"]["psnr"] == pytest.approx(got["rows"]["blurred"]["psnr"])
    assert got["rows"]["blurred"]["psnr"] > 30


def test_eval_tta_runs_more_passes_and_refuses_other_counts():
    args = ["eval", "--model", "nafnet", "--data", "default", "--blur", "motion", "--crops", "--val-count", "2",
            "--no-baseline", "--device", "cpu", "--json"]
    one, eight = (json.loads(runner.invoke(app, [*args, "--tta", n]).output)[0] for n in ("1", "8"))
    assert eight["tta"] == 8 and one["rows"]["blurred"] == eight["rows"]["blurred"]
    assert one["rows"]["model"]["psnr"] != eight["rows"]["model"]["psnr"]
    r = runner.invoke(app, [*args, "--tta", "3"])
    assert r.exit_code == 2 and "tta must be one of 1, 2, 4, 8" in r.output


@pytest.mark.parametrize("name", ["srn", "srn-nolstm"])  # shipped weights, none
def test_eval_table_and_untrained_note(name):
    r = runner.invoke(app, ["eval", "--model", name, "--data", "default", "--crops", "--val-count", "2", "--no-baseline"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "blurred input" in r.stdout and "PSNR" in r.stdout
    untrained = f"no trained weights for '{name}': scoring the untrained network"
    assert (untrained in r.stderr) == (pretrained_path(name) is None)


def test_richardson_lucy_with_the_true_kernel_sharpens():
    src = open_dataset("default", blur="gaussian", val_count=4, val_patch=64)
    b = next(src.val_batches(4))
    from deblur_core.metrics import psnr

    rl = richardson_lucy(b.blur, b.kernels, linear_light=b.linear_light)
    assert psnr(rl, b.sharp).mean() > psnr(b.blur, b.sharp).mean() + 0.5


def _tree(root, n=3):
    for i in range(n):
        p = root / "clip" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(p, np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return root


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_blur_is_deterministic_and_never_writes_inside_input(tmp_path):
    src = _tree(tmp_path / "in")
    before = _digest(src)
    for out in ("a", "b"):
        r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / out), "--kind", "shake", "--seed", "4"])
        assert r.exit_code == 0, r.output
    assert _digest(src) == before
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) == 6
    assert set(a) == {f"{s}/clip/{i:04d}.png" for s in ("blur", "sharp") for i in range(3)}
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "c"), "--kind", "shake", "--seed", "5"])
    assert _digest(tmp_path / "c")["blur/clip/0000.png"] != a["blur/clip/0000.png"]
    # the result is a dataset the trainer reads
    assert open_dataset(f"pairs:{tmp_path / 'a'}").train_batch(0, 2, 32, seed=0).blur.shape == (2, 3, 32, 32)


def test_blur_help_names_every_kind_and_mix():
    from deblur_cli.texts import BLUR_HELP
    from deblur_core.blur import EXTENTS, KINDS, MIXES, SHARP_KINDS

    assert set(EXTENTS) == {*KINDS, *SHARP_KINDS, *MIXES}
    for kind in (*KINDS, *SHARP_KINDS, *MIXES):
        assert f"{kind} (" in BLUR_HELP or f"{kind} |" in BLUR_HELP, kind


@pytest.mark.parametrize("kind", ["long", "nonuniform", "realistic"])
def test_blur_writes_the_long_kinds_and_jpeg_artefacts(tmp_path, kind):
    src = _tree(tmp_path / "in")
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "plain"), "--kind", kind, "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "jpeg"), "--kind", kind, "--jpeg", "30",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    plain = read_image(tmp_path / "plain/blur/clip/0000.png").data
    jpeg = read_image(tmp_path / "jpeg/blur/clip/0000.png").data
    sharp = read_image(src / "clip/0000.png").data
    assert float((plain - sharp).abs().mean()) > 0.01  # blurred
    assert 0 < float((jpeg - plain).abs().mean()) < 0.1  # the same blur, through a JPEG
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "bad"), "--jpeg", "101"])
    assert r.exit_code == 2 and "jpeg_quality" in r.output


def test_blur_refuses_output_inside_input_and_bad_kind(tmp_path):
    src = _tree(tmp_path / "in")
    r = runner.invoke(app, ["blur", str(src), "--out", str(src / "out")])
    assert r.exit_code == 2 and "inside the input" in r.output
    assert not (src / "out").exists()
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "o"), "--kind", "wobble"])
    assert r.exit_code == 2 and "unknown blur kind" in r.output


def test_train_tiny_run_and_usage_errors(tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--model", "nafnet", "--out", str(run), "--steps", "4", "--batch-size", "2",
                            "--patch", "32", "--val-every", "2", "--val-count", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""  # --quiet: no progress bar
    assert {"last.safetensors", "best.safetensors", "train_state.safetensors", "metrics.jsonl", "curve.png",
            "config.json"} <= {p.name for p in run.iterdir()}
    r = runner.invoke(app, ["train", "--model", "nope"])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = runner.invoke(app, ["train", "--loss", "huber", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "loss" in r.output
    r = runner.invoke(app, ["train", "--sharp-share", "1.5", "--out", str(tmp_path / "z")])
    assert r.exit_code == 2 and "sharp_share must be in [0, 1]" in r.output
    r = runner.invoke(app, ["train", "--data", "reds:/nonexistent", "--out", str(tmp_path / "y"), "--quiet"])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_train_draws_its_progress_bar_on_stderr(tmp_path):
    r = runner.invoke(app, ["train", "--model", "resunet1", "--out", str(tmp_path / "run"), "--steps", "2",
                            "--batch-size", "2", "--patch", "32", "--val-every", "2", "--val-count", "2"])
    assert r.exit_code == 0, r.output
    bar = r.stderr.strip().splitlines()[-1]
    assert bar.startswith("train") and "2/2" in bar and "loss " in bar and " dB" in bar and "steps/s" in bar, bar
    assert "validation PSNR" in r.stdout and "validation PSNR" not in r.stderr


def test_eval_scores_every_pair_whole_as_scikit_image_does(tmp_path):
    """pairs:DIR without a val/ split: every pair is scored whole; the blurred input's figures are the mean
    of scikit-image's full-image PSNR and SSIM (the field's protocol), with a row per image in --json."""
    import imageio.v3 as iio
    import numpy as np
    from skimage.filters import gaussian
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    want_psnr, want_ssim = [], []
    for i, (h, w) in enumerate([(70, 90), (64, 100), (81, 77), (96, 96), (60, 130)]):
        sharp = (gaussian(rng.random((h, w, 3)), sigma=1, channel_axis=2) * 255).round().astype(np.uint8)
        blur = (gaussian(sharp / 255, sigma=1.5 + i / 4, channel_axis=2) * 255).round().astype(np.uint8)
        for sub, img in (("sharp", sharp), ("blur", blur)):
            (tmp_path / sub).mkdir(exist_ok=True)
            iio.imwrite(tmp_path / sub / f"{i:03d}.png", img)
        want_psnr.append(peak_signal_noise_ratio(sharp, blur, data_range=255))
        want_ssim.append(structural_similarity(sharp, blur, channel_axis=2, data_range=255, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False))
    csv_path = tmp_path / "scores.csv"
    r = runner.invoke(app, ["eval", "--model", "srn-nolstm", "--data", f"pairs:{tmp_path}", "--device", "cpu",
                            "--json", "--csv", str(csv_path)])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)[0]
    assert got["images"] == 5 and got["protocol"] == "whole images"
    assert got["rows"]["blurred"]["psnr"] == pytest.approx(np.mean(want_psnr), abs=1e-3)
    assert got["rows"]["blurred"]["ssim"] == pytest.approx(np.mean(want_ssim), abs=1e-4)
    assert [row["image"] for row in got["per_image"]] == [f"blur/{i:03d}.png" for i in range(5)]
    assert [row["blurred"]["psnr"] for row in got["per_image"]] == pytest.approx(want_psnr, abs=1e-3)
    assert len(csv_path.read_text().splitlines()) == 1 + 5 * 2  # header, then blurred and model per image
    crops = runner.invoke(app, ["eval", "--model", "srn-nolstm", "--data", f"pairs:{tmp_path}", "--device", "cpu",
                                "--crops", "--val-count", "2", "--json"])
    assert crops.exit_code == 0 and json.loads(crops.output)[0]["protocol"] == "crops"


def test_blur_reports_progress_for_every_image_read_or_not(tmp_path):
    from deblur_core.data.make_pairs import make_blur_pairs

    src = _tree(tmp_path / "in")
    (src / "clip" / "0001.png").write_bytes(b"truncated")
    ticks = []
    report = make_blur_pairs(src, tmp_path / "out", kind="gaussian", progress=lambda p: ticks.append((p.done, p.total)))
    assert ticks == [(1, 3), (2, 3), (3, 3)]
    assert report.written == 2 and [name for name, _ in report.failed] == [os.path.join("clip", "0001.png")]
    r = runner.invoke(app, ["blur", str(src), "--out", str(tmp_path / "cli"), "--kind", "gaussian"])
    assert r.exit_code == 1 and "0001.png" in r.output


def test_commands_without_model_use_the_default_model(tmp_path):
    """batch, eval and export share one default model, a shipped one, used where neither --model nor --weights
    names the network."""
    from deblur_cli.batch_cmd import batch
    from deblur_cli.eval_cmd import evaluate_cmd
    from deblur_cli.main import export
    from deblur_core.defaults import DEFAULT_MODEL
    from deblur_core.inference import load_deblurrer

    for command in (batch, evaluate_cmd, export):  # None: read from --weights, else the default
        assert inspect.signature(command).parameters["model"].default is None
    assert DEFAULT_MODEL in list_models() and pretrained_path(DEFAULT_MODEL) is not None
    deb = load_deblurrer(device="cpu")
    assert deb.name == DEFAULT_MODEL and deb.weights == pretrained_path(DEFAULT_MODEL)
    frames = tmp_path / "frames"
    frames.mkdir()
    write_image(frames / "a.png", torch.rand(3, 24, 32))
    r = runner.invoke(app, ["batch", str(frames), "--device", "cpu", "--quiet", "--json-summary",
                            str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["model"] == DEFAULT_MODEL


@pytest.mark.parametrize("command", [["eval", "--crops", "--val-count", "2"], ["batch", "."]])
def test_tlc_on_a_network_without_whole_frame_pooling_is_a_usage_error(command):
    r = runner.invoke(app, [*command, "--model", "srn", "--tlc", "--device", "cpu"], env={"COLUMNS": "200"})
    assert r.exit_code == 2, r.output
    assert "TLC applies to the nafnet models" in r.output and "Traceback" not in r.output


def test_eval_with_tlc_scores_a_nafnet_model_and_says_so(tmp_path):
    r = runner.invoke(app, ["eval", "--model", "nafnet-cpu", "--tlc", "--crops", "--val-count", "2", "--device", "cpu",
                            "--no-baseline", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["tlc"] is True
