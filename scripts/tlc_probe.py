"""Does TLC help a nafnet model on whole photos? PSNR and SSIM with the channel attention pooled over the whole
frame (as trained) and over TLC's windows (:func:`deblur_core.models.nafnet.use_tlc`), and the seconds each
takes per photo.

The photos and their blur are those ``deblur-cli eval --data SPEC --blur KIND`` scores: the same dataset,
validation count and seed, every held-out photo whole (tiled only where the memory budget says so, as eval
does; a tile is windowed in its own pixels).

Usage, from the repository root (needs ``data/photos``, see ``scripts/build_photos.py``)::

    python scripts/tlc_probe.py --model nafnet-cpu --blur gaussian --blur none

Prints a Markdown table; ``--out FILE`` also writes its rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from torch import nn

from deblur_core.data import open_dataset
from deblur_core.evaluate import evaluate
from deblur_core.inference import load_deblurrer

VAL_COUNT = 48  # deblur-cli eval's default; whole-photo scoring reads every held-out photo regardless


class _Stopwatch:
    """Seconds a module spends in its forward calls, summed."""

    def __init__(self, model: nn.Module) -> None:
        self.seconds, self._start = 0.0, 0.0
        model.register_forward_pre_hook(self._begin)
        model.register_forward_hook(self._end)

    def _begin(self, module, args) -> None:
        self._start = time.perf_counter()

    def _end(self, module, args, output) -> None:
        self.seconds += time.perf_counter() - self._start


def probe(model: str, data: str, blur: str, *, tlc: bool, device: str, precision: str) -> dict:
    """One row: ``model`` with or without TLC on the held-out photos of ``data`` blurred by ``blur``."""
    deb = load_deblurrer(model, device=device, precision=precision, tlc=tlc)
    source = open_dataset(data, blur=blur, val_count=VAL_COUNT, for_eval=True)
    watch = _Stopwatch(deb.model)
    start = time.perf_counter()
    result = evaluate(deb.model, source, device=deb.device, precision=deb.precision, baseline=False)
    wall = time.perf_counter() - start
    n = result["images"]
    return {"model": model, "blur": blur, "tlc": tlc, "precision": deb.precision, "photos": n,
            "psnr_blurred": result["rows"]["blurred"]["psnr"], "psnr": result["rows"]["model"]["psnr"],
            "ssim": result["rows"]["model"]["ssim"], "network_s_per_photo": watch.seconds / n,
            "wall_s_per_photo": wall / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nafnet-cpu", help="a nafnet variant")
    parser.add_argument("--data", default="folder:data/photos", help="dataset spec, as for deblur-cli eval")
    parser.add_argument("--blur", action="append", help="blur kind (repeatable; default: gaussian)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", type=Path, help="also write the rows here as JSON")
    args = parser.parse_args()
    rows = [probe(args.model, args.data, blur, tlc=tlc, device=args.device, precision=args.precision)
            for blur in args.blur or ["gaussian"] for tlc in (False, True)]
    print("| model | blur | TLC | photos | blurred PSNR | PSNR | SSIM | network s/photo | wall s/photo |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['blur']} | {'on' if r['tlc'] else 'off'} | {r['photos']} | "
              f"{r['psnr_blurred']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['network_s_per_photo']:.2f} | "
              f"{r['wall_s_per_photo']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
