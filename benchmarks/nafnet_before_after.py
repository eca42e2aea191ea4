"""``nafnet`` at 1280x720 on the CPU: its forward before the CPU inference path existed against today's.

Both run in one process, interleaved, on the shipped weights, channels_last under ``torch.inference_mode``
as ``harness.py`` runs models; the earlier forward is ``reference_forward`` of tests/core/test_nafnet.py.
Wall time and the process's CPU time are reported: with one thread the CPU time is the better figure where
other processes share the cores, as it leaves out the time spent waiting for one. From the repository root,
on a quiet machine::

    python benchmarks/nafnet_before_after.py --threads 2 --runs 7
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "core"))

from test_nafnet import reference_forward  # noqa: E402

from deblur_core.checkpoint import load_model, pretrained_path  # noqa: E402


def _cpu_name() -> str:
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=7, help="timed calls of each forward, after one warm-up call")
    parser.add_argument("--size", default="720x1280", help="HxW")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    model = load_model(pretrained_path("nafnet"))[0].to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    paths = {"before": lambda: reference_forward(model, x), "now": lambda: model(x)}
    wall = {name: [] for name in paths}
    cpu = {name: [] for name in paths}
    with torch.inference_mode():
        diff = (paths["now"]() - paths["before"]()).abs().max().item()
        for _ in range(args.runs):
            for name, run in paths.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    print(f"{_cpu_name()}, {args.threads} thread(s), torch {torch.__version__}, nafnet {h}x{w}, {args.runs} runs; "
          f"max abs difference {diff:.1e}")
    for label, times in (("wall", wall), ("cpu", cpu)):
        for name, ts in times.items():
            print(f"  {label} {name:6s} min {min(ts):.3f} s  median {statistics.median(ts):.3f} s")
        print(f"  {label} speed-up: {min(times['before']) / min(times['now']):.2f}x (min), "
              f"{statistics.median(times['before']) / statistics.median(times['now']):.2f}x (median)")


if __name__ == "__main__":
    main()
