"""Turn saved pytest-benchmark JSON into ``benchmarks/reports/<machine>.md`` and a chart beside it.

Usage::

    python benchmarks/report.py [JSON ...] [--out-dir DIR] [--baseline JSON]

Each JSON is one run (``--benchmark-json=PATH``, or a file pytest-benchmark autosaved under
``.benchmarks/``; with no argument, the newest autosaved one). The report gives, per benchmark, frames/s,
megapixels/s, achieved GFLOP/s, that rate as a percentage of the same run's measured peak for the
device and precision (the best round of the fastest square matmul or 3x3 convolution), the speed-up over
the naive path (and ``nafnet``'s over its former forward), the end-to-end/model-only ratio, peak memory, and the change against the previous run of the same machine. The
CPU model, its instruction sets and the GPU head the report; runs on different hardware are never compared.

The previous run is kept beside the report: ``<machine>.json`` is the run the report shows and
``<machine>.previous.json`` the one before it, so rerunning the report on the same JSON compares against
the same predecessor. Runs given together are taken in time order, each compared with the one before.
Smoke runs (``--quick``) are reported under ``<machine>-quick`` so they never replace a real measurement.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = Path(__file__).resolve().parent / "reports"
COMMAND = ("python -m pytest benchmarks --benchmark-enable --benchmark-json=.benchmarks/latest.json "
           "&& python benchmarks/report.py .benchmarks/latest.json")
# The GPU profile, writing the JSON and the report under $OUT; pytest is interrupted (SIGINT: it still writes
# the JSON of what ran) if it overruns, and the report is written whatever pytest's exit status.
GPU_COMMAND = ("PYTHONPATH=packages/core/src timeout -s INT 140 python -m pytest benchmarks -p no:cacheprovider "
               "--profile gpu --benchmark-enable --benchmark-json=$OUT/bench.json; "
               "python benchmarks/report.py $OUT/bench.json --out $OUT")

# What the issues ask (srn at 1280x720), checked at the top of the report for each device in the run.
TARGET_SPEEDUP = {"cpu": 2.0, "cuda": 5.0}  # optimized path (or compiled, if faster) over the naive path
TARGET_PEAK_PCT = 75.0  # model-only GFLOP/s as % of the fp32 peak (CPU)
TARGET_E2E = 0.85  # end-to-end frames/s over model-only frames/s
TARGET_TILING = 0.95  # batch's frames/s with its default tiling over tile=4096 (whole frames)
TARGET_REDUCED, TARGET_REDUCED_PSNR = 2.0, 45.0  # bf16 over fp32 on an AMX CPU; its output's PSNR vs fp32
TARGET_FORMER = 2.5  # nafnet's forward today over its former forward, CPU, model only
CHECK_MODEL, CHECK_RES = "srn", "1280x720"
# the CPU preset per 720p frame against srn's time, its share of the fp32 peak, and nafnet's
# training step today over its former one (fp32, the same loss to float rounding)
CPU_PRESET, TARGET_PRESET_SPEEDUP, TARGET_PRESET_PEAK_PCT, TARGET_TRAIN_STEP = "nafnet-cpu", 4.0, 40.0, 2.0


@dataclass
class Row:
    """One benchmark of one run, with its rates computed from the median round."""

    fullname: str
    group: str
    info: dict
    median_s: float
    min_s: float  # the best round
    rounds: int

    @property
    def kind(self) -> str:
        return self.info.get("kind", "")

    @property
    def device(self) -> str:
        return self.info.get("device", "?")

    @property
    def precision(self) -> str:
        return self.info.get("precision", "fp32")

    def rate(self, key: str) -> float:
        return self.info.get(key, 0) / self.median_s if self.median_s > 0 else 0.0

    @property
    def fps(self) -> float:
        return self.rate("frames")

    @property
    def mps(self) -> float:
        return self.rate("megapixels")

    @property
    def gflops(self) -> float:
        return self.rate("gflop")

    @property
    def best_gflops(self) -> float:
        return self.info.get("gflop", 0) / self.min_s if self.min_s > 0 else 0.0

    @property
    def label(self) -> str:
        i = self.info
        if self.kind == "peak":
            if "conv" in i:
                channels, side, batch = i["conv"]
                return f"conv 3x3 {channels} ch {side}x{side} b{batch}"
            return f"matmul {i['matmul']}x{i['matmul']}"
        if self.kind == "inference":
            return f"{i['model']} {i['resolution']} b{i['batch']}"
        if self.kind == "former":
            return f"{i['model']} {i['resolution']} {i['forward']} forward"
        if self.kind == "path":
            compile_s = f"; compiling took {i['compile_s']:.0f} s" if "compile_s" in i else ""
            return f"{i['model']} {i['resolution']} {i['path']} ({i['frames']} frames{compile_s})"
        if self.kind in ("e2e", "model-only"):
            what = "batch end-to-end" if self.kind == "e2e" else "model only"
            return f"{i['model']} {i['resolution']} {what} ({i['frames']} frames, b{i['batch']})"
        if self.kind == "tiling":
            return f"{i['model']} {i['resolution']} batch, tile {i['tile']} ({i['frames']} frames, b{i['batch']})"
        if self.kind == "io":
            return f"PNG decode + encode {i['resolution']}, {i['workers']} worker thread(s)"
        if self.kind == "training":
            return f"{i['model']} train step {i['resolution']} b{i['batch']}"
        if self.kind == "data":
            return f"{i['blur']} blur training batch {i['resolution']} b{i['batch']}"
        if self.kind == "copy":
            return f"{i['batch']} frames {i['resolution']} {i['dtype']} ({i['megabytes']:.0f} MB) {i['way']}"
        if self.kind == "loop":
            return (f"{i['model']} training loop b{i['batch']} {i['resolution']}, {i['variant']}: "
                    f"{i['steps_per_s']:.2f} steps/s past start-up")
        if self.kind == "plans":
            return f"{i['blur']} blur plans of b{i['batch']} from {i['workers']} worker processes"
        if self.kind == "test-time":
            return f"{i['model']} {i['resolution']} model only, tta {i['tta']}{', tlc' if i['tlc'] else ''}"
        return self.fullname.split("::")[-1]


@dataclass
class Run:
    path: Path
    data: dict
    rows: list[Row]

    @property
    def datetime(self) -> str:
        return self.data.get("datetime", "")

    @property
    def machine(self) -> str:
        meta = self.data.get("deblur", {})
        name = meta.get("machine") or self.data.get("machine_info", {}).get("node", "unknown")
        return name + ("-quick" if meta.get("quick") else "")

    @property
    def hardware(self) -> dict:
        """CPU model, instruction sets, GPU (``hardware`` in machine_info; older runs: pytest-benchmark's)."""
        mi = self.data.get("machine_info", {})
        return mi.get("hardware") or {"cpu": mi.get("cpu", {}).get("brand_raw", "?"), "gpu": self.data.get(
            "deblur", {}).get("cuda")}

    def peak_row(self, device: str, precision: str) -> Row | None:
        """The ceiling case (matmul or convolution) whose best round was fastest, for ``device`` and ``precision``."""
        rows = [r for r in self.rows if r.kind == "peak" and r.device == device and r.precision == precision]
        return max(rows, key=lambda r: r.best_gflops, default=None)

    def peak(self, device: str, precision: str) -> float | None:
        row = self.peak_row(device, precision)
        return row.best_gflops if row else None

    def find(self, **match) -> Row | None:
        for r in self.rows:
            if all(r.info.get(k) == v for k, v in match.items()):
                return r
        return None

    def pct_of_peak(self, row: Row) -> float | None:
        peak = self.peak(row.device, row.precision)
        counted = row.info.get("gflop", 0) > 0  # data-pipeline rows do no counted network work
        return 100 * row.gflops / peak if peak and counted and row.kind != "peak" else None

    def speedup(self, row: Row) -> float | None:
        """A path's frames/s over the naive path's, or today's nafnet forward's over its former one's (the
        former forward's time over today's)."""
        if row.kind == "former":
            former = self.find(kind="former", forward="former", device=row.device, model=row.info.get("model"),
                               resolution=row.info.get("resolution"))
            return row.fps / former.fps if row.info.get("forward") != "former" and former and former.fps else None
        if row.kind != "path":
            return None
        naive = self.find(kind="path", path="naive", device=row.device, model=row.info.get("model"),
                          resolution=row.info.get("resolution"))
        return row.fps / naive.fps if naive and naive.fps else None

    def e2e_ratio(self, row: Row) -> float | None:
        if row.kind != "e2e":
            return None
        model = self.find(kind="model-only", device=row.device, model=row.info.get("model"),
                          frames=row.info.get("frames"))
        return row.fps / model.fps if model and model.fps else None


def load_run(path: Path) -> Run:
    data = json.loads(path.read_text())
    rows = [Row(fullname=b["fullname"], group=b.get("group") or "", info=b.get("extra_info", {}),
                median_s=b["stats"]["median"], min_s=b["stats"]["min"], rounds=b["stats"]["rounds"])
            for b in data.get("benchmarks", []) if b.get("stats")]
    return Run(path=path, data=data, rows=rows)


def _fmt(x: float | None, digits: int = 2, suffix: str = "") -> str:
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}{suffix}"
    return f"{x:.{digits}f}{suffix}"


def _delta(cur: Row, prev: Run | None) -> str:
    if prev is None:
        return "–"
    old = next((r for r in prev.rows if r.fullname == cur.fullname), None)
    if old is None:
        return "new"
    a, b = (cur.gflops, old.gflops) if cur.kind == "peak" else (cur.fps, old.fps)
    return f"{100 * (a / b - 1):+.1f}%" if b else "–"


def _same_hardware(a: Run, b: Run) -> bool:
    """Same CPU model with the same vector/matrix instruction sets (py-cpuinfo's flags, which every run
    records: two "AMD EPYC" may differ), same GPU."""
    def key(run: Run) -> tuple:
        flags = run.data.get("machine_info", {}).get("cpu", {}).get("flags") or run.hardware.get("cpu_flags") or []
        isa = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
        return run.hardware.get("cpu"), isa, run.hardware.get("gpu")
    return key(a) == key(b)


def _check(text: str, value: float | None, target: float, unit: str) -> str:
    if value is None:
        return f"- ? {text}: not measured in this run"
    mark = "pass" if value >= target else "FAIL"
    return f"- **{mark}** {text}: {_fmt(value)}{unit} (target >= {target:g}{unit})"


def _checks(run: Run) -> list[str]:
    """The issues' acceptance figures for srn at the run's large size, per device in the run."""
    lines = []
    # the devices whose srn paths ran, else the accelerator of the run (a GPU run cut before its srn paths)
    devices = {r.device for r in run.rows if r.kind == "path"} or {"cuda" if run.hardware.get("gpu") else "cpu"}
    for device in sorted(devices):
        name = "CPU" if device == "cpu" else "GPU"
        naive = run.find(kind="path", path="naive", device=device, model=CHECK_MODEL)
        res = naive.info["resolution"] if naive else CHECK_RES  # a --quick run uses smaller frames
        fastest = max((r for r in run.rows if r.kind == "path" and r.device == device and r.info.get("path") != "naive"
                       and r.info.get("model") == CHECK_MODEL), key=lambda r: r.fps, default=None)
        speedup = run.speedup(fastest) if fastest else None
        which = f" ({fastest.info['path']}, {fastest.precision})" if fastest else ""
        lines.append(_check(f"optimized path{which} over the naive one (`{CHECK_MODEL}` {res}, {name})", speedup,
                            TARGET_SPEEDUP.get(device, TARGET_SPEEDUP["cpu"]), "x"))
        if device == "cpu":
            model = run.find(kind="inference", model=CHECK_MODEL, resolution=res, device="cpu", precision="fp32",
                             batch=1)
            lines.append(_check(f"`{CHECK_MODEL}` {res} model only, % of the fp32 peak (CPU)",
                                run.pct_of_peak(model) if model else None, TARGET_PEAK_PCT, "%"))
        reduced = next((r for r in run.rows if r.kind == "inference" and r.device == device and r.precision != "fp32"
                        and r.info.get("model") == CHECK_MODEL and r.info.get("resolution") == res), None)
        fp32 = reduced and run.find(kind="inference", model=CHECK_MODEL, resolution=res, device=device,
                                    precision="fp32", batch=reduced.info.get("batch"))
        if reduced and fp32:
            what = f"`{CHECK_MODEL}` {res} model only, {reduced.precision} over fp32"
            if device == "cpu":  # the figure for an AMX CPU; a GPU's is the naive/optimized one
                lines.append(_check(f"{what} frames/s ({name})", reduced.fps / fp32.fps, TARGET_REDUCED, "x"))
            lines.append(_check(f"{what}: PSNR against the fp32 output ({name})",
                                reduced.info.get("psnr_vs_fp32_db"), TARGET_REDUCED_PSNR, " dB"))
        e2e = run.find(kind="e2e", device=device, model=CHECK_MODEL)
        lines.append(_check(f"`batch` end-to-end over model-only frames/s (`{CHECK_MODEL}`, {name})",
                            run.e2e_ratio(e2e) if e2e else None, TARGET_E2E, "x"))
        lines += _e2e_bound(run, e2e)
        default = run.find(kind="tiling", tile="default", device=device, model=CHECK_MODEL)
        tiled_res = default.info["resolution"] if default else CHECK_RES
        lines.append(_check(f"`batch` with its default tiling over `--tile 4096` frames/s (`{CHECK_MODEL}` "
                            f"{tiled_res}, {name})", default.info.get("default_over_tile_4096") if default else None,
                            TARGET_TILING, "x"))
    if run.data.get("deblur", {}).get("profile") != "gpu":  # a CPU case, outside the GPU profile
        current = run.find(kind="former", forward="current", device="cpu")
        res = current.info["resolution"] if current else CHECK_RES
        lines.append(_check(f"`nafnet` {res} model only, today's forward over its former one (CPU)",
                            run.speedup(current) if current else None, TARGET_FORMER, "x"))
    lines += _preset_checks(run)
    io = sorted((r for r in run.rows if r.kind == "io"), key=lambda r: r.info["workers"])
    if io:
        cores = io[0].info.get("cores", 0)
        upto = [r for r in io if r.info["workers"] <= cores]
        rates = ", ".join(f"{r.info['workers']}: {_fmt(r.fps, 1)}" for r in io)
        rising = all(b.fps > a.fps for a, b in zip(upto, upto[1:]))
        lines.append(f"- **{'pass' if rising else 'FAIL'}** IO pipeline alone (PNG decode + encode, "
                     f"{io[0].info['resolution']}) rises with worker threads ({cores} cores): frames/s by "
                     f"workers {rates}")
    return lines


def _preset_checks(run: Run) -> list[str]:
    """Issue 23's figures: the CPU preset against srn at 1280x720 (fp32, model only, one run), and nafnet's
    training step against its former one (and, for a look, under bf16 where the CPU has it)."""
    lines = []
    preset = run.find(kind="inference", model=CPU_PRESET, resolution=CHECK_RES, device="cpu", precision="fp32",
                      batch=1)
    srn = run.find(kind="inference", model=CHECK_MODEL, resolution=CHECK_RES, device="cpu", precision="fp32",
                   batch=1)
    if preset or srn:
        lines.append(_check(f"`{CPU_PRESET}` {CHECK_RES} frames/s over `{CHECK_MODEL}`'s (CPU, fp32, model only)",
                            preset.fps / srn.fps if preset and srn else None, TARGET_PRESET_SPEEDUP, "x"))
        lines.append(_check(f"`{CPU_PRESET}` {CHECK_RES} model only, % of the fp32 peak (CPU)",
                            run.pct_of_peak(preset) if preset else None, TARGET_PRESET_PEAK_PCT, "%"))
    former = run.find(kind="training-nafnet", model="nafnet", forward="former", precision="fp32")
    for forward, precision in itertools.product(("current", "compiled"), ("fp32", "bf16")):
        current = run.find(kind="training-nafnet", model="nafnet", forward=forward, precision=precision)
        if former and current:
            how = "today's" if forward == "current" else "today's compiled (--compile)"
            what = f"`nafnet` training step at {current.info['resolution']} x {current.info['batch']}, {how} " \
                   f"{precision} over the former fp32 step, crops/s (CPU)"
            lines.append(_check(what, current.fps / former.fps, TARGET_TRAIN_STEP, "x"))
    return lines


def _candidates(run: Run) -> list[str]:
    """The shapes weighed for the CPU preset side by side: inference per 1280x720 frame and training crops/s."""
    rows = [r for r in run.rows if r.kind == "preset-candidate"]
    if not rows:
        return []
    srn = run.find(kind="inference", model=CHECK_MODEL, device="cpu", precision="fp32", batch=1,
                   resolution=CHECK_RES)
    out = ["## CPU preset candidates (`nafnet` shapes, fp32)", "",
           "| shape | params (M) | GFLOP / frame | s / frame | % of peak | frames/s over srn's | training crops/s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys(r.info["model"] for r in rows):
        infer = run.find(kind="preset-candidate", model=name, what="infer")
        train = run.find(kind="preset-candidate", model=name, what="train")
        if not infer or not infer.fps:
            continue
        over = _fmt(infer.fps / srn.fps, 2, "x") if srn and srn.fps else "-"
        out.append(f"| `{name}` | {infer.info['params_m']:.2f} | {infer.info['gflop']:.1f} | {1 / infer.fps:.3f} | "
                   f"{_fmt(run.pct_of_peak(infer), 1, '%')} | {over} | {_fmt(train.fps if train else None, 2)} |")
    return [*out, ""]


def _e2e_bound(run: Run, e2e: Row | None) -> list[str]:
    """``batch`` against the smaller of its two bounds measured in the same run: the model alone, and the IO
    pipeline alone with as many threads as ``batch``'s readers and writers."""
    model = e2e and run.find(kind="model-only", device=e2e.device, model=e2e.info.get("model"),
                             frames=e2e.info.get("frames"))
    threads = e2e.info.get("io_threads") or 0 if e2e else 0
    io = [r for r in run.rows if r.kind == "io" and r.info["workers"] <= threads]
    if not (model and io):
        return []
    io = max(io, key=lambda r: r.info["workers"])
    bound, which = min((model.fps, "the model"), (io.fps, f"the IO pipeline ({io.info['workers']} threads)"))
    return [_check(f"`batch` over the smaller of model-only ({_fmt(model.fps, 2)}) and IO-alone with "
                   f"{io.info['workers']} threads ({_fmt(io.fps, 2)}) frames/s, bound by {which} "
                   f"(`{e2e.info.get('model')}`, {'CPU' if e2e.device == 'cpu' else 'GPU'})", e2e.fps / bound,
                   TARGET_E2E, "x")]


def _hardware_lines(run: Run) -> list[str]:
    hw, meta, mi = run.hardware, run.data.get("deblur", {}), run.data.get("machine_info", {})
    flags = ", ".join(hw.get("cpu_flags") or []) or "?"
    cpu = (f"- CPU: {hw.get('cpu', '?')} ({hw.get('cores') or mi.get('cpu', {}).get('count', '?')} cores), "
           f"instruction sets: {flags}; torch CPU kernels: {hw.get('cpu_capability', '?')}; native bf16: "
           f"{'yes' if hw.get('cpu_bf16') else 'no'}; {meta.get('threads', '?')} torch thread(s)")
    gpu = "- GPU: none"
    if hw.get("gpu"):
        gpu = (f"- GPU: {hw['gpu']} (compute capability {hw.get('gpu_capability', '?')}, "
               f"{hw.get('gpu_memory_gib', '?')} GiB, CUDA {hw.get('cuda', '?')}, bf16: "
               f"{'yes' if hw.get('gpu_bf16') else 'no'})")
    return [cpu, gpu]


def _per_model(run: Run) -> list[str]:
    """One row per variant at the largest resolution swept, one column group per precision, for each device
    that ran more than one precision there (the GPU profile: fp32 beside bf16)."""
    rows = [r for r in run.rows if r.kind == "inference"]
    if not rows:
        return []
    top = max(rows, key=lambda r: r.info.get("megapixels", 0) / max(1, r.info.get("frames", 1)))
    res = top.info["resolution"]
    out = []
    for device in sorted({r.device for r in rows}):
        at = [r for r in rows if r.device == device and r.info["resolution"] == res]
        precisions = sorted({r.precision for r in at}, key=["fp32", "bf16", "fp16"].index)
        if len(precisions) < 2:
            continue
        head = " | ".join(f"{p} frames/s | {p} MP/s | {p} % of peak | {p} peak mem (MiB)" for p in precisions)
        psnr_head = " | ".join(f"{p} PSNR vs fp32 (dB)" for p in precisions[1:])
        out += [f"## Per model, {res}, {device}: {' vs '.join(precisions)}", "",
                f"| model | batch | {head} | {precisions[1]} over fp32 | {psnr_head} |",
                "|---|---:|" + "---:|" * (5 * len(precisions))]
        for model in dict.fromkeys(r.info["model"] for r in at):
            by = {r.precision: r for r in at if r.info["model"] == model}
            cells = []
            for p in precisions:
                r = by.get(p)
                cells += ([_fmt(r.fps, 3), _fmt(r.mps, 3), _fmt(run.pct_of_peak(r), 1, "%"),
                           _fmt(r.info.get("peak_memory_mb"), 1)] if r else ["–"] * 4)
            fast, fp32 = by.get(precisions[1]), by.get("fp32")
            ratio = fast.fps / fp32.fps if fast and fp32 and fp32.fps else None
            batch = next(iter(by.values())).info.get("batch", "?")
            psnr = " | ".join(_fmt(by[p].info.get("psnr_vs_fp32_db"), 1) if p in by else "–" for p in precisions[1:])
            out.append(f"| {model} | {batch} | {' | '.join(cells)} | {_fmt(ratio, 2, 'x')} | {psnr} |")
        out.append("")
        if any(r.info.get("cudnn_autotune") is False for r in at):
            out += ["fp32 ran with cuDNN's heuristic choice of algorithms (autotuning IEEE fp32 took 3-37 s a "
                    "variant on an H100); the reduced precision with cuDNN autotuning. PSNR vs fp32: the "
                    "reduced-precision output against the fp32 output on the same photographs (higher is closer; "
                    "45 dB is about a quarter of an 8-bit level RMS).", ""]
        else:
            out += ["PSNR vs fp32: the reduced-precision output against the fp32 output on the same photographs "
                    "(higher is closer; 45 dB is about a quarter of an 8-bit level RMS).", ""]
    return out


def render_markdown(run: Run, prev: Run | None, chart: Path) -> str:
    d, mi = run.data, run.data.get("machine_info", {})
    meta = d.get("deblur", {})
    commit = d.get("commit_info", {})
    gpu_profile = meta.get("profile") == "gpu"
    out = [f"# Benchmarks: `{run.machine}`", ""]
    if meta.get("quick"):
        out += ["> **Smoke run (`--quick`)**: tiny resolutions and single rounds. These figures check that the "
                "suite works; they are not a measurement.", ""]
    if gpu_profile:
        out += ["GPU profile (`--profile gpu`): the shipped variants and the naive/optimized paths on the "
                "accelerator only, about half a second of timed rounds a case.", ""]
    out += [
        *_hardware_lines(run),
        f"- torch {meta.get('torch', '?')}, Python {mi.get('python_version', '?')}; run {run.datetime}, commit "
        f"`{str(commit.get('id', '?'))[:10]}`{' (uncommitted changes)' if commit.get('dirty') else ''}",
        f"- compared with: {f'{prev.datetime} (`{prev.path.name}`)' if prev else 'no earlier run of this machine'}",
        f"- regenerate: `{GPU_COMMAND if gpu_profile else COMMAND}`",
        "",
        "Rates are from the median round. % of peak = achieved GFLOP/s (FLOPs counted by "
        "`torch.utils.flop_counter`, a multiply-add = 2) over the peak for the same device and precision: the "
        "best round of the fastest square matmul or 3x3 convolution measured in the same run (on a CPU, oneDNN's "
        "convolutions can outrun its matmul). Peak memory: the rise during one "
        "call (CUDA: `max_memory_allocated`, reset per case; CPU: resident high-water mark, a lower bound).",
        "",
        "## Acceptance figures",
        "",
        *_checks(run),
        "",
        f"![chart]({chart.name})",
        "",
        *_per_model(run),
        *_candidates(run),
    ]
    groups: dict[str, list[Row]] = {}
    for r in run.rows:
        groups.setdefault(r.group, []).append(r)
    names = sorted(groups, key=lambda g: _group_order(g, groups[g]))
    for g in names:
        rows = groups[g]
        title = _TITLES.get(g) or (f"Inference, model only, {g.removeprefix('inference-')}"
                                   if g.startswith("inference-") else g)
        out += [f"## {title}", ""]
        if g == "peak":
            out += ["| benchmark | device | precision | GFLOP/s (median) | GFLOP/s (best round) | the peak | rounds "
                    "| Δ vs previous |",
                    "|---|---|---|---:|---:|:---:|---:|---:|"]
            for r in rows:
                used = "**yes**" if run.peak_row(r.device, r.precision) is r else ""
                out.append(f"| {r.label} | {r.device} | {r.precision} | {_fmt(r.gflops, 1)} | "
                           f"{_fmt(r.best_gflops, 1)} | {used} | {r.rounds} | {_delta(r, prev)} |")
        else:
            out += ["| benchmark | device | precision | frames/s | MP/s | GFLOP/s | % of peak | speed-up vs naive/former | "
                    "e2e/model | PSNR vs fp32 (dB) | peak mem (MiB) | rounds | Δ frames/s vs previous |",
                    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in rows:
                out.append(
                    f"| {r.label} | {r.device} | {r.precision} | {_fmt(r.fps, 3)} | {_fmt(r.mps, 3)} | "
                    f"{_fmt(r.gflops if r.info.get('gflop') else None, 1)} | {_fmt(run.pct_of_peak(r), 1, '%')} | {_fmt(run.speedup(r), 2, 'x')} | "
                    f"{_fmt(run.e2e_ratio(r), 3)} | {_fmt(_psnr_vs_fp32(r), 1)} | "
                    f"{_fmt(r.info.get('peak_memory_mb'), 1)} | {r.rounds} | "
                    f"{_delta(r, prev)} |")
        out.append("")
    return "\n".join(out)


def _psnr_vs_fp32(row: Row) -> float | None:
    # a reduced-precision model case against its fp32 twin, an optimized path against the (fp32) naive one
    return row.info.get("psnr_vs_fp32_db", row.info.get("psnr_vs_naive_db"))


def _group_order(group: str, rows: list[Row]) -> tuple:
    # the ceiling, the per-model sweeps from the smallest frames up, then the naive path, nafnet against its former forward, e2e and training
    order = ["peak", "inference", "naive-vs-optimized", "nafnet-former-vs-current", "e2e", "io-pipeline", "tiling", "training"]
    rank = order.index(group) if group in order else order.index("inference")
    return rank, min(r.info.get("megapixels", 0) / max(1, r.info.get("frames", 1)) for r in rows), group


_TITLES = {
    "peak": "Machine ceiling (square matmuls, 3x3 convolutions)",
    "naive-vs-optimized": "Naive path vs optimized path",
    "nafnet-former-vs-current": "`nafnet`: its former forward vs today's (CPU inference path)",
    "e2e": "End-to-end `batch` vs model only",
    "tiling": "`batch` with its default tiling vs whole frames (`tile=4096`)",
    "published-networks": "Published networks (random weights at their authors' sizes) beside the shipped models, fp32",
    "io-pipeline": "IO pipeline alone: PNG decode + encode in worker threads (no network)",
    "training": "Training throughput (samples/s = frames/s)",
}


def render_chart(run: Run, png: Path) -> None:
    """% of the peak and frames/s of every non-peak benchmark, one bar each, coloured by setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in run.rows if r.kind != "peak"]
    if not rows:
        return
    settings = sorted({(r.device, r.precision) for r in rows})
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(settings)}
    labels = [f"{r.label} [{r.device} {r.precision}]" for r in rows]
    ys = range(len(rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 1.2 + 0.24 * len(rows)), sharey=True)
    a1.barh(ys, [run.pct_of_peak(r) or 0 for r in rows], color=[colours[(r.device, r.precision)] for r in rows])
    a1.axvline(100, color="k", lw=0.8, ls="--")
    a1.set_xlabel("% of the measured peak (same device and precision)")
    a2.barh(ys, [r.fps for r in rows], color=[colours[(r.device, r.precision)] for r in rows])
    a2.set_xscale("log")
    a2.set_xlabel("frames/s (log)")
    a1.set_yticks(list(ys), labels, fontsize=7)
    a1.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    a2.legend(handles, [f"{d} {p}" for d, p in colours], fontsize=8, loc="lower right")
    fig.suptitle(f"deblur benchmarks: {run.machine} ({run.datetime[:16]})")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def report(run: Run, out_dir: Path, baseline: Run | None = None) -> Path:
    """Write ``<machine>.md`` and ``<machine>.png`` for ``run``; keep ``run`` as the machine's latest run and
    its predecessor as ``<machine>.previous.json``. Returns the markdown file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stored, previous = out_dir / f"{run.machine}.json", out_dir / f"{run.machine}.previous.json"
    prev = baseline
    keep = True
    if stored.exists() and stored.resolve() != run.path.resolve():
        last = load_run(stored)
        if last.datetime < run.datetime:  # a newer run: the stored one becomes its predecessor
            shutil.copyfile(stored, previous)
        elif last.datetime > run.datetime:  # an older run given again: report it, leave the history alone
            keep = False
    if prev is None and keep and previous.exists():
        prev = load_run(previous)
        if prev.datetime >= run.datetime:
            prev = None
    if prev is not None and not _same_hardware(run, prev):
        print(f"  not compared with {prev.path.name}: it ran on other hardware ({prev.hardware.get('cpu')}, "
              f"GPU {prev.hardware.get('gpu')})")
        prev = None
    if keep:
        if stored.resolve() != run.path.resolve():
            shutil.copyfile(run.path, stored)
    md, png = out_dir / f"{run.machine}.md", out_dir / f"{run.machine}.png"
    render_chart(run, png)
    md.write_text(render_markdown(run, prev, png))
    return md


def _newest_autosave() -> Path:
    saved = sorted((ROOT / ".benchmarks").glob("*/*.json"), key=lambda p: p.stat().st_mtime)
    if not saved:
        sys.exit("no JSON given and nothing autosaved under .benchmarks/; run the benchmarks first:\n  " + COMMAND)
    return saved[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="*", type=Path, help="pytest-benchmark JSON (default: newest in .benchmarks/)")
    parser.add_argument("--out-dir", "--out", type=Path, default=REPORTS,
                        help="where the reports go (default: %(default)s)")
    parser.add_argument("--baseline", type=Path, help="compare with this run instead of the machine's previous one")
    args = parser.parse_args(argv)
    paths = args.json or [_newest_autosave()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    baseline = load_run(args.baseline) if args.baseline else None
    for run in sorted((load_run(p) for p in paths), key=lambda r: r.datetime):
        md = report(run, args.out_dir, baseline)
        print(f"{run.path} -> {md} (+ {md.with_suffix('.png').name})")
        for line in _checks(run):
            print("  " + line.replace("**", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
