"""Average the weights of several checkpoints of one variant (a "soup" of one run's snapshots).

Neighbouring checkpoints of a fine-tune differ by noise: their mean sits in the middle of that noise and is a
steadier starting point for the next stage than any one of them.

Usage, from the repository root::

    python scripts/average_weights.py OUT.safetensors A.safetensors B.safetensors [...]

``OUT`` keeps the metadata (config, metrics, init) of the checkpoint with the most steps, which the others'
training led up to, and lists every averaged file with its step under ``averaged`` (a run started from ``OUT``
with ``--init`` carries that list into its record); its floating tensors are the element-wise mean, in fp32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deblur_core.checkpoint import load_model, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the averaged checkpoint to write")
    ap.add_argument("checkpoints", type=Path, nargs="+", help="checkpoints of one variant")
    args = ap.parse_args()
    if len(args.checkpoints) < 2:
        ap.error("give at least two checkpoints to average")
    loaded = [load_model(path) for path in args.checkpoints]
    names = {meta["model"] for _, meta in loaded}
    if len(names) > 1:
        ap.error(f"the checkpoints hold different variants ({', '.join(sorted(names))})")
    model, meta = max(loaded, key=lambda pair: pair[1].get("metrics", {}).get("step") or 0)
    n = len(loaded)
    states = [m.state_dict() for m, _ in loaded]
    state = model.state_dict()
    model.load_state_dict({k: (sum(s[k].double() for s in states) / n).to(v.dtype) if v.is_floating_point() else v
                           for k, v in state.items()})
    extra = {"averaged": [{"weights": str(path), "step": m.get("metrics", {}).get("step")}
                          for path, (_, m) in zip(args.checkpoints, loaded)]}
    if meta.get("init"):
        extra["init"] = meta["init"]
    path = save_checkpoint(args.out, model, name=meta["model"], kwargs=meta.get("kwargs"), config=meta.get("config"),
                           metrics=meta.get("metrics"), extra=extra)
    print(f"{path}: the mean of {n} checkpoints of {meta['model']}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
