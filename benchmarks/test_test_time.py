"""Test-time options, model only, on the CPU at the large size: the plain network beside its self-ensemble over 8
flips and rotations (``--tta 8``) and, for the nafnet models, NAFNet's test-time local converter (``--tlc``), so
that the model card's seconds per frame of each option come from one run on one machine (group
``test-time-options``; fp32, one photograph, shipped weights)."""

from __future__ import annotations

import pytest

from deblur_core.inference import load_deblurrer
from harness import count_gflop, measure, photo_batch

CASES = [("nafnet-cpu", 1, False), ("nafnet-cpu", 1, True), ("nafnet-cpu", 8, False), ("srn", 1, False),
         ("srn", 8, False)]


@pytest.mark.parametrize(("name", "tta", "tlc"), CASES, ids=[f"{n}-tta{t}{'-tlc' if c else ''}" for n, t, c in CASES])
def test_test_time_options(benchmark, sizes, name, tta, tlc):
    benchmark.group = "test-time-options"
    deb = load_deblurrer(name, device="cpu", precision="fp32", tta=tta, tlc=tlc)
    x = photo_batch(1, sizes.large)
    h, w = sizes.large
    network = deb.model.model if tta > 1 else deb.model  # the self-ensemble runs it tta times
    out = measure(benchmark, lambda: deb(x), sizes, device="cpu", frames=1, megapixels=h * w / 1e6,
                  gflop=tta * count_gflop(network, tuple(x.shape)), kind="test-time", model=name, tta=tta, tlc=tlc,
                  precision="fp32", resolution=f"{w}x{h}", batch=1)
    assert out.shape == x.shape
