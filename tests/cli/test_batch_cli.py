"""deblur-cli batch: options, exit codes, messages, resume after SIGKILL, torchrun sharding."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.defaults import DEFAULT_MODEL
from deblur_core.checkpoint import pretrained_path
from deblur_core.io import Image, list_images, read_image, write_image

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _frames(root: Path, n: int, h: int = 40, w: int = 48, clips: int = 1) -> list[str]:
    rels = [f"{c:03d}/{i:08d}.png" for c in range(clips) for i in range(n // clips)]
    g = torch.Generator().manual_seed(0)
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_image(root / rel, Image(data=torch.rand(3, h, w, generator=g)))
    return rels


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in list_images(out)) if out.exists() else []


def test_help_describes_every_option():
    r = runner.invoke(app, ["batch", "--help"], env=WIDE)
    assert r.exit_code == 0
    for opt in ("--model", "--out", "--weights", "--device", "--tile", "--tile-overlap", "--batch-size",
                "--overwrite", "--compare", "--codec", "--crf", "--quiet", "--json-summary"):
        assert opt in r.output
    assert "blur_effect_before" in r.output and "0 sharp .. 1 blurry" in r.output  # what the figure is
    assert "179 megapixels" in r.output and "memory budget" in r.output  # why large frames are refused, how tiled
    assert "batch" in runner.invoke(app, ["--help"]).output


def test_batch_writes_outputs_summary_and_json(tmp_path):
    rels = _frames(tmp_path / "frames", 4, clips=2)
    summary = tmp_path / "summary.json"
    r = runner.invoke(app, ["batch", str(tmp_path / "frames"), "--json-summary", str(summary)], env=WIDE)
    assert r.exit_code == 0, r.output
    assert _outputs(tmp_path / "frames_deblurred") == rels
    # the yellow note appears exactly when the model runs without trained weights
    assert ("untrained" in r.stderr) == (pretrained_path(DEFAULT_MODEL) is None)
    for word in ("done", "skipped", "failed", "wall time", "throughput", "device", "frames/s", "MP/s"):
        assert word in r.stdout
    got = json.loads(summary.read_text())
    assert (got["done"], got["skipped"], got["failed"], got["model"], got["trained"]) == (4, 0, [], DEFAULT_MODEL,
                                                                                       pretrained_path(DEFAULT_MODEL) is not None)
    before, after = got["blur_effect_before"], got["blur_effect_after"]  # the frames' no-reference blur
    assert 0 <= before <= 1 and 0 <= after <= 1
    assert f"blur effect │ {before:.3f} -> {after:.3f} (no reference; 0 sharp .. 1 blurry)" in r.stdout
    r = runner.invoke(app, ["batch", str(tmp_path / "frames"), "--quiet", "--json-summary", str(summary)])
    assert r.exit_code == 0 and r.output == ""
    assert json.loads(summary.read_text())["skipped"] == 4


def test_summary_says_what_the_weights_were_trained_on_and_warns_about_gaussian_only(tmp_path):
    from deblur_core.catalog import model_catalog

    trained_on = {r["name"]: r["trained_on"] for r in model_catalog() if r["weights"]}
    _frames(tmp_path / "in", 2)
    summary = tmp_path / "s.json"
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--model", "nafnet", "--out", str(tmp_path / "a"),
                            "--json-summary", str(summary)], env=WIDE)
    assert r.exit_code == 0, r.output
    assert trained_on["nafnet"] == "default, gaussian blur"
    assert "trained on default, gaussian blur" in r.stdout
    assert "trained on gaussian blur only" in r.stderr and "motion" in r.stderr
    assert json.loads(summary.read_text())["trained_on"] == "default, gaussian blur"
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--model", "srn", "--out", str(tmp_path / "b")], env=WIDE)
    assert r.exit_code == 0, r.output
    assert f"trained on {trained_on['srn']}" in r.stdout and "mix blur" in trained_on["srn"]
    assert "gaussian blur only" not in r.stderr


def test_usage_errors_exit_2_and_say_what_to_do(tmp_path):
    _frames(tmp_path / "in", 1)
    cases = [
        (["batch", str(tmp_path / "missing")], "does not exist"),
        (["batch", str(tmp_path / "in"), "--model", "nope"], "unknown model"),
        (["batch", str(tmp_path / "in"), "--out", str(tmp_path / "in" / "out")], "outside it"),
        (["batch", str(tmp_path / "in"), "--tile", "64", "--tile-overlap", "32"], "use a tile of at least 65"),
        (["batch", str(tmp_path / "in"), "--weights", str(tmp_path / "none.safetensors")], "none.safetensors"),
    ]
    for args, message in cases:
        r = runner.invoke(app, args, env=WIDE)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    assert not (tmp_path / "in" / "out").exists()


def test_unwritable_out_and_json_summary_are_usage_errors_before_any_work(tmp_path, monkeypatch):
    _frames(tmp_path / "in", 2)
    (tmp_path / "taken.txt").write_text("a file")
    (tmp_path / "folder").mkdir()
    cases = [
        (["--out", str(tmp_path / "taken.txt")], "is a file, not a folder"),
        (["--json-summary", str(tmp_path / "folder")], "cannot write the JSON summary"),
        (["--json-summary", str(tmp_path / "taken.txt" / "s.json")], "cannot write the JSON summary"),
    ]
    for args, message in cases:
        r = runner.invoke(app, ["batch", str(tmp_path / "in"), *args], env=WIDE)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, (args, r.output)
        assert not isinstance(r.exception, OSError)
    assert not (tmp_path / "in_deblurred").exists()  # refused before the work
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "ro" in self.parts:
            raise OSError(30, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--out", str(tmp_path / "ro" / "out")], env=WIDE)
    assert r.exit_code == 2 and "Read-only file system" in r.output and "--out" in r.output


def test_a_summary_that_fails_at_the_end_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    _frames(tmp_path / "in", 2)

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", disk_full)
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--json-summary", str(tmp_path / "s.json")], env=WIDE)
    assert r.exit_code == 1 and not isinstance(r.exception, OSError)
    assert "cannot write the JSON summary" in r.stderr and "No space left on device" in r.stderr
    assert "done" in r.stdout  # the summary table is still shown
    assert len(_outputs(tmp_path / "in_deblurred")) == 2


def test_empty_folder_says_so_and_exits_1(tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["batch", str(tmp_path / "empty")], env=WIDE)
    assert r.exit_code == 1 and "no images found" in r.output


def test_corrupt_and_truncated_frames_are_named_and_exit_1(tmp_path):
    src = tmp_path / "in"
    _frames(src, 3)
    clip = src / "000"
    (clip / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    whole = (clip / "00000001.png").read_bytes()
    (clip / "truncated.png").write_bytes(whole[: len(whole) // 3])
    r = runner.invoke(app, ["batch", str(src), "--out", str(tmp_path / "out")], env=WIDE)
    assert r.exit_code == 1
    assert "corrupt.png" in r.stderr and "truncated.png" in r.stderr and "2 failed" in r.stderr
    assert _outputs(tmp_path / "out") == [f"000/{i:08d}.png" for i in range(3)]


def test_video_keeps_its_sound_and_a_truncated_one_is_named(tmp_path, video_with_audio):
    clip = tmp_path / "clip.mp4"
    video_with_audio(clip, frames=6)
    r = runner.invoke(app, ["batch", str(clip), "--model", "srn-nolstm", "--crf", "23"], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "audio stream 1 (aac) copied without re-encoding" in r.stderr
    r = runner.invoke(app, ["batch", str(clip), "--model", "srn-nolstm"], env=WIDE)
    assert r.exit_code == 0 and "--overwrite redoes it" in r.stderr
    whole = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    r = runner.invoke(app, ["batch", str(tmp_path / "cut.mp4"), "--model", "srn-nolstm"], env=WIDE)
    assert r.exit_code == 1
    assert "cut.mp4: truncated" in r.stderr and "pyav" not in r.output
    r = runner.invoke(app, ["batch", str(clip), "--out", str(tmp_path / "x.mp4"), "--codec", "nope"], env=WIDE)
    assert r.exit_code == 2 and "unknown video codec 'nope'" in r.output


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = _frames(src, 30, h=128, w=160, clips=2)
    # the threads of this process, which resumes the run: srn's convolutions round differently on 1 and 2
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, "-m", "deblur_cli", "batch", str(src), "--out", str(out), "--batch-size", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_outputs(out)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()  # killed mid-way, not finished
    first = _outputs(out)
    assert 4 <= len(first) < len(rels)
    for rel in first:  # atomic writes: whatever exists decodes completely
        assert read_image(out / rel).data.shape == (3, 128, 160)
    mtimes = {rel: (out / rel).stat().st_mtime_ns for rel in first}
    summary = tmp_path / "s.json"
    r = runner.invoke(app, ["batch", str(src), "--out", str(out), "--quiet", "--json-summary", str(summary)])
    assert r.exit_code == 0, r.output
    got = json.loads(summary.read_text())
    assert (got["skipped"], got["done"]) == (len(first), len(rels) - len(first))  # finished frames not redone
    assert _outputs(out) == sorted(rels)
    assert all((out / rel).stat().st_mtime_ns == t for rel, t in mtimes.items())
    # frames one at a time, killed, then resumed in batches: the bytes of one uninterrupted run
    whole = tmp_path / "whole"
    assert runner.invoke(app, ["batch", str(src), "--out", str(whole), "--quiet"]).exit_code == 0
    assert all((out / rel).read_bytes() == (whole / rel).read_bytes() for rel in rels)


@pytest.mark.slow
def test_torchrun_two_ranks_shard_the_frames(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = _frames(src, 9, clips=3)
    summary = tmp_path / "s.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "deblur_cli", "batch", str(src), "--out", str(out), "--quiet", "--json-summary", str(summary)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ranks = [json.loads((tmp_path / f"s.rank{i}.json").read_text()) for i in (0, 1)]
    assert [(s["rank"], s["world_size"], s["done"]) for s in ranks] == [(0, 2, 5), (1, 2, 4)]
    assert _outputs(out) == sorted(rels)  # union complete; 5 + 4 = 9 done, so no frame twice


def test_a_full_disk_stops_the_run_in_one_line_and_exits_1(tmp_path, monkeypatch):
    from helpers import disk_full_after

    _frames(tmp_path / "in", 12)
    out = tmp_path / "out"
    disk_full_after(monkeypatch, writes=3)
    r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--model", "srn-nolstm", "--out", str(out), "--quiet"],
                      env=WIDE)
    assert r.exit_code == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: No space left on device in '{out}'") and "3 of 12 frames written" in line
    assert len(_outputs(out)) == 3


def test_a_frame_whose_output_holds_nan_is_named_and_exits_1(tmp_path, monkeypatch):
    from torch import nn

    from deblur_core import inference

    class NaNForBrightFrames(nn.Module):
        def forward(self, x):
            return x if x.mean() < 0.5 else x * float("nan")

    def load(name, weights=None, **kwargs):
        return inference.Deblurrer(model=NaNForBrightFrames(), name=name, device=torch.device("cpu"), weights=None)

    root = tmp_path / "in"
    root.mkdir()
    for name, level in (("dark.png", 0.2), ("bright.png", 0.8)):
        write_image(root / name, Image(data=torch.full((3, 16, 16), level)))
    monkeypatch.setattr(inference, "load_deblurrer", load)
    r = runner.invoke(app, ["batch", str(root), "--out", str(tmp_path / "out"), "--quiet"], env=WIDE)
    assert r.exit_code == 1
    assert "failed: bright.png: the network's output holds NaN though its weights are finite" in r.stderr
    assert _outputs(tmp_path / "out") == ["dark.png"]


def test_rank_and_world_size_set_by_hand_shard_a_folder_without_torchrun(tmp_path):
    # batch's ranks never talk to each other: the variables alone split the work, e.g. over machines
    rels = _frames(tmp_path / "in", 5)
    out = tmp_path / "out"
    done = []
    for rank in (0, 1):
        summary = tmp_path / "s.json"
        r = runner.invoke(app, ["batch", str(tmp_path / "in"), "--model", "srn-nolstm", "--out", str(out), "--quiet",
                                "--json-summary", str(summary)], env={"RANK": str(rank), "WORLD_SIZE": "2"})
        assert r.exit_code == 0, r.output
        done.append(json.loads((tmp_path / f"s.rank{rank}.json").read_text())["done"])
    assert done == [3, 2] and _outputs(out) == rels


def test_batch_tta_averages_passes_and_refuses_other_counts(tmp_path):
    """--tta 8 runs the shipped network on the 8 symmetries of each frame: outputs differ from one pass."""
    src = tmp_path / "frames"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    write_image(src / "a.png", torch.rand(3, 40, 56, generator=g))
    one = runner.invoke(app, ["batch", str(src), "--model", "nafnet", "--out", str(tmp_path / "one"), "--quiet"])
    eight = runner.invoke(app, ["batch", str(src), "--model", "nafnet", "--out", str(tmp_path / "eight"), "--tta", "8",
                                "--quiet"])
    assert one.exit_code == 0 and eight.exit_code == 0, one.output + eight.output
    a, b = read_image(tmp_path / "one" / "a.png").data, read_image(tmp_path / "eight" / "a.png").data
    assert a.shape == b.shape and not torch.equal(a, b)
    bad = runner.invoke(app, ["batch", str(src), "--model", "nafnet", "--out", str(tmp_path / "bad"), "--tta", "3"])
    assert bad.exit_code == 2 and "tta must be one of 1, 2, 4, 8" in bad.output
    assert not (tmp_path / "bad").exists()
