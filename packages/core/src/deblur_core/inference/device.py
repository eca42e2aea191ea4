"""Where a network runs, and how much memory its activations may take there."""

from __future__ import annotations

import torch

__all__ = ["CPU_MEMORY_BUDGET", "resolve_device", "memory_budget"]

# Memory: a batch of whole frames, or one tile, may take this many bytes of network activations. On a CPU a
# fixed budget: with it a 1280x720 frame of srn runs whole, and the whole run on an 8K frame stays under
# 4 GB (the frame's own copies take about 50 bytes a pixel besides). On a GPU, half its memory.
CPU_MEMORY_BUDGET = 1536 * 2**20


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return dev


def memory_budget(device: str | torch.device) -> int:
    """Bytes of network activations one batch (or tile) may take on ``device``: :data:`CPU_MEMORY_BUDGET` on a
    CPU, half of a GPU's memory.

    A property of the machine, not of the moment: whether a frame runs in tiles changes its output, which must
    not depend on what else holds memory at the time (a rerun would not reproduce the run's bytes).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_properties(dev).total_memory // 2
    return CPU_MEMORY_BUDGET
