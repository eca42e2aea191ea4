"""Write MODELS.md: the model card of every variant whose weights ship in the package.

For each shipped model it runs the same evaluation as ``deblur-cli eval --model NAME --data default
--blur KIND`` for each blur kind (blurred input, the model, Richardson-Lucy with the true kernel), reads
how the weights were trained from their metadata, and draws a before/after grid of validation crops into
``docs/models/NAME.png``. Run from the repository root: ``python scripts/model_card.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from deblur_core.blur import BLUR_KINDS
from deblur_core.catalog import trained_on
from deblur_core.checkpoint import pretrained_path, read_metadata
from deblur_core.data import open_dataset
from deblur_core.evaluate import evaluate
from deblur_core.inference import deblur_tensor, load_deblurrer
from deblur_core.io import write_image
from deblur_core.models import list_models, profile_model

ROOT = Path(__file__).resolve().parent.parent
VAL_COUNT = 48

# What the metadata cannot say: how a run's schedule was changed when it was resumed.
NOTES = {
    "srn": "The run started with `--steps 9000`; it was resumed with `--resume runs/srn-mix --steps 15000` at "
           "step 1500 and with `--steps 13000` at step 6000, which reshaped the rest of its cosine learning-rate "
           "schedule (the command above, run in one go, follows a single schedule). It was stopped at step 11740, "
           "its learning rate already down to 3e-5; the shipped weights are its best validation checkpoint. A further "
           "fine-tune from them (`--init shipped --lr 2e-4 --steps 2000`, 10.5 minutes with both cores) moved every "
           "row below by 0.03 dB or less, and one on 128-pixel patches (`--init shipped --patch 128 --batch-size 4 "
           "--lr 3e-4 --steps 1400 --seed 1`, 7 minutes with both cores) by 0.05 dB or less (gaussian -0.04, the "
           "other kinds +0.04 to +0.05), so neither was shipped. A fresh run of the command above with both cores "
           "(`--steps 20000 --val-every 1000 --max-minutes 116 --out runs/srn-mix-2c`, one schedule, resumed once after "
           "an interruption without changing it, 20000 steps in 100 minutes) reached 27.39 dB on "
           "the mixed validation crops against the shipped 27.26 dB, but per kind gaussian -0.10, motion +0.12, shake "
           "+0.03 and video +0.06 dB: not shipped either. This network has plateaued on this budget.",
    "caessc-d30-f64": "The run trained 900 steps with `--steps 900`, then was resumed with "
                      "`--resume runs/caessc-d30-f64-gauss --steps 1800` and later with `--steps 3600`: each a warm "
                      "restart of the cosine schedule (the command above, run in one go, follows a single schedule).",
}


def _command(cfg: dict) -> str:
    init = f" --init {cfg['init']}" if cfg.get("init") else ""
    return (f"deblur-cli train --model {cfg['model']} --data {cfg['data']} --blur {cfg['blur']} "
            f"--steps {cfg['steps']} --batch-size {cfg['batch_size']} --patch {cfg['patch']} --lr {cfg['lr']} "
            f"--loss {cfg['loss']} --val-every {cfg['val_every']} --val-count {cfg['val_count']} --seed {cfg['seed']}"
            f" --out {cfg['out']}{init}")


def _training_lines(meta: dict) -> list[str]:
    """How the weights were made: the command of every stage (fine-tuning stages start from the one before)."""
    stages = [*meta.get("init", []), {"config": meta["config"], "step": meta["metrics"].get("step"),
                                      "train_seconds": meta["metrics"].get("train_seconds")}]
    lines = []
    for i, st in enumerate(stages, 1):
        label = f"stage {i}: " if len(stages) > 1 else ""
        lines.append(f"- trained with ({label}{st['step']} steps, {st['train_seconds'] / 60:.0f} minutes of wall time "
                     f"on this 2-core CPU machine): `{_command(st['config'])}`")
    total = sum(st["train_seconds"] for st in stages)
    lines.append(f"- training in all: {sum(st['step'] for st in stages)} steps, {total / 60:.0f} minutes "
                 "(a run stopped and resumed with `--resume RUN_DIR` counts once)")
    return lines


def _grid(deb, name: str, kinds: tuple[str, ...]) -> Path:
    rows = []
    for kind in kinds:
        b = next(open_dataset("default", blur=kind, val_count=VAL_COUNT).val_batches(3))
        out = deblur_tensor(deb.model, b.blur, device=deb.device)
        row = [torch.cat([bl, o, s], dim=-1) for bl, o, s in zip(b.blur, out, b.sharp)]
        rows.append(torch.cat(row, dim=-2))
    grid = torch.cat(rows, dim=-1)
    path = ROOT / "docs" / "models" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, grid)
    return path


def main() -> None:
    # the default model first, then registry order
    shipped = sorted((n for n in list_models() if pretrained_path(n) is not None), key=lambda n: n != "srn")
    summary = ["## Summary", "", "Validation PSNR (dB), mean over the crops; the gain is the model's over the blurred input.", "",
               "| model | trained on | blur | blurred input | Richardson-Lucy, true kernel | model | gain |",
               "|---|---|---|---:|---:|---:|---:|"]
    lines = [
        "# Model card",
        "",
        "Every figure below was measured on this project's CPU machine with the commands shown; rerun",
        "`python scripts/model_card.py` to regenerate this file and the pictures.",
        "",
        "Quality is measured on the held-out validation photographs of the `default` data (scikit-image's",
        "`coffee`, `rocket` and the right image of `stereo_motorcycle`, never seen in training): "
        f"{VAL_COUNT} fixed 128x128 crops per blur kind,",
        "mean per-image MSE, PSNR (dB) and SSIM (gaussian window 11, sigma 1.5). Richardson-Lucy (30",
        "iterations) is given the *true* kernel, which a real deblurring task never has.",
        "",
        "Wall times are from this 2-core machine while two trainings ran side by side with one thread each",
        "(`OMP_NUM_THREADS=1`); `srn`'s last stretch and `caessc-d30-f64`'s last stage had both cores.",
        "",
    ]
    if not shipped:
        lines.append("No trained weights ship yet.")
    sections: list[str] = []  # one per model, after the summary table that their evaluations fill
    for name in shipped:
        meta = read_metadata(pretrained_path(name))
        cfg, metrics = meta["config"], meta["metrics"]
        prof = profile_model(name)
        deb = load_deblurrer(name, device="cpu")
        sections += [f"## `{name}`", "", f"- parameters: {prof.params / 1e6:.2f} M; {prof.gflops_per_mp:.1f} GFLOP per megapixel",
                     *_training_lines(meta), *([f"- {NOTES[name]}"] if name in NOTES else []), "", "| blur | input | MSE | PSNR | SSIM |", "|---|---|---:|---:|---:|"]
        kinds = ("gaussian",) if cfg["blur"] == "gaussian" else BLUR_KINDS
        for kind in kinds:
            r = evaluate(deb.model, open_dataset("default", blur=kind, val_count=VAL_COUNT), device="cpu")
            for row, label in (("blurred", "blurred input"), ("richardson_lucy", "Richardson-Lucy, true kernel"),
                               ("model", f"**{name}**")):
                v = r["rows"][row]
                sections.append(f"| {kind} | {label} | {v['mse']:.5f} | {v['psnr']:.2f} | {v['ssim']:.4f} |")
            print(name, kind, json.dumps(r["rows"]))
            b, rl, m = (r["rows"][k]["psnr"] for k in ("blurred", "richardson_lucy", "model"))
            summary.append(f"| `{name}` | {trained_on(cfg)} | {kind} | {b:.2f} | {rl:.2f} | {m:.2f} | {m - b:+.2f} |")
        sections += ["", f"Reproduce a row: `deblur-cli eval --model {name} --data default --blur KIND`.", ""]
        grid = _grid(deb, name, kinds)
        sections += [f"![{name}: blurred, deblurred, sharp](docs/models/{grid.name})", "",
                     "Each row of three: blurred input, output, sharp original; one group of columns per blur kind.", ""]
    if shipped:
        lines += [*summary, "", *sections]
    (ROOT / "MODELS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
