"""Which part of a training recipe teaches a network to change the levels of sharp frames?

Two measurements, each with one part of the recipe switched off at a time:

1. **Pairs**: the mean signed difference target - input of many training batches, over the whole crop and
   where the input is dark or bright. A network trained with an L1/L2 loss learns what the target is on
   average given the input, so a part of the recipe that makes targets darker than their inputs teaches
   darkening. No training needed.
2. **Small runs**: the light SRN (``srn-small``) trained from the identity for ``--steps`` steps with each
   variant, then run on unblurred validation crops (``--blur none``) and on gaussian-blurred ones: the level
   shift and PSNR it gives them.

Usage, from the repository root (needs ``data/photos``, see ``scripts/build_photos.py``)::

    python scripts/darkening_probe.py --out runs/darkening-probe --steps 600

Writes ``OUT/probe.json`` and prints a Markdown table of both measurements.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

import deblur_core.data.batches as batches
from deblur_core.data import open_dataset
from deblur_core.evaluate import evaluate
from deblur_core.train import TrainConfig, train

# the recipe srn was trained with on a GPU (MODELS.md), at a CPU's crop and batch size
RECIPE = dict(model="srn-small", data="folder:data/photos", blur="mix", batch_size=16, patch=64, lr=1e-3, warmup=50,
              loss="l1", fft_loss=0.1, optimizer="adamw", weight_decay=1e-4, noise=0.01, saturate=0.1, rotate=True,
              precision="bf16", sharp_share=0.0, val_every=100000, val_count=8, val_patch=64, log_every=50)
VARIANTS = {
    "srn's recipe": {},
    "no --saturate": {"saturate": 0.0},
    "no --noise": {"noise": 0.0},
    "no FFT loss": {"fft_loss": 0.0},
    "fp32, not bf16": {"precision": "fp32"},
    "video blur on sRGB values, not linear light": {"linear_light": False},
    "with --sharp-share 0.1": {"sharp_share": 0.1},
}


class _SrgbOnly:
    """Within the block, training batches blur every sample on the sRGB values (the video kind included)."""

    def __init__(self, active: bool) -> None:
        self.active, self.draw = active, batches.draw_blur

    def __enter__(self) -> None:
        def in_srgb(*args, **kwargs):
            draw = self.draw(*args, **kwargs)
            return dataclasses.replace(draw, linear_light=torch.zeros_like(draw.linear_light))

        if self.active:
            batches.draw_blur = in_srgb

    def __exit__(self, *exc) -> None:
        batches.draw_blur = self.draw


def pair_bias(recipe: dict, steps: int = 40) -> dict[str, float]:
    """Mean target - input in levels of 255: over all pixels, and where the input is dark (< 0.15) or
    bright (> 0.85), over ``steps`` training batches of ``recipe`` (in linear light where the recipe says)."""
    with _SrgbOnly(not recipe.get("linear_light", True)):
        return _pair_bias(recipe, steps)


def _pair_bias(recipe: dict, steps: int) -> dict[str, float]:
    src = open_dataset(recipe["data"], blur=recipe["blur"])
    make = src.device_batches(32, 128, seed=1, noise=recipe["noise"], saturate=recipe["saturate"],
                              rotate=recipe["rotate"], sharp_share=recipe["sharp_share"])
    sums = {"all": [0.0, 0], "dark": [0.0, 0], "bright": [0.0, 0]}
    for step in range(steps):
        blurred, sharp = make(step)
        diff = (sharp - blurred) * 255
        luma = blurred.mean(dim=1, keepdim=True).expand_as(diff)
        for name, where in (("all", torch.ones_like(diff, dtype=torch.bool)), ("dark", luma < 0.15),
                            ("bright", luma > 0.85)):
            sums[name][0] += float(diff[where].sum())
            sums[name][1] += int(where.sum())
    return {k: s / max(n, 1) for k, (s, n) in sums.items()}


def run_variant(name: str, change: dict, out: Path, steps: int) -> dict:
    change = dict(change)
    linear = change.pop("linear_light", True)
    folder = "".join(c if c.isalnum() else "_" for c in name)
    cfg = TrainConfig(**{**RECIPE, **change, "steps": steps, "out": str(out / folder)})
    t0 = time.time()
    with _SrgbOnly(not linear):
        model = train(cfg).model.eval()
    scores = {}
    for kind in ("none", "gaussian"):
        src = open_dataset(cfg.data, blur=kind, val_count=32, val_patch=128)
        rows = evaluate(model, src, precision="fp32", crops=True, baseline=False)["rows"]
        scores[kind] = {"input_psnr": rows["blurred"]["psnr"], "psnr": rows["model"]["psnr"],
                        "shift": sum(rows["model"]["shift"]) / 3, "max_abs_shift": rows["model"]["max_abs_shift"]}
    return {"config": asdict(cfg), "seconds": round(time.time() - t0, 1), "crops": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/darkening-probe")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--skip-runs", action="store_true", help="measure the pairs only")
    ap.add_argument("--only", nargs="*", help="run these variants only (names as printed)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, change in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        recipe = {**RECIPE, **change}
        results[name] = {"pairs": pair_bias(recipe)}
        if not args.skip_runs:
            results[name].update(run_variant(name, change, out, args.steps))
        (out / "probe.json").write_text(json.dumps(results, indent=2))
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "config"}), flush=True)
    print("\n| variant | target - input: all / dark / bright (levels) | sharp crops: PSNR, shift | "
          "gaussian crops: input -> output PSNR |")
    print("|---|---|---|---|")
    for name, r in results.items():
        p = r["pairs"]
        row = f"| {name} | {p['all']:+.2f} / {p['dark']:+.2f} / {p['bright']:+.2f} |"
        if "crops" in r:
            n, g = r["crops"]["none"], r["crops"]["gaussian"]
            row += f" {n['psnr']:.2f} dB, {n['shift']:+.2f} (max {n['max_abs_shift']:.2f}) |"
            row += f" {g['input_psnr']:.2f} -> {g['psnr']:.2f} |"
        print(row)


if __name__ == "__main__":
    main()
