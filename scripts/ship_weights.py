"""Copy a run's checkpoint as fp16 weights (loaded as fp32): into the package as shipped weights, or into a
committed folder that keeps a CPU run's progress across machines.

Usage, from the repository root::

    python scripts/ship_weights.py runs/srn-mix [--name srn]                # -> deblur_core/weights/srn.safetensors
    python scripts/ship_weights.py runs/nafnet-cpu --which last --to training/nafnet-cpu --stage 1
    python scripts/ship_weights.py training/nafnet-cpu/weights-fp16.safetensors   # a checkpoint file itself

``--to DIR`` writes ``DIR/weights-fp16.safetensors`` (what a later run continues from with ``--init``) and
copies the run's ``config.json`` and ``metrics.jsonl`` as ``DIR/stage<N>-config.json`` and
``DIR/stage<N>-metrics.jsonl``, so the whole curve stays in the repository when the run folder is gone.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from deblur_core.checkpoint import load_model, save_checkpoint

WEIGHTS = Path(__file__).resolve().parent.parent / "packages" / "core" / "src" / "deblur_core" / "weights"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="run directory holding best.safetensors and last.safetensors, or (into "
                    "the package only) one checkpoint file, such as a progress folder's weights-fp16.safetensors")
    ap.add_argument("--name", help="variant name (default: the checkpoint's)")
    ap.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint (default: best)")
    ap.add_argument("--to", type=Path, help="a progress folder instead of the package (see above)")
    ap.add_argument("--stage", type=int, default=1, help="with --to: the stage number of this run's curve")
    args = ap.parse_args()
    if args.run.is_file() and args.to is not None:
        ap.error("--to copies a run directory's config.json and metrics.jsonl: pass the run directory")
    model, meta = load_model(args.run if args.run.is_file() else args.run / f"{args.which}.safetensors")
    name = args.name or meta["model"]
    dest = WEIGHTS / f"{name}.safetensors" if args.to is None else args.to / "weights-fp16.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(dest, model, name=name, kwargs=meta["kwargs"], config=meta["config"],
                           metrics=meta["metrics"], extra={"init": meta["init"]} if meta.get("init") else None,
                           dtype=torch.float16)
    if args.to is not None:
        for f in ("config.json", "metrics.jsonl"):
            shutil.copyfile(args.run / f, args.to / f"stage{args.stage}-{f}")
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB): step {meta['metrics'].get('step')}, "
          f"val PSNR {meta['metrics'].get('val_psnr'):.2f} dB")


if __name__ == "__main__":
    main()
