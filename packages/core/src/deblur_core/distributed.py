"""Where this process stands in a multi-process run: the one place that reads torchrun's environment.

``torchrun --nproc-per-node N`` starts N copies of a command and tells each its place through ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``. Training and batch deblurring both split work by rank; they ask
:meth:`DistContext.from_env` instead of reading the variables themselves, and use its helpers for what every
rank must agree on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext"]


@dataclass(frozen=True)
class DistContext:
    """This process's rank among ``world_size`` processes, and its GPU index on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistContext:
        """Read torchrun's variables (a single process when they are absent).

        Raises:
            ValueError: the variables are not integers or the rank is outside the world.
        """
        try:
            ctx = cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                      int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError as err:
            raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {err}") from None
        if ctx.world_size < 1 or not 0 <= ctx.rank < ctx.world_size:
            raise ValueError(f"RANK={ctx.rank} is not in 0..{ctx.world_size - 1} (WORLD_SIZE={ctx.world_size})")
        return ctx

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes shared files and speaks to the user."""
        return self.rank == 0

    def device(self, device: str | torch.device) -> str | torch.device:
        """``device`` with this process's own GPU chosen where several processes share a machine's GPUs
        (``auto`` or ``cuda`` under torchrun with CUDA available become ``cuda:LOCAL_RANK``)."""
        if self.world_size > 1 and str(device) in ("auto", "cuda") and torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return device

    def rank_path(self, path: str | Path) -> Path:
        """A per-rank file name: ``summary.json`` -> ``summary.rank1.json`` (unchanged for one process)."""
        path = Path(path)
        return path if self.world_size == 1 else path.with_name(f"{path.stem}.rank{self.rank}{path.suffix}")

    def init_process_group(self, device: torch.device) -> None:
        """Join the process group (NCCL on GPUs, gloo on CPUs); nothing to do for one process."""
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    def max(self, value: float) -> float:
        """The largest of the ranks' values, on every rank: a time limit must stop all ranks at the same step,
        and a learning rate that follows the clock must be the same on all of them."""
        if self.world_size <= 1:
            return value
        t = torch.tensor(float(value), dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def average_buffers(self, model: nn.Module) -> None:
        """Average BatchNorm running statistics over ranks before validating and saving.

        DDP keeps parameters identical, but each rank updates its running statistics from its own batches;
        averaging makes them describe all the data and leaves every rank with the same model.
        """
        if self.world_size <= 1:
            return
        for buf in model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(self.world_size)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
