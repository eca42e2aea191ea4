"""Training throughput of NAFNet on a CPU: crops/s of one optimizer step at 256x256, ``nafnet``'s
former training forward (``nafnet_former.py``) beside today's, and the ``nafnet-cpu`` preset, in fp32
and (on a CPU with native bf16) under bf16 autocast.

A step is what ``deblur_core.train`` does with the preset's recipe: forward, L1 + 0.1 x FFT loss, backward,
gradient clipping, AdamW step, channels_last. The former and today's forward start from the same weights and
batch; their first losses must agree to float rounding (``test_current_step_matches_former``). GFLOP/s
counts the forward and backward passes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deblur_core.models import get_model
from harness import CPU_BF16, count_gflop, measure, randomise
from nafnet_former import former_train_forward

try:
    from deblur_core.losses import multiscale_loss
except ImportError as err:  # kornia missing, as on the GPU machine unless its wheels are carried
    pytest.skip(f"deblur_core's training code cannot be imported here: {err}", allow_module_level=True)

BATCH = 8  # crops per step, at the patch of the preset's training (256x256 in the full run)
# "compiled": today's forward under torch.compile (deblur-cli train --compile), forward and backward, compiled
# in the untimed first call; the C++ kernels it writes fuse the elementwise work between the layers
CASES = [("nafnet", "former"), ("nafnet", "current"), ("nafnet", "compiled"), ("nafnet-cpu", "current"),
         ("nafnet-cpu", "compiled")]
_NO_BF16 = pytest.mark.skipif(not CPU_BF16, reason="no native bf16 on this CPU: bf16 runs ~140x slower there")


def _setup(model_name: str, patch: int, seed: int = 0):
    torch.manual_seed(seed)
    model = randomise(get_model(model_name), seed=seed).train().to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(BATCH, 3, patch, patch, generator=g)
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)  # a blurred twin
    return model, blur.contiguous(memory_format=torch.channels_last), sharp


def _stepper(model: nn.Module, forward: str, precision: str, blur: torch.Tensor, sharp: torch.Tensor):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    if forward == "former":
        net = lambda x: former_train_forward(model, x)  # noqa: E731
    else:  # a compiled wrapper only for the case that times it
        net = torch.compile(model, dynamic=False) if forward == "compiled" else model

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = multiscale_loss(net(blur), sharp, "l1", 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=_NO_BF16)])
@pytest.mark.parametrize(("model_name", "forward"), CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_nafnet_train_step(benchmark, sizes, use_compile, model_name, forward, precision):
    if forward == "compiled" and not use_compile:
        pytest.skip("torch.compile step not asked for (pass --compile)")
    benchmark.group = "training-nafnet"
    patch = sizes.train_patch
    model, blur, sharp = _setup(model_name, patch)
    gflop = count_gflop(model, (BATCH, 3, patch, patch), backward=True)
    loss = measure(benchmark, _stepper(model, forward, precision, blur, sharp), sizes, device="cpu",
                   frames=BATCH, megapixels=BATCH * patch * patch / 1e6, gflop=gflop, kind="training-nafnet",
                   model=model_name, forward=forward, precision=precision, resolution=f"{patch}x{patch}",
                   batch=BATCH)
    assert torch.isfinite(torch.tensor(loss))


@pytest.mark.parametrize("model_name", ["nafnet", "nafnet-cpu"])
def test_current_step_matches_former(model_name):
    """Today's training forward computes the former one's loss and gradients, to float rounding."""
    results = []
    for forward in ("former", "current"):
        model, blur, sharp = _setup(model_name, 64)
        net = (lambda x: former_train_forward(model, x)) if forward == "former" else model
        loss = multiscale_loss(net(blur), sharp, "l1", 0.1)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (l0, g0), (l1, g1) = results
    assert abs(l0 - l1) <= 1e-6 * max(1.0, abs(l0))
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, atol=1e-5 * max(1.0, float(a.abs().max())), rtol=1e-4)


# the shapes weighed for the CPU preset: today's nafnet, four levels with few blocks, the chosen
# nafnet-cpu (blocks where the channels are many and the pixels few), and a wider four-level net
PRESET_CANDIDATES = {
    "w16-l3-e112-m2": dict(width=16, enc_blocks=(1, 1, 2), middle_blocks=2, dec_blocks=(1, 1, 1)),
    "w16-l4-e1111-m4": dict(width=16, enc_blocks=(1, 1, 1, 1), middle_blocks=4, dec_blocks=(1, 1, 1, 1)),
    "w16-l4-e1124-m6": dict(width=16, enc_blocks=(1, 1, 2, 4), middle_blocks=6, dec_blocks=(1, 1, 1, 1)),
    "w24-l4-e1111-m2": dict(width=24, enc_blocks=(1, 1, 1, 1), middle_blocks=2, dec_blocks=(1, 1, 1, 1)),
}


@pytest.mark.parametrize("what", ["train", "infer"])
@pytest.mark.parametrize("candidate", list(PRESET_CANDIDATES))
def test_preset_candidate(benchmark, sizes, candidate, what):
    """Training crops/s (fp32, the step above) and 1280x720 inference (fp32, the CPU inference path) of each
    shape weighed for ``nafnet-cpu``, in one run: the preset must cost at most 1/4 of srn's time per frame
    and reach 40% of the peak, with a receptive field for 40 px of blur (four levels)."""
    benchmark.group = "preset-candidates"
    kwargs = PRESET_CANDIDATES[candidate]
    torch.manual_seed(0)
    model = randomise(get_model("nafnet", **kwargs)).to(memory_format=torch.channels_last)
    info = dict(kind="preset-candidate", model=candidate, what=what, precision="fp32", batch=BATCH if what == "train"
                else 1, params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 3))
    if what == "train":
        patch = sizes.train_patch
        _, blur, sharp = _setup("nafnet", patch)
        gflop = count_gflop(model.train(), (BATCH, 3, patch, patch), backward=True)
        measure(benchmark, _stepper(model.train(), "current", "fp32", blur, sharp), sizes, device="cpu",
                frames=BATCH, megapixels=BATCH * patch * patch / 1e6, gflop=gflop, resolution=f"{patch}x{patch}",
                **info)
        return
    h, w = sizes.large
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    gflop = count_gflop(model.eval(), (1, 3, h, w))

    def infer():
        with torch.inference_mode():
            return model(x)

    out = measure(benchmark, infer, sizes, device="cpu", frames=1, megapixels=h * w / 1e6, gflop=gflop,
                  resolution=f"{w}x{h}", **info)
    assert out.shape == x.shape
