"""Published networks (spandrel's classes at their authors' sizes, random weights: speed does not depend on the
values) through the tool's own path (``load_deblurrer`` with the file: its memory-budget tile plan, NAFNet in the
project's NAFNet), beside the shipped ``srn`` and ``nafnet-cpu`` and beside NAFNet in spandrel's own class, at
the large size, fp32, in one run (group ``published-networks``). Needs the zoo extra; Restormer needs
spandrel-extra-arches. FlopCounterMode does not count FFTs: FFTformer's GFLOP (and so its GFLOP/s) leave them out.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings

import pytest
import torch

from deblur_core.inference import load_deblurrer
from harness import count_gflop, measure, photo_batch

spandrel = pytest.importorskip("spandrel")

NAFNET64 = {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]}
# case -> (module, class, constructor arguments) of a published network, or None for a shipped model
CASES = {
    "srn": None,
    "nafnet-cpu": None,
    "NAFNet-GoPro-width64": ("spandrel.architectures.NAFNet", "NAFNet", NAFNET64),
    "NAFNet-GoPro-width64-spandrel-class": ("spandrel.architectures.NAFNet", "NAFNet", NAFNET64),
    "FFTformer-GoPro": ("spandrel.architectures.FFTformer", "FFTformer", {}),
    "Restormer-motion": ("spandrel_extra_arches.architectures.Restormer", "Restormer", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_published_networks(benchmark, sizes, case, tmp_path):
    benchmark.group = "published-networks"
    x = photo_batch(1, sizes.large)
    h, w = sizes.large
    spec = CASES[case]
    if spec is None:
        deb = load_deblurrer(case, device="cpu", precision="fp32")
        run, network, path = (lambda: deb(x)), deb.model, "project"
    else:
        module, cls, kwargs = spec
        pytest.importorskip(module.split(".")[0])
        try:
            importlib.import_module("spandrel_extra_arches").install(ignore_duplicates=True)
        except ImportError:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = getattr(importlib.import_module(module), cls)(**kwargs)
        file = tmp_path / f"{case}.pth"
        torch.save(net.state_dict(), file)
        if case.endswith("-spandrel-class"):  # the authors' forward as spandrel calls it, on the whole frame
            desc = spandrel.ModelLoader().load_from_state_dict(torch.load(file, weights_only=True)).eval()
            network, path = desc.model, "spandrel class, whole frame"

            def run():
                with torch.inference_mode():
                    return desc(x.clone())
        else:
            deb = load_deblurrer(None, file, device="cpu", precision="fp32")
            run, network, path = (lambda: deb(x)), deb.model, "project"
    plan = deb.plan(h, w) if path == "project" else None
    # one timed round after the one that measures memory: these take up to minutes a frame on a 2-core CPU
    out = measure(benchmark, run, dataclasses.replace(sizes, min_rounds=1),  device="cpu", frames=1, megapixels=h * w / 1e6,
                  gflop=count_gflop(network, tuple(x.shape)), kind="published", model=case, path=path,
                  tiles=plan.tiles(h, w, 32) if plan else 1, precision="fp32", resolution=f"{w}x{h}", batch=1)
    assert out.shape == x.shape
