"""Copy a run's best checkpoint into the package as shipped weights (fp16 storage, loaded as fp32).

Usage, from the repository root: ``python scripts/ship_weights.py runs/srn-mix [--name srn]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deblur_core.checkpoint import load_model, save_checkpoint

WEIGHTS = Path(__file__).resolve().parent.parent / "packages" / "core" / "src" / "deblur_core" / "weights"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path, help="run directory holding best.safetensors")
    ap.add_argument("--name", help="variant name (default: the checkpoint's)")
    args = ap.parse_args()
    model, meta = load_model(args.run / "best.safetensors")
    name = args.name or meta["model"]
    path = save_checkpoint(WEIGHTS / f"{name}.safetensors", model, name=name, kwargs=meta["kwargs"],
                           config=meta["config"], metrics=meta["metrics"],
                           extra={"init": meta["init"]} if meta.get("init") else None, dtype=torch.float16)
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB): step {meta['metrics'].get('step')}, "
          f"val PSNR {meta['metrics'].get('val_psnr'):.2f} dB")


if __name__ == "__main__":
    main()
