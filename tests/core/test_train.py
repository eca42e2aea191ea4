"""Training: the loop learns, resumes exactly after SIGKILL, and runs under torchrun with DDP."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deblur_core.checkpoint import load_model
from deblur_core.errors import DeblurError
from deblur_core.train import TrainConfig, _compile_mode, _lr_at, load_run_config, train

CLI = [sys.executable, "-m", "deblur_cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="huber")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        TrainConfig(model="nope")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")


def test_config_names_its_run_after_the_model():
    assert TrainConfig(model="nafnet").out == "runs/nafnet"
    assert TrainConfig(model="nafnet", out="elsewhere").out == "elsewhere"


def test_resume_keeps_the_runs_settings_but_steps_and_this_calls_time_limit(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = TrainConfig(model="srn-nolstm", out=str(run), steps=300, lr=1e-3, max_minutes=5.0)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(saved)))
    (run / "train_state.safetensors").write_bytes(b"")  # its presence marks a run; train() reads it
    moved = tmp_path / "moved"
    run.rename(moved)  # a run directory that was moved resumes where it now is
    cfg = load_run_config(moved)
    assert (cfg.out, cfg.steps, cfg.lr, cfg.max_minutes) == (str(moved), 300, 1e-3, 0.0)
    cfg = load_run_config(moved, steps=500, max_minutes=2.5)
    assert (cfg.steps, cfg.max_minutes, cfg.model) == (500, 2.5, "srn-nolstm")
    assert cfg.precision == "auto"  # the run's own ...
    assert load_run_config(moved, precision="fp32").precision == "fp32"  # ... unless this machine says otherwise
    assert not load_run_config(moved).compile and load_run_config(moved, compile=True).compile  # the same


@pytest.mark.parametrize("has_amx, chosen", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_chosen_once_and_stored(tmp_path, amx, has_amx, chosen):
    """A run started with --precision auto records what auto chose on its CPU, so --resume on another kind
    of CPU continues in the same arithmetic."""
    amx(has_amx)
    run = tmp_path / "run"
    train(TrainConfig(model="nafnet", blur="gaussian", out=str(run), steps=2, batch_size=2, patch=32, val_every=2,
                      val_count=1, val_patch=32, device="cpu"))
    assert json.loads((run / "config.json").read_text())["precision"] == chosen
    amx(not has_amx)  # the other kind of CPU
    assert load_run_config(run).precision == chosen


def test_compile_without_a_cpp_compiler_says_so_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr("deblur_core.train.shutil.which", lambda name: None)
    with pytest.raises(DeblurError, match="needs a C\\+\\+ compiler"):
        train(TrainConfig(model="nafnet", out=str(tmp_path / "run"), steps=2, batch_size=2, patch=32,
                          val_count=1, val_patch=32, device="cpu", compile=True))
    assert not (tmp_path / "run" / "train_state.safetensors").exists()


def test_compiled_training_replays_cuda_graphs_on_one_gpu_only():
    """CUDA graphs where a step's many small kernels wait on their launches and the crops keep one shape (one
    GPU); not under DistributedDataParallel, and not on a CPU, which has no graphs to replay."""
    assert _compile_mode(torch.device("cuda"), world_size=1) == "reduce-overhead"
    assert _compile_mode(torch.device("cuda", 1), world_size=2) == "default"
    assert _compile_mode(torch.device("cpu"), world_size=1) == "default"


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    """--compile trains the same network to float rounding: the same losses step by step and the same
    weights at the end (fp32, nafnet's channels_last training path, through torch.compile's C++ kernels)."""
    from torch._dynamo.utils import counters

    runs = {}
    counters.clear()
    for compiled in (False, True):
        run = tmp_path / f"compiled-{compiled}"
        train(TrainConfig(model="nafnet", blur="gaussian", out=str(run), steps=4, batch_size=2, patch=32,
                          lr=1e-3, warmup=1, loss="l1", fft_loss=0.1, optimizer="adamw", weight_decay=1e-4,
                          log_every=1, val_every=4, val_count=2, val_patch=32, precision="fp32", compile=compiled))
        runs[compiled] = ([r["loss"] for r in _log(run) if "loss" in r], load_file(str(run / "last.safetensors")))
    assert counters["stats"]["unique_graphs"] >= 1  # the second run did go through the compiler
    (eager_loss, eager_w), (comp_loss, comp_w) = runs[False], runs[True]
    assert len(eager_loss) == 4 and comp_loss == pytest.approx(eager_loss, rel=1e-4)
    assert eager_loss[-1] != eager_loss[0]  # it trained: the weights moved between the steps
    assert eager_w.keys() == comp_w.keys()  # the plain module's names, not the compiled wrapper's
    for k in eager_w:
        torch.testing.assert_close(comp_w[k], eager_w[k], rtol=1e-3, atol=1e-5)



@pytest.mark.parametrize("data", ["default", "pairs"])
def test_batches_made_ahead_train_the_weights_of_batches_made_in_turn(tmp_path, monkeypatch, data):
    """Made in a background thread during the step (as on a GPU), the batches are the same, bit for bit."""
    import deblur_core.train as train_module

    if data == "pairs":  # batches read from disk and copied over, rather than made on the device
        from deblur_core.io import write_image

        for i in range(4):
            for side in ("blur", "sharp"):
                (tmp_path / "pairs" / side).mkdir(parents=True, exist_ok=True)
                write_image(tmp_path / "pairs" / side / f"{i}.png", torch.rand(3, 48, 48))
    spec = "default" if data == "default" else f"pairs:{tmp_path / 'pairs'}"
    weights = {}
    for ahead in (False, True):
        monkeypatch.setattr(train_module, "_makes_ahead", lambda device: ahead)
        run = tmp_path / f"ahead-{ahead}"
        train(TrainConfig(model="srn-small", data=spec, blur="mix", out=str(run), steps=3, batch_size=2, patch=32,
                          log_every=1, val_every=3, val_count=2, val_patch=32, precision="fp32", seed=5))
        weights[ahead] = load_file(str(run / "last.safetensors"))
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in weights[False])

def test_decay_by_time_decays_over_the_minutes_when_the_steps_would_not(tmp_path):
    """A run whose --steps are far more than its --max-minutes hold: by time, its learning rate still falls
    to the floor before the limit stops it; by steps alone it stays at the peak."""
    cfg = TrainConfig(model="srn-nolstm", steps=10**6, lr=1e-3, lr_min=1e-5, warmup=2, max_minutes=1.0,
                      decay_by_time=True)
    assert _lr_at(cfg, 5, 0.0) == pytest.approx(1e-3, rel=1e-3)
    assert _lr_at(cfg, 5, 30.0) == pytest.approx(0.5 * (1e-3 + 1e-5))  # half the minutes: half way down
    assert _lr_at(cfg, 5, 90.0) == pytest.approx(1e-5)  # past them: the floor, not back up
    assert _lr_at(dataclasses.replace(cfg, decay_by_time=False), 5, 90.0) == pytest.approx(1e-3, rel=1e-3)
    assert _lr_at(cfg, 0, 90.0) == pytest.approx(5e-4)  # warm-up counts steps either way
    run = tmp_path / "run"
    # 6 s in fp32: enough steps even on a busy machine, whose first steps can take a second or more
    train(TrainConfig(model="srn-nolstm", out=str(run), steps=10**6, batch_size=2, patch=32, lr=1e-3, warmup=1,
                      max_minutes=0.1, decay_by_time=True, log_every=1, val_every=10**6, val_count=1, val_patch=32,
                      precision="fp32"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert len(lrs) >= 3 and all(a >= b for a, b in zip(lrs, lrs[1:]))  # only ever down
    assert lrs[-1] < 0.3 * 1e-3  # most of the way down after 6 s of a million-step schedule


@pytest.mark.slow
def test_short_srn_run_learns_on_default_data(tmp_path):
    """A small budget on the bundled photographs: validation loss falls and PSNR rises above the input."""
    # 8 crops of 128 px: smaller crops make the mean PSNR hinge on a few near-flat crops (sky at ~50 dB)
    # every crop blurred (no sharp share): 300 steps learn deblurring, not yet the identity beside it
    cfg = TrainConfig(model="srn", data="default", blur="gaussian", out=str(tmp_path / "run"), steps=300,
                      batch_size=8, patch=64, lr=1e-3, warmup=10, val_every=150, val_count=8, val_patch=128,
                      log_every=10, sharp_share=0.0)
    res = train(cfg)
    log = _log(tmp_path / "run")
    vals = [r for r in log if "val_psnr" in r]
    assert [r["step"] for r in vals] == [150, 300]
    s = res.summary
    assert s["val_psnr"] > s["input_psnr"] + 0.3, s
    assert vals[-1]["val_mse"] < vals[0]["val_mse"]
    losses = [r["loss"] for r in log if "loss" in r]
    assert sum(losses[-3:]) < sum(losses[:3])
    model, meta = load_model(tmp_path / "run" / "best.safetensors")
    assert meta["model"] == "srn" and meta["metrics"]["val_psnr"] == pytest.approx(max(r["val_psnr"] for r in vals))
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000


def _last_step(run: Path) -> int:
    try:
        return max((r["step"] for r in _log(run)), default=0)
    except (OSError, json.JSONDecodeError):  # the file is being written
        return 0


def _train_cmd(run: Path, steps: int, *extra: str) -> list[str]:
    return [*CLI, "train", "--model", "srn-nolstm", "--data", "default", "--blur", "gaussian", "--out", str(run),
            "--steps", str(steps), "--batch-size", "2", "--patch", "32", "--val-every", "10", "--val-count", "2",
            "--seed", "3", "--quiet", *extra]


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_loss_curve(tmp_path):
    steps = 60
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_train_cmd(ref, steps), check=True, env=ENV, capture_output=True)
    proc = subprocess.Popen(_train_cmd(run, steps), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "train_state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once it has checkpointed at least once and moved on
        if state.exists() and _last_step(run) > 25:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in _log(run))
    assert killed_at < steps, "the run finished before it could be killed"
    # every file a reader can see is complete: the checkpoints load
    for name in ("last.safetensors", "best.safetensors", "train_state.safetensors"):
        load_file(str(run / name))
    assert not list(run.glob(".*.tmp"))
    subprocess.run([*CLI, "train", "--resume", str(run), "--quiet"], check=True, env=ENV, capture_output=True)
    got, want = _log(run), _log(ref)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(got, want):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-7), (a, b)
    # the wall-time column continues after the resume instead of restarting at zero
    elapsed = [r["elapsed_s"] for r in got]
    assert elapsed == sorted(elapsed), elapsed
    assert load_run_config(run).steps == steps


def test_progress_sees_the_start_and_every_logged_step_in_order(tmp_path):
    """train() reports through its callback: the step it starts at, then each metrics.jsonl line's step with
    its loss (None on a validation-only line) and the last validation PSNR; a resumed run starts at its step."""
    cfg = TrainConfig(model="resunet1", data="default", blur="gaussian", out=str(tmp_path / "run"), steps=5,
                      batch_size=2, patch=32, val_every=3, val_count=2, log_every=2)
    calls = []
    train(cfg, progress=lambda p: calls.append((p.done, p.total, p.loss, p.val_psnr)))
    val, want = None, [(0, 5, None, None)]
    for r in _log(tmp_path / "run"):
        val = r.get("val_psnr", val)
        want.append((r["step"], 5, r.get("loss"), val))
    assert [s for s, *_ in want] == [0, 2, 3, 4, 5]
    assert calls == want
    calls.clear()
    train(load_run_config(tmp_path / "run", steps=6), resume=True,
          progress=lambda p: calls.append((p.done, p.total, p.loss, p.val_psnr)))
    assert [c[:2] for c in calls] == [(5, 6), (6, 6)] and calls[0][2:] == (None, None)


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    r = subprocess.run([*CLI, "train", "--resume", str(tmp_path)], env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and "cannot resume" in r.stderr


DDP_WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    from safetensors.torch import save_file
    from deblur_core.train import TrainConfig, train
    base = sys.argv[1]
    rank = int(os.environ["RANK"])
    # each rank is told its own run directory: any file under rank1/ would mean rank 1 wrote something
    # a learning rate that follows the clock (--decay-by-time): equal on both ranks only if they share one clock
    cfg = TrainConfig(model="resunet1", data="default", blur="gaussian", out=f"{base}/rank{rank}", steps=6,
                      batch_size=2, patch=32, val_every=3, val_count=2, log_every=1, device="cpu", warmup=1,
                      max_minutes=1.0, decay_by_time=True)
    res = train(cfg)
    save_file({k: v.contiguous() for k, v in res.model.state_dict().items()}, f"{base}/weights{rank}.safetensors")
    """
)


@pytest.mark.slow
def test_torchrun_ddp_two_ranks_stay_in_sync_and_only_rank0_writes(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(worker), str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = load_file(str(tmp_path / "weights0.safetensors")), load_file(str(tmp_path / "weights1.safetensors"))
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    init = __import__("deblur_core.models", fromlist=["get_model"]).get_model("resunet1").state_dict()
    assert any(not torch.equal(w0[k], init[k]) for k in w0 if w0[k].is_floating_point())  # it trained
    assert (tmp_path / "rank0" / "last.safetensors").exists()
    assert not (tmp_path / "rank1").exists()
    assert [r["step"] for r in _log(tmp_path / "rank0") if "loss" in r] == list(range(1, 7))


def test_init_fine_tunes_from_weights_and_records_their_training(tmp_path):
    """--init starts from a checkpoint's weights (not a fresh init) and carries its training record along."""
    first = TrainConfig(model="srn-nolstm", data="default", blur="gaussian", out=str(tmp_path / "a"), steps=4,
                        batch_size=2, patch=32, val_every=4, val_count=2)
    a = train(first).model
    zero = TrainConfig(**{**first.__dict__, "out": str(tmp_path / "b"), "steps": 1, "lr": 1e-12, "warmup": 1,
                          "init": str(tmp_path / "a" / "last.safetensors")})
    b = train(zero).model
    # with a vanishing learning rate one step leaves the weights where --init put them
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    _, meta = load_model(tmp_path / "b" / "last.safetensors")
    assert meta["config"]["init"].endswith("last.safetensors")
    assert [e["step"] for e in meta["init"]] == [4] and meta["init"][0]["config"]["steps"] == 4
    with pytest.raises(DeblurError, match="holds weights for 'srn-nolstm'"):
        train(TrainConfig(model="resunet1", out=str(tmp_path / "c"), steps=1, batch_size=2, patch=32,
                          init=str(tmp_path / "a" / "last.safetensors")))
