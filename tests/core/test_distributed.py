"""deblur_core.distributed: the one reader of torchrun's environment."""

from pathlib import Path

import pytest

from deblur_core.distributed import DistContext


def test_a_single_process_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = DistContext.from_env()
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    assert ctx.rank_path("out/summary.json") == Path("out/summary.json")
    assert ctx.device("auto") == "auto" and ctx.max(2.5) == 2.5


def test_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = DistContext.from_env()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    assert ctx.rank_path("out/summary.json") == Path("out/summary.rank3.json")
    assert ctx.device("cpu") == "cpu"  # only GPUs are shared out by local rank


@pytest.mark.parametrize("env", [{"RANK": "4", "WORLD_SIZE": "4"}, {"RANK": "x"}, {"WORLD_SIZE": "0"}])
def test_a_broken_environment_is_named(monkeypatch, env):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="RANK|WORLD_SIZE"):
        DistContext.from_env()
