"""A training run's log: ``config.json``, ``metrics.jsonl`` (one JSON record per logged step) and
``curve.png`` drawn from it, all in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .io.atomic import atomic_path

__all__ = ["open_log", "plot_curve"]


def open_log(run: Path, config: dict[str, Any], resumed_at: int | None) -> None:
    """Create the run directory, record the config, and start metrics.jsonl (or cut it back to the step a
    resumed run continues from)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config, indent=2))
    if resumed_at is None:
        (run / "metrics.jsonl").write_text("")
    else:
        _truncate_log(run / "metrics.jsonl", resumed_at)


def _truncate_log(path: Path, step: int) -> None:
    # a killed run may have logged past its last checkpoint: drop those lines so the curve continues
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def plot_curve(log_path: Path, png: Path) -> None:
    """Training loss and validation PSNR per step, for a person to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    if not rows:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    tr = [r for r in rows if "loss" in r]
    a1.plot([r["step"] for r in tr], [r["loss"] for r in tr])
    a1.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    va = [r for r in rows if "val_psnr" in r]
    if va:
        a2.plot([r["step"] for r in va], [r["val_psnr"] for r in va], marker="o", label="model")
        a2.axhline(va[0]["input_psnr"], color="gray", ls="--", label="blurred input")
        a2.legend()
    a2.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
