"""Turn saved pytest-benchmark JSON into ``benchmarks/reports/<machine>.md`` and a chart beside it.

Usage::

    python benchmarks/report.py [JSON ...] [--out-dir DIR] [--baseline JSON]

Each JSON is one run (``--benchmark-json=PATH``, or a file pytest-benchmark autosaved under
``.benchmarks/``; with no argument, the newest autosaved one). The report gives, per benchmark, frames/s,
megapixels/s, achieved GFLOP/s, that rate as a percentage of the same run's measured matmul peak for the
device and precision, the speed-up over the naive path, the end-to-end/model-only ratio, peak memory, and
the change against the previous run of the same machine.

The previous run is kept beside the report: ``<machine>.json`` is the run the report shows and
``<machine>.previous.json`` the one before it, so rerunning the report on the same JSON compares against
the same predecessor. Runs given together are taken in time order, each compared with the one before.
Smoke runs (``--quick``) are reported under ``<machine>-quick`` so they never replace a real measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = Path(__file__).resolve().parent / "reports"
COMMAND = ("python -m pytest benchmarks --benchmark-enable --benchmark-json=.benchmarks/latest.json "
           "&& python benchmarks/report.py .benchmarks/latest.json")

# What the issue asks of this machine (srn at 1280x720 on the CPU), checked at the top of the report.
TARGET_SPEEDUP = 2.0  # optimized path over the naive path
TARGET_PEAK_PCT = 75.0  # model-only GFLOP/s as % of the fp32 matmul peak
TARGET_E2E = 0.85  # end-to-end frames/s over model-only frames/s
CHECK_MODEL, CHECK_RES = "srn", "1280x720"


@dataclass
class Row:
    """One benchmark of one run, with its rates computed from the median round."""

    fullname: str
    group: str
    info: dict
    median_s: float
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
    def label(self) -> str:
        i = self.info
        if self.kind == "peak":
            return f"matmul {i['matmul']}x{i['matmul']}"
        if self.kind == "inference":
            return f"{i['model']} {i['resolution']} b{i['batch']}"
        if self.kind == "path":
            return f"{i['model']} {i['resolution']} {i['path']} ({i['frames']} frames)"
        if self.kind in ("e2e", "model-only"):
            what = "batch end-to-end" if self.kind == "e2e" else "model only"
            return f"{i['model']} {i['resolution']} {what} ({i['frames']} frames, b{i['batch']})"
        if self.kind == "training":
            return f"{i['model']} train step {i['resolution']} b{i['batch']}"
        if self.kind == "data":
            return f"{i['blur']} blur training batch {i['resolution']} b{i['batch']}"
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

    def peak(self, device: str, precision: str) -> float | None:
        for r in self.rows:
            if r.kind == "peak" and r.device == device and r.precision == precision:
                return r.gflops
        return None

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
                median_s=b["stats"]["median"], rounds=b["stats"]["rounds"])
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


def _checks(run: Run) -> list[str]:
    """The issue's acceptance figures for srn at 1280x720 (the run's large size) on the CPU, from this run."""
    lines = []
    naive = run.find(kind="path", path="naive", device="cpu", model=CHECK_MODEL)
    res = naive.info["resolution"] if naive else CHECK_RES  # a --quick run uses smaller frames
    model = run.find(kind="inference", model=CHECK_MODEL, resolution=res, device="cpu", precision="fp32", batch=1)
    pct = run.pct_of_peak(model) if model else None
    opt = run.find(kind="path", path="optimized", device="cpu", model=CHECK_MODEL)
    speedup = run.speedup(opt) if opt else None
    e2e = run.find(kind="e2e", device="cpu", model=CHECK_MODEL)
    ratio = run.e2e_ratio(e2e) if e2e else None
    items = [
        (f"optimized path over the naive one (`{CHECK_MODEL}`, CPU)", speedup, TARGET_SPEEDUP, "x"),
        (f"`{CHECK_MODEL}` {res} model only, % of the fp32 matmul peak (CPU)", pct, TARGET_PEAK_PCT, "%"),
        (f"`batch` end-to-end over model-only frames/s (`{CHECK_MODEL}`, CPU)", ratio, TARGET_E2E, "x"),
    ]
    for text, value, target, unit in items:
        if value is None:
            lines.append(f"- ? {text}: not measured in this run")
        else:
            mark = "pass" if value >= target else "FAIL"
            lines.append(f"- **{mark}** {text}: {_fmt(value)}{unit} (target >= {target:g}{unit})")
    return lines


def render_markdown(run: Run, prev: Run | None, chart: Path) -> str:
    d, mi = run.data, run.data.get("machine_info", {})
    meta = d.get("deblur", {})
    cpu = mi.get("cpu", {})
    commit = d.get("commit_info", {})
    out = [f"# Benchmarks: `{run.machine}`", ""]
    if meta.get("quick"):
        out += ["> **Smoke run (`--quick`)**: tiny resolutions and single rounds. These figures check that the "
                "suite works; they are not a measurement.", ""]
    out += [
        f"- CPU: {cpu.get('brand_raw', '?')} ({cpu.get('count', '?')} logical cores), "
        f"{meta.get('threads', '?')} torch thread(s); GPU: {meta.get('cuda') or 'none'}",
        f"- torch {meta.get('torch', '?')}, Python {mi.get('python_version', '?')}; run {run.datetime}, commit "
        f"`{str(commit.get('id', '?'))[:10]}`{' (uncommitted changes)' if commit.get('dirty') else ''}",
        f"- compared with: {f'{prev.datetime} (`{prev.path.name}`)' if prev else 'no earlier run of this machine'}",
        f"- regenerate: `{COMMAND}`",
        "",
        "Rates are from the median round. % of peak = achieved GFLOP/s (FLOPs counted by "
        "`torch.utils.flop_counter`, a multiply-add = 2) over the square-matmul GFLOP/s measured in the same "
        "run for the same device and precision. Peak memory: the rise during one call (CUDA: "
        "`max_memory_allocated`; CPU: resident high-water mark, a lower bound).",
        "",
        "## Acceptance figures",
        "",
        *_checks(run),
        "",
        f"![chart]({chart.name})",
        "",
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
            out += ["| benchmark | device | precision | GFLOP/s | rounds | Δ vs previous |",
                    "|---|---|---|---:|---:|---:|"]
            for r in rows:
                out.append(f"| {r.label} | {r.device} | {r.precision} | {_fmt(r.gflops, 1)} | {r.rounds} | "
                           f"{_delta(r, prev)} |")
        else:
            out += ["| benchmark | device | precision | frames/s | MP/s | GFLOP/s | % of peak | speed-up vs naive | "
                    "e2e/model | peak mem (MiB) | rounds | Δ frames/s vs previous |",
                    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in rows:
                out.append(
                    f"| {r.label} | {r.device} | {r.precision} | {_fmt(r.fps, 3)} | {_fmt(r.mps, 3)} | "
                    f"{_fmt(r.gflops if r.info.get('gflop') else None, 1)} | {_fmt(run.pct_of_peak(r), 1, '%')} | {_fmt(run.speedup(r), 2, 'x')} | "
                    f"{_fmt(run.e2e_ratio(r), 3)} | {_fmt(r.info.get('peak_memory_mb'), 1)} | {r.rounds} | "
                    f"{_delta(r, prev)} |")
        out.append("")
    return "\n".join(out)


def _group_order(group: str, rows: list[Row]) -> tuple:
    # the ceiling, the per-model sweeps from the smallest frames up, then the naive path, e2e and training
    order = ["peak", "inference", "naive-vs-optimized", "e2e", "training"]
    rank = order.index(group) if group in order else order.index("inference")
    return rank, min(r.info.get("megapixels", 0) / max(1, r.info.get("frames", 1)) for r in rows), group


_TITLES = {
    "peak": "Machine ceiling (square matmul)",
    "naive-vs-optimized": "Naive path vs optimized path",
    "e2e": "End-to-end `batch` vs model only",
    "training": "Training throughput (samples/s = frames/s)",
}


def render_chart(run: Run, png: Path) -> None:
    """% of the matmul peak and frames/s of every non-peak benchmark, one bar each, coloured by setting."""
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
    a1.set_xlabel("% of the measured matmul peak (same device and precision)")
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
    parser.add_argument("--out-dir", type=Path, default=REPORTS, help="where the reports go (default: %(default)s)")
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
