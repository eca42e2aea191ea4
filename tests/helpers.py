"""What several test files (and the benchmarks, through ``benchmarks/harness.py``) share.

``tests/`` is on ``sys.path`` while the tests run (pytest's default ``prepend`` import mode puts the
directory of ``tests/conftest.py`` there), so a test imports this module as ``helpers``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

__all__ = ["planned_crop", "randomise", "random_deblurrer", "random_checkpoint", "poisoned_copy", "disk_full_error",
           "disk_full_after", "assert_output_of", "require_zoo"]


def randomise(model: nn.Module, seed: int = 0, std: float = 0.01) -> nn.Module:
    """Give the parameters that start at zero (output layers, residual scales, norm biases) random values
    of standard deviation ``std``, in place, and return ``model``.

    Every network here starts as the identity: a test or benchmark that compares two paths, or a checkpoint
    that must differ from an untrained one, needs the whole network to compute.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_((torch.randn(p.shape, generator=g) * std).to(p.device, p.dtype))
    return model


def planned_crop(images: list[torch.Tensor], plan, j: int, full: int, sharp: torch.Tensor) -> torch.Tensor:
    """Sample ``j``'s sharp crop with its context (1, C, full, full), rebuilt from a training plan
    (``deblur_core.data.batches.Plan``): of its two candidate crops, flipped as planned, the one whose centre is
    the batch's sharp target ``sharp`` (1, C, patch, patch). Fails the test when neither matches."""
    import pytest

    m = (full - sharp.shape[-1]) // 2
    n = plan.image.numel() // 2
    for c in (j, j + n):
        i, y, x = int(plan.image[c]), int(plan.y[c]), int(plan.x[c])
        crop = (images[i][:, y : y + full, x : x + full][None] * 255).round() / 255
        if plan.flip_h[j]:
            crop = crop.flip(-1)
        if plan.flip_v[j]:
            crop = crop.flip(-2)
        if torch.allclose(crop[..., m:-m, m:-m], sharp, atol=1e-6):
            return crop
    pytest.fail("no candidate crop matches the sharp target")


def random_deblurrer(name: str = "srn-nolstm", *, precision: str = "fp32", seed: int = 0):
    """``load_deblurrer(name)`` on the CPU, initialised from ``seed`` and :func:`randomise`d: a network that
    changes every image, so that a pipeline that skipped it, or handed its input back, fails."""
    from deblur_core.inference import load_deblurrer

    with torch.random.fork_rng(devices=[]):  # the layers' own initialisation too, or a test turns flaky
        torch.manual_seed(seed)
        deb = load_deblurrer(name, device="cpu", precision=precision)
    randomise(deb.model, seed=seed)
    return deb


def random_checkpoint(path: Path, name: str = "srn-nolstm", seed: int = 0) -> Path:
    """A checkpoint at ``path`` of variant ``name``, initialised from ``seed`` and :func:`randomise`d, for what
    loads weights from a file (the CLI, the demo, ``deblur_image(weights=...)``)."""
    from deblur_core.checkpoint import save_checkpoint
    from deblur_core.models import get_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_model(name)
    return save_checkpoint(path, randomise(model, seed=seed), name=name)


def poisoned_copy(src: Path, dst: Path, tensor: str | None = None, value: float = float("nan")) -> str:
    """Copy the checkpoint ``src`` to ``dst`` with one value of one tensor (``tensor``, default: the file's
    second floating tensor) set to ``value``, as a diverged training run leaves it; returns the tensor's name."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(src))
    tensor = tensor or [k for k, v in tensors.items() if v.is_floating_point()][1]
    tensors[tensor].view(-1)[tensors[tensor].numel() // 2] = value
    save_file(tensors, str(dst), metadata=metadata)
    return tensor


def disk_full_error(path):
    """What a writer raises on a full disk: an ImageWriteError raised from ``OSError(ENOSPC)``."""
    import errno

    from deblur_core.errors import ImageWriteError

    cause = OSError(errno.ENOSPC, "No space left on device")
    err = ImageWriteError(path, f"OSError: {cause}")
    err.__cause__ = cause
    return err


def disk_full_after(monkeypatch, writes: int) -> dict:
    """Make batch's image writer fail with ENOSPC from its ``writes + 1``-th call on, leaving a partial file
    as a real full disk does; returns its count of calls (``writes``) and when the first one failed
    (``failed_at``, from ``time.monotonic``)."""
    import time

    from deblur_core.io import write_image as real

    state = {"writes": 0, "failed_at": None}

    def write(path, image):
        state["writes"] += 1
        if state["writes"] <= writes:
            return real(path, image)
        Path(path).write_bytes(b"\x89PNG half a frame")
        state["failed_at"] = state["failed_at"] or time.monotonic()
        raise disk_full_error(path)

    monkeypatch.setattr("deblur_core.batch.folder.write_image", write)
    return state


def assert_output_of(got: Tensor, deb, x: Tensor, bit_depth: int | None = None, **kwargs) -> None:
    """Assert that ``got`` (C, H, W) is what Deblurrer ``deb`` makes of ``x`` (C, H, W; ``kwargs`` go to the
    call), to within one level of ``bit_depth`` (None: float rounding), and that the network changed ``x``."""
    tolerance = 1e-5 if bit_depth is None else 1 / (2**bit_depth - 1) + 1e-6
    want = deb(x[None], **kwargs)[0]
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= tolerance
    assert (got - x).abs().mean().item() > 2 * tolerance, "the output is the input: the network did not run"


def require_zoo(module: str = "spandrel"):
    """Import ``module`` (spandrel, or spandrel_extra_arches), or skip the test: without it (a plain install)
    there is nothing to test. ``DEBLUR_REQUIRE_ZOO=1`` (set by CI's zoo run) turns the skip into a failure."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("DEBLUR_REQUIRE_ZOO") == "1":
            pytest.fail(f"DEBLUR_REQUIRE_ZOO=1 but {module} does not import: {e}")
        pytest.skip(f"{module} is not installed (the zoo extra)")
