"""Write MODELS.md: the model card of every variant whose weights ship in the package.

For each shipped model and each blur kind it was trained for, it runs what
``deblur-cli eval --model NAME --data folder:data/photos --blur KIND --json`` runs: every held-out photo
of the photo set scored whole (blurred input, the model, Richardson-Lucy with the true kernel). It also
scores the bundled clip (``--data reds:examples/reds``), reads how the weights were trained from their
metadata, and draws the pictures under ``docs/``. Run from the repository root, after building the photo
set (``python scripts/build_photos.py --out data/photos``): ``python scripts/model_card.py``.

Whole-image evaluations are slow on a CPU (a 2-megapixel photo through ``srn`` takes ~15 s), so each
result is cached in ``runs/model_card/`` under the weights' hash: rerunning after changing one model's
weights re-scores that model only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from deblur_core.blur import BLUR_KINDS, EXTENTS, SHARP_KINDS
from deblur_core.defaults import DEFAULT_MODEL
from deblur_core.catalog import trained_on
from deblur_core.checkpoint import pretrained_path, read_metadata
from deblur_core.data import open_dataset
from deblur_core.evaluate import evaluate
from deblur_core.inference import deblur_tensor, load_deblurrer
from deblur_core.io import read_image, write_image
from deblur_core.models import list_models, profile_model
from deblur_core.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = "folder:data/photos"
CLIP = "reds:examples/reds"
CACHE = ROOT / "runs" / "model_card"
# the reference arithmetic, the same on every CPU: --precision auto runs most networks under bf16 autocast on
# CPUs with AMX, which moved the card's figures by up to 0.02 dB
PRECISION = "fp32"

# Where each training run ran (by its --out), when not on this project's 2-core CPU machine.
MACHINES = {
    "runs/gpu-srn": "one NVIDIA H100 80GB HBM3 (the GPU machine), bf16 autocast",
    "runs/gpu-srn2": "one NVIDIA H100 80GB HBM3 (the GPU machine), bf16 autocast",
    "runs/gpu-nafnet-cpu": "one NVIDIA H200 (the GPU machine, inside `scripts/gpu_train.sh`), bf16 autocast",
    # CPU stages (nafnet-cpu's; srn's and srn-small's do-no-harm fine-tunes): the project's 2-core machine is
    # not always the same CPU
    **dict.fromkeys(("runs/nafnet-cpu", "runs/nafnet-cpu-s3", "runs/nafnet-cpu-s5", "runs/nafnet-cpu-s6",
                     "runs/nafnet-cpu-s9", "runs/nafnet-cpu-s10",
                     "runs/srn-noharm", "runs/srn-noharm2", "runs/srn-noharm3", "runs/srn-noharm4",
                     "runs/srn-small-noharm", "runs/srn-small-noharm2", "runs/srn-small-noharm3"),
                    "this project's 2-core CPU machine as an Intel Xeon with AMX, bf16 autocast"),
    "runs/nafnet-cpu-s7": "this project's 2-core CPU machine as an AMD EPYC, fp32 (bf16 is emulated there)",
}

LONG_NOTE = ("`long` and `nonuniform` are the long-blur evaluation: pans and motion of 25-40 px with speed changes "
             "and curvature (continuous or 7-15 averaged sub-frames, in linear light or on sRGB values), and a "
             "foreground moving 8-40 px over a background moving 1-20 px, where no single kernel exists (so no "
             "Richardson-Lucy figure). Every photo draws the same blur on every run (`deblur-cli eval --blur long`, "
             "`--blur nonuniform`).")


def _long_note(blur_of: dict[str, str]) -> str:
    """LONG_NOTE and which shipped weights saw such blur: only the ``realistic`` synthesis holds both extents."""
    seen = [f"`{n}`" for n, blur in blur_of.items() if blur == "realistic"]
    said = ("No shipped model was trained on either" if not seen else
            f"Of the shipped models only {', '.join(seen)} {'was' if len(seen) == 1 else 'were'} trained on blur of "
            f"these extents (the `realistic` synthesis: {EXTENTS['realistic']})")
    return f"{LONG_NOTE} {said}: each model's section says which blur its weights saw."

SHARP_NOTE = ("`none` is every held-out photo unblurred and `light` slightly blurred (defocus sigma 0.3-0.8 or a 1-2 px "
              "streak, half each): frames a deblurrer must leave as they are. Level shift: the output's mean minus the "
              "sharp photo's per channel, in levels of 255 (negative: darker), as the mean over photos and channels and "
              "the largest on any photo and channel (`deblur-cli eval --blur none`, `--blur light`).")

# Found by `python scripts/darkening_probe.py` (docs/darkening.md holds its tables).
CAUSE = ("Why a network alters sharp frames: weights that never saw a sharp input in training (every shipped model's "
         "but `nafnet-cpu`'s, `srn`'s and `srn-small`'s: the mixes start at gaussian sigma 1 and 3 px of motion) extrapolate on such input what "
         "their pairs taught them. `srn`'s GPU stages trained on pairs with targets darker than their inputs: video-style blur averaged in linear light makes a "
         "blurred frame brighter than its sharp twin (1.83 levels of 255 on average over the `video` kind, 0 for "
         "the kinds blurred on sRGB values), and `--saturate` dimmed the target's highlights against the input's "
         "clipped ones (0.95 levels in bright areas). Noise, the FFT loss and bf16 put no bias into the pairs. "
         "`--sharp-share` (unblurred and lightly blurred samples in every batch) and clipped targets for saturated "
         "samples are the recipe's answer. Sensor noise on the sharp samples teaches a network to smooth clean "
         "photos: `srn-small` passed the lightly blurred photos only once fine-tuned without it. docs/darkening.md "
         "gives the measurements.")

# What the metadata cannot say.
NOTES = {
    "srn": "Stages 1 and 2 ran inside `scripts/gpu_train.sh`'s window on the GPU machine: stage 1 is the script's "
           "training phase (`OUT=... MINUTES=4.0 scripts/gpu_train.sh`, which sized the run to 4782 steps from its "
           "smoke phase's 21.4 steps/s), stage 2 a fine-tune from stage 1's last weights run by hand on the same "
           "machine with the remaining minutes (20.8 steps/s of 32 crops of 256x256). Stages 3-6 taught it to leave "
           "sharp frames alone on the 2-core CPU machine, from the weights before each, with unblurred and lightly "
           "blurred samples in every batch (`--sharp-share`); training/srn-noharm/README.md holds their curves and "
           "per-kind tables.",
    "srn-small": "Trained as `srn` before that name moved to the larger network (same weights and command, "
                 "`--model srn` then). The run started with `--steps 9000`; it was resumed with `--steps 15000` at "
                 "step 1500 and with `--steps 13000` at step 6000, which reshaped the rest of its cosine schedule. "
                 "Later CPU fine-tunes and a fresh 100-minute run moved no figure by more than 0.12 dB: this network "
                 "plateaued on the CPU budget. Three more CPU stages taught it to leave sharp frames alone, each from "
                 "the weights before it, with unblurred and lightly blurred samples in every batch (`--sharp-share` "
                 "0.2, 0.4, 0.4); the third also without sensor noise (`--noise 0`): the noise the earlier batches "
                 "added to their sharp samples had taught it to smooth clean photos, which kept it below the input on "
                 "lightly blurred ones. training/srn-small-noharm/README.md holds their curves and per-kind tables.",
    "nafnet-cpu": "Trained in stages that span machines (training/nafnet-cpu/README.md holds every stage's command, "
                  "curve and per-kind tables): the CPU stages on this project's 2-core machine (an Intel Xeon with AMX "
                  "under bf16 autocast, or an AMD EPYC in fp32; the later stages with `--compile`), two short ones "
                  "inside `scripts/gpu_train.sh`'s GPU windows; each from the weights before it (`--init`). Its validation crops are 128x128 on the CPU, "
                  "256x256 on the GPU, so the curve's stages are not on one scale. The last two CPU stages taught it to "
                  "leave sharp frames alone: `--sharp-share 0.2`, the second without JPEG (training/nafnet-cpu-noharm/"
                  "README.md).",
    "caessc-d30-f64": "The run trained 900 steps with `--steps 900`, then was resumed with "
                      "`--resume runs/caessc-d30-f64-gauss --steps 1800` and later with `--steps 3600`: each a warm "
                      "restart of the cosine schedule (the command above, run in one go, follows a single schedule).",
}

_ALWAYS = ("model", "data", "blur", "steps", "batch_size", "patch", "lr", "loss", "seed", "out")
_NEVER = ("device", "max_minutes", "model_kwargs", "workers", "init")


def _command(cfg: dict) -> str:
    """The ``deblur-cli train`` line of a config: the fields every run names, and any other that differs from
    the default."""
    defaults = dataclasses.asdict(TrainConfig())
    cfg = {**cfg, "sharp_share": cfg.get("sharp_share", 0.0)}  # a config that does not name it drew none
    parts = ["deblur-cli train"]
    for key, value in cfg.items():
        if key in _NEVER or key not in defaults or (key not in _ALWAYS and value == defaults[key]):
            continue
        flag = "--" + key.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {value}")
    if cfg.get("init"):
        parts.append(f"--init {cfg['init']}")
    return " ".join(parts)


def _training_lines(meta: dict) -> list[str]:
    """How the weights were made: the command of every stage (fine-tuning stages start from the one before)."""
    stages = [*meta.get("init", []), {"config": meta["config"], "step": meta["metrics"].get("step"),
                                      "train_seconds": meta["metrics"].get("train_seconds")}]
    lines = []
    for i, st in enumerate(stages, 1):
        label = f"stage {i}: " if len(stages) > 1 else ""
        where = MACHINES.get(st["config"].get("out"), "this 2-core CPU machine")
        mean = ""
        if st.get("averaged"):  # the next stage started from the mean of this stage's checkpoints at these steps
            mean = "; the next stage started from the mean of its weights at steps " + ", ".join(
                str(a["step"]) for a in st["averaged"])
        lines.append(f"- trained with ({label}{st['step']} steps, {st['train_seconds'] / 60:.1f} minutes of wall time "
                     f"on {where}{mean}): `{_command(st['config'])}`")
    total = sum(st["train_seconds"] for st in stages)
    lines.append(f"- training in all: {sum(st['step'] for st in stages)} steps, {total / 60:.1f} minutes "
                 "(a run stopped and resumed with `--resume RUN_DIR` counts once)")
    return lines


def _ranges(cfg: dict) -> str:
    """The blur the weights saw, with its extents (the kinds outside it are tested, not trained on)."""
    if cfg.get("data", "").startswith("cifar10:"):
        return f"- blur seen in training: gaussian, {EXTENTS['gaussian']} (the seed's CIFAR-10 recipe)"
    blur = cfg.get("blur", "")
    return f"- blur seen in training: {blur}, {EXTENTS[blur]}" if blur in EXTENTS else f"- blur seen in training: {blur}"


def _scores(deb, name: str, spec: str, kind: str, variant: str = "") -> dict:
    """``deblur-cli eval --precision fp32 --json``'s record for (model, data, blur), cached under the weights'
    hash; ``deb`` is the model's deblurrer, loaded once by the caller.

    Richardson-Lucy, as slow as the network on a CPU and independent of it (and of the arithmetic), runs once
    per (data, blur): any cached record of that pair lends it its row.
    """
    digest = hashlib.sha256(pretrained_path(name).read_bytes()).hexdigest()[:12]
    pair = f"{spec.replace(':', '_').replace('/', '_')}-{kind}"
    path = CACHE / f"{name}-{pair}-{digest}{variant}-{PRECISION}.json"  # variant: a test-time option
    known = _baseline(pair)
    if path.is_file():
        r = json.loads(path.read_text())
    else:
        r = evaluate(deb.model, open_dataset(spec, blur=kind, for_eval=True), device="cpu", precision=PRECISION,
                     baseline=known is None)
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2))
    if known is not None:
        r["rows"].setdefault("richardson_lucy", known)
    return r


def _baseline(pair: str) -> dict | None:
    """Richardson-Lucy's row for (data, blur) ``pair`` from any cached record, if one holds it."""
    for p in sorted(CACHE.glob(f"*-{pair}-*.json")):
        row = json.loads(p.read_text())["rows"].get("richardson_lucy")
        if row is not None:
            return row
    return None


def _shift(row: dict) -> str:
    return f"{sum(row['shift']) / len(row['shift']):+.2f}, {row['max_abs_shift']:.2f}"


def _sharp_row(deb, name: str) -> str:
    """The model's row of the sharp-input table: what it does to unblurred and lightly blurred photos."""
    none, light = (_scores(deb, name, PHOTOS, kind)["rows"] for kind in SHARP_KINDS)
    print(name, "none/light", json.dumps(none["model"]), json.dumps(light["model"]), flush=True)
    return (f"| `{name}` | {none['model']['psnr']:.2f} | {none['model']['ssim']:.4f} | {_shift(none['model'])} | "
            f"{light['blurred']['psnr']:.2f} -> {light['model']['psnr']:.2f} | {_shift(light['model'])} |")


# Test-time options on the card: (model, column, cache suffix, load_deblurrer keywords, kinds measured)
TEST_TIME = (("nafnet-cpu", "TLC", "-tlc", {"tlc": True}, (*SHARP_KINDS, *BLUR_KINDS)),
             ("nafnet-cpu", "TTA x8", "-tta8", {"tta": 8}, (*SHARP_KINDS, *BLUR_KINDS)),
             ("srn", "TTA x8", "-tta8", {"tta": 8}, ("gaussian", "motion")))
# Seconds per 1280x720 frame, model only, fp32, 2 threads, on this project's Intel Xeon with AMX:
# `python -m pytest benchmarks/test_test_time.py --benchmark-enable` (group test-time-options), medians.
TEST_TIME_SECONDS = {("nafnet-cpu", "plain"): 0.624, ("nafnet-cpu", "TLC"): 0.944, ("nafnet-cpu", "TTA x8"): 4.763,
                     ("srn", "plain"): 2.814, ("srn", "TTA x8"): 22.823}
TEST_TIME_NOTE = ("`--tlc` pools the nafnet models' channel attention over windows of 1.5 training crops around each "
                  "pixel (NAFNet's test-time local converter) instead of the whole frame; `--tta 8` averages the "
                  "network over the 8 flips and rotations of each photo. PSNR (dB) on the held-out photos, fp32 "
                  "(`deblur-cli eval --model NAME --data folder:data/photos --blur KIND --precision fp32 --tlc`, or "
                  "`--tta 8`); seconds per 1280x720 frame, model only, fp32, on this project's 2-core Intel Xeon "
                  "(`python -m pytest benchmarks/test_test_time.py --benchmark-enable`). Neither is on by default: "
                  "TLC scored lower than the whole-frame pool, and TTA costs 8 times the seconds for the gain shown.")


def _test_time_rows(shipped: list[str]) -> list[str]:
    """The test-time options table: each option beside the plain network, per kind, and its seconds a frame."""
    rows = ["## Test-time options", "", TEST_TIME_NOTE, "",
            "| model | blur | input | plain | TLC | TTA x8 |", "|---|---|---:|---:|---:|---:|"]
    for name in dict.fromkeys(n for n, *_ in TEST_TIME if n in shipped):
        options = [t for t in TEST_TIME if t[0] == name]
        plain = load_deblurrer(name, device="cpu", precision=PRECISION)
        loaded = {col: load_deblurrer(name, device="cpu", precision=PRECISION, **kw) for _, col, _, kw, _ in options}
        for kind in dict.fromkeys(k for *_, kinds in options for k in kinds):
            base = _scores(plain, name, PHOTOS, kind)["rows"]
            cells = {col: f"{_scores(loaded[col], name, PHOTOS, kind, suffix)['rows']['model']['psnr']:.2f}"
                     for _, col, suffix, _, kinds in options if kind in kinds}
            shown = "inf" if base["blurred"]["psnr"] == float("inf") else f"{base['blurred']['psnr']:.2f}"
            rows.append(f"| `{name}` | {kind} | {shown} | {base['model']['psnr']:.2f} | {cells.get('TLC', '–')} | "
                        f"{cells.get('TTA x8', '–')} |")
        seconds = [f"{col} {TEST_TIME_SECONDS[(name, col)]:.2f}" for col in ("plain", "TLC", "TTA x8")
                   if (name, col) in TEST_TIME_SECONDS]
        if seconds:
            rows.append(f"| `{name}` | seconds per 1280x720 frame | | {' · '.join(seconds)} | | |")
    return rows + [""]


SHARP_PHOTO = "lomiri-life_by_Aitzol_Berasategi.jpg"  # bright sky and deep shadows: where a level shift shows most


def _sharp_picture(shipped: list[str]) -> list[str]:
    """A sharp held-out photo (a crop of it) as it went in and through every shipped model."""
    photos = dict(open_dataset(PHOTOS, blur="none", for_eval=True).test_images())
    b = photos.get(SHARP_PHOTO) or next(iter(photos.values()))
    h, w = b.sharp.shape[-2:]
    size = min(h, w, 448)
    crop = b.sharp[..., (h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2]
    outs = [deblur_tensor(load_deblurrer(n, device="cpu", precision=PRECISION).model, crop, device="cpu",
                          precision=PRECISION) for n in shipped]
    write_image(ROOT / "docs" / "models" / "sharp_input.png", torch.cat([crop, *outs], dim=-1)[0])
    listed = ", ".join(f"`{n}`" for n in shipped)
    return ["A sharp held-out photo (the centre of one, unblurred) as it went in, then through " + listed + ":",
            "", "![a sharp photo through every shipped model](docs/models/sharp_input.png)", ""]


def _grid(deb, name: str, kinds: tuple[str, ...]) -> Path:
    """Crops of held-out photos (a look; the figures come from whole photos): blurred, output, sharp."""
    rows = []
    for kind in kinds:
        b = next(open_dataset(PHOTOS, blur=kind, val_count=48).val_batches(3))
        out = deblur_tensor(deb.model, b.blur, device=deb.device, precision=PRECISION)
        row = [torch.cat([bl, o, s], dim=-1) for bl, o, s in zip(b.blur, out, b.sharp)]
        rows.append(torch.cat(row, dim=-2))
    path = ROOT / "docs" / "models" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, torch.cat(rows, dim=-1))
    return path


def _pictures() -> list[str]:
    """Before/after pictures of real and bundled blur: the clip's first frame and clock_motion.png."""
    from deblur_core.single import example_images

    deb = load_deblurrer("srn", device="cpu", precision=PRECISION)
    frame = read_image(ROOT / "examples" / "reds" / "val" / "val_blur" / "000" / "00000000.png").data[None]
    out = deblur_tensor(deb.model, frame, device="cpu", precision=PRECISION, tile=1024)
    h, w = frame.shape[-2:]
    # left half blurred, right half deblurred, so the seam shows the difference on the same scene
    split = torch.cat([frame[..., : w // 2], out[..., w // 2 :]], dim=-1)
    write_image(ROOT / "docs" / "example_before_after.png", split[0])
    clock = read_image(next(p for p in example_images() if p.name == "clock_motion.png")).data[None]
    clock = clock.expand(-1, 3, -1, -1) if clock.shape[1] == 1 else clock
    # the CPU preset beside the two srn networks, where its weights ship
    names = ["srn-small", "srn"] + (["nafnet-cpu"] if pretrained_path("nafnet-cpu") is not None else [])
    nets = {n: deb.model if n == "srn" else load_deblurrer(n, device="cpu", precision=PRECISION).model for n in names}
    outs = [deblur_tensor(nets[n], clock, device="cpu", precision=PRECISION) for n in names]
    write_image(ROOT / "docs" / "models" / "clock_motion.png", torch.cat([clock, *outs], -1)[0])
    listed = ", ".join(f"`{n}`" for n in names)
    return ["## Pictures", "",
            "A frame of the bundled clip (`examples/reds`, a simulated camera pan): left half as blurred, right half "
            "deblurred by `srn`:", "", "![bundled clip frame: blurred left, srn right](docs/example_before_after.png)", "",
            "scikit-image's `clock_motion.png`, a photograph with real motion blur (no sharp original exists): as "
            f"taken, {listed}:", "", f"![clock_motion: input, {', '.join(names)}](docs/models/clock_motion.png)", ""]


def _curve(meta: dict) -> list[str]:
    """The training curve, stages joined: from the run folders if they are at hand, else from the stages'
    metrics committed under ``training/<model>/`` (``scripts/ship_weights.py --to``); else the picture drawn
    when the run folders were here, if any."""
    stages = [*meta.get("init", []), meta]
    path = ROOT / "docs" / "models" / f"{meta['model']}-curve.png"
    logs = [ROOT / st["config"]["out"] / "metrics.jsonl" for st in stages]
    if not all(p.is_file() for p in logs):
        logs = [ROOT / "training" / meta["model"] / f"stage{i}-metrics.jsonl" for i in range(1, len(stages) + 1)]
    if not all(p.is_file() for p in logs):
        return [f"![{meta['model']} training curve](docs/models/{path.name})", ""] if path.is_file() else []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    offset = 0
    for i, (p, st) in enumerate(zip(logs, stages), 1):
        rows = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
        tr = [r for r in rows if "loss" in r]
        va = [r for r in rows if "val_psnr" in r]
        size = st["config"].get("val_patch", TrainConfig.val_patch)
        a1.plot([offset + r["step"] for r in tr], [r["loss"] for r in tr], label=f"stage {i}")
        line, = a2.plot([offset + r["step"] for r in va], [r["val_psnr"] for r in va], marker="o",
                        label=f"stage {i} ({size} px crops)")
        if va:  # each stage's own blurred input: crop sizes may differ between stages
            a2.hlines(va[0]["input_psnr"], offset, offset + rows[-1]["step"], color=line.get_color(), ls="--")
        offset += rows[-1]["step"]
    a1.set(xlabel="step", ylabel="training loss", yscale="log")
    a2.set(xlabel="step", ylabel="validation PSNR (dB)", title="dashed: blurred input")
    a1.legend(fontsize="small")
    a2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [f"![{meta['model']} training curve](docs/models/{path.name})", ""]


def main() -> None:
    # the default model first, then registry order
    shipped = sorted((n for n in list_models() if pretrained_path(n) is not None), key=lambda n: n != DEFAULT_MODEL)
    photos = open_dataset(PHOTOS).describe()
    summary = ["## Summary", "",
               f"PSNR (dB) on the {photos['val_images']} held-out photos, each scored whole, mean over the photos; the gain "
               "is the model's over the blurred input.", "",
               "| model | trained on | blur | blurred input | Richardson-Lucy, true kernel | model | gain |",
               "|---|---|---|---:|---:|---:|---:|"]
    lines = [
        "# Model card",
        "",
        "Every figure below was measured on this project's 2-core CPU machine with the commands shown; rerun",
        "`python scripts/model_card.py` (after `python scripts/build_photos.py --out data/photos`) to regenerate this",
        "file and the pictures.",
        "",
        "Quality is measured on **whole held-out photographs**, as GoPro's and REDS's test protocols do: the",
        f"{photos['val_images']} photos of `data/photos/val` (listed under *Data*; never seen in training), each blurred "
        "by the project's",
        "synthesis of the blur kind (`deblur-cli eval --data folder:data/photos --blur KIND`), mean per-image MSE, PSNR",
        "(dB) and SSIM (gaussian window 11, sigma 1.5), every network in fp32 (`--precision fp32`: the default `auto`",
        "runs most of them under bf16 autocast on CPUs with AMX, which moves these figures by up to 0.02 dB).",
        "Richardson-Lucy (30 iterations) is given the *true* kernel, which a real deblurring task never has.",
        "",
    ]
    sections: list[str] = []
    clip_rows = ["## The bundled clip", "",
                 "`deblur-cli eval --model NAME --data reds:examples/reds --precision fp32`: the 6 frames of the example clip (448x256, a "
                 "camera pan simulated over a scikit-image photograph), scored whole against their sharp frames.", "",
                 "| model | blurred input PSNR | model PSNR | gain | blurred SSIM | model SSIM |", "|---|---:|---:|---:|---:|---:|"]
    blur_of = {}  # each shipped model's training blur, for the long-blur note
    sharp_rows = ["## Sharp input", "", SHARP_NOTE, "", CAUSE, "",
                  "| model | none: PSNR | none: SSIM | none: level shift (mean, largest) | light: input -> model PSNR "
                  "| light: level shift (mean, largest) |", "|---|---:|---:|---|---|---|"]
    for name in shipped:
        meta = read_metadata(pretrained_path(name))
        cfg = meta["config"]
        blur_of[name] = cfg["blur"]
        prof = profile_model(name)
        deb = load_deblurrer(name, device="cpu", precision=PRECISION)
        sections += [f"## `{name}`", "", f"- parameters: {prof.params / 1e6:.2f} M; {prof.gflops_per_mp:.1f} GFLOP per megapixel",
                     *_training_lines(meta), _ranges(cfg), *([f"- {NOTES[name]}"] if name in NOTES else []), "",
                     *_curve(meta), "| blur | input | MSE | PSNR | SSIM |", "|---|---|---:|---:|---:|"]
        kinds = ("gaussian",) if cfg["blur"] == "gaussian" else BLUR_KINDS
        sharp_rows.append(_sharp_row(deb, name))
        for kind in kinds:
            r = _scores(deb, name, PHOTOS, kind)
            for row, label in (("blurred", "blurred input"), ("richardson_lucy", "Richardson-Lucy, true kernel"),
                               ("model", f"**{name}**")):
                v = r["rows"].get(row)  # no Richardson-Lucy where no single kernel exists (non-uniform blur)
                if v is not None:
                    sections.append(f"| {kind} | {label} | {v['mse']:.5f} | {v['psnr']:.2f} | {v['ssim']:.4f} |")
            print(name, kind, json.dumps(r["rows"]), flush=True)
            b, m = r["rows"]["blurred"]["psnr"], r["rows"]["model"]["psnr"]
            rl = r["rows"].get("richardson_lucy", {}).get("psnr")
            summary.append(f"| `{name}` | {trained_on(cfg)} | {kind} | {b:.2f} | {'-' if rl is None else f'{rl:.2f}'} | "
                           f"{m:.2f} | {m - b:+.2f} |")
        if cfg["blur"] != "gaussian":
            c = _scores(deb, name, CLIP, "mix")["rows"]
            clip_rows.append(f"| `{name}` | {c['blurred']['psnr']:.2f} | {c['model']['psnr']:.2f} | "
                             f"{c['model']['psnr'] - c['blurred']['psnr']:+.2f} | {c['blurred']['ssim']:.4f} | "
                             f"{c['model']['ssim']:.4f} |")
        sections += ["", f"Reproduce a row: `deblur-cli eval --model {name} --data folder:data/photos --blur KIND --precision fp32`.", ""]
        grid = _grid(deb, name, kinds)
        sections += [f"![{name}: blurred, deblurred, sharp](docs/models/{grid.name})", "",
                     "Each row of three: blurred input, output, sharp original (crops of held-out photos); one group of "
                     "columns per blur kind.", ""]
    sources = ROOT / "data" / "photos" / "SOURCES.md"
    data = ["## Data", "",
            "Training and evaluation photographs: `python scripts/build_photos.py --out data/photos` builds them "
            "reproducibly from four Debian packages (`apt-get download` + `dpkg -x`, nothing installed) and "
            "scikit-image's bundled photos; no other photo source is used. Debian photos are shrunk 2x (Lanczos) and "
            "stored as JPEG quality 95. The gaussian-trained models, and `srn-small`'s first stage, were trained on "
            "`--data default` (scikit-image's photos only; coffee, rocket and motorcycle_right held out, as here).", ""]
    if sources.is_file():
        data += sources.read_text().splitlines() + [""]
    # the published networks' table is kept by hand (their figures are their authors'): docs/published.md
    published = (ROOT / "docs" / "published.md").read_text().splitlines() + [""]
    lines += [*summary, "", _long_note(blur_of), "", *sharp_rows, "", *_sharp_picture(shipped), *clip_rows, "",
              *_test_time_rows(shipped), *_pictures(), *sections, *published, *data]
    (ROOT / "MODELS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
