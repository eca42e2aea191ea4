"""Training batches made on the training device (deblur_core.data.batches): exact blur, determinism, workers."""

import pytest
import torch

from deblur_core.data.batches import KERNEL_SIZE, DeviceBatches
from kornia.filters import filter2d

from deblur_core.blur import draw_blur, linear_to_srgb, quantize_8bit, srgb_to_linear
from deblur_core.train import autocast_dtype
from helpers import planned_crop


def _images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random images with edges: a blurred and a sharp crop must differ
    return [torch.rand(3, 90 + 7 * i, 100, generator=g).round() * 0.6 + 0.2 for i in range(n)]


def _batches(images, **kw):
    args = dict(blur="mix", batch_size=6, patch=24, seed=3)
    args.update(kw)
    return DeviceBatches(lambda i: images[i], [tuple(im.shape[-2:]) for im in images], **args)


def test_same_step_same_batch_and_steps_differ():
    imgs = _images()
    db = _batches(imgs, noise=0.02, saturate=0.3, rotate=True)
    b1, s1 = db(5)
    b2, s2 = _batches(imgs, noise=0.02, saturate=0.3, rotate=True)(5)  # a fresh pipeline: a resumed run
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert b1.shape == s1.shape == (6, 3, 24, 24)
    assert not torch.equal(db(6)[1], s1)
    assert not torch.equal(_batches(imgs, noise=0.02, rank=1)(5)[1], s1)


@pytest.mark.parametrize("kind", ["gaussian", "motion", "shake", "video"])
def test_blur_is_the_true_convolution_of_the_sharp_crop(kind):
    """Without noise or saturation the blurred crop is the convolution of the crop with its context (kornia's,
    an independent reference; in linear light for video), rounded to 8 bits: the grouped convolution is exact."""
    imgs = _images()
    db = _batches(imgs, blur=kind)
    plan = db.planner(2)
    blurred, sharp = db.make(plan)
    full, m = db.planner.context, (KERNEL_SIZE - 1) // 2
    for j in range(2):
        crop = planned_crop(imgs, plan, j, full, sharp[j : j + 1])
        k = plan.blur.kernels[j : j + 1]
        if kind == "video":
            ref = linear_to_srgb(filter2d(srgb_to_linear(crop), k, border_type="reflect", behaviour="conv"))
        else:
            ref = filter2d(crop, k, border_type="reflect", behaviour="conv")
        ref = quantize_8bit(ref[..., m:-m, m:-m])
        # kornia reflects at the border, but the centre never sees it
        assert (ref - blurred[j : j + 1]).abs().max() <= 1 / 255 + 1e-6


def test_sharp_share_zero_draws_the_batches_of_before():
    imgs = _images()
    for blur in ("mix", "realistic"):
        plain = _batches(imgs, blur=blur, noise=0.02, saturate=0.3, jpeg=0.5)
        zero = _batches(imgs, blur=blur, noise=0.02, saturate=0.3, jpeg=0.5, sharp_share=0.0)
        assert plain.planner.sharp_share == 0.0
        for step in (0, 7):
            a, b = plain(step), zero(step)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_sharp_samples_come_back_as_they_went_in():
    """Without noise, JPEG or saturation, a 'none' sample's input is its target; every other one is blurred."""
    imgs = _images()
    db = _batches(imgs, blur="realistic", batch_size=32, sharp_share=0.8)
    plan = db.planner(3)
    blurred, sharp = db.make(plan)
    k = plan.blur.kernels
    c = k.shape[-1] // 2
    none = k[:, c, c] == 1
    assert none.any() and (~none).any()
    assert torch.equal(blurred[none], sharp[none])
    assert all(not torch.equal(blurred[i], sharp[i]) for i in (~none).nonzero().flatten().tolist())
    with pytest.raises(ValueError, match="sharp_share"):
        _batches(imgs, sharp_share=1.5)


def test_noise_changes_the_input_only():
    imgs = _images()
    clean_b, clean_s = _batches(imgs)(1)
    noisy_b, noisy_s = _batches(imgs, noise=0.05)(1)
    assert torch.equal(clean_s, noisy_s)
    resid = (noisy_b - clean_b).std().item()
    assert 0.005 < resid < 0.06


def test_saturated_highlights_are_clipped_in_the_target_too():
    """A saturated sample's input and target hold the same light: an unblurred one comes back as its target
    (up to the input's 8-bit rounding), so no network learns to dim the highlights of sharp frames."""
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, 90, 100, generator=g).round() * 0.75 + 0.24 for _ in range(3)]  # 0.24 or 0.99
    clean_b, clean_s = _batches(imgs, blur="realistic", batch_size=16)(1)
    db = _batches(imgs, blur="realistic", batch_size=16, saturate=1.0, sharp_share=1.0)
    plan = db.planner(1)
    sat_b, sat_s = db.make(plan)
    assert (sat_s > clean_s + 1 / 255).any() and (sat_s >= clean_s - 1e-6).all()  # only highlights change
    c = plan.blur.kernels.shape[-1] // 2
    none = plan.blur.kernels[:, c, c] == 1
    assert none.any()
    assert (sat_b[none] - sat_s[none]).abs().max() <= 0.5 / 255 + 1e-6


def test_rotate_transposes_some_crops():
    imgs = _images()
    plan = _batches(imgs, rotate=True).planner(0)
    assert plan.transpose.any() and not _batches(imgs).planner(0).transpose.any()


def test_workers_draw_the_same_batches_as_one_process():
    imgs = _images()
    one = list(_batches(imgs, noise=0.01).iterate(3, 6))
    two = list(_batches(imgs, noise=0.01, workers=2).iterate(3, 6))
    assert len(one) == len(two) == 3
    for (b1, s1), (b2, s2) in zip(one, two):
        assert torch.equal(b1, b2) and torch.equal(s1, s2)


def test_small_images_are_padded_not_refused():
    imgs = [torch.rand(3, 20, 30), torch.rand(3, 60, 70)]
    b, s = _batches(imgs, patch=32)(0)
    assert b.shape == (6, 3, 32, 32)


def test_mix_kernels_of_every_kind_sum_to_one():
    g = torch.Generator().manual_seed(0)
    d = draw_blur(16, "mix", g)
    assert d.kernels.shape[0] == 16 and d.kernels.shape[-1] <= KERNEL_SIZE
    assert torch.allclose(d.kernels.sum(dim=(1, 2)), torch.ones(16), atol=1e-5)
    assert d.linear_light.dtype == torch.bool
    with pytest.raises(ValueError, match="unknown blur kind"):
        draw_blur(2, "zoom")


def test_autocast_choice():
    cpu = torch.device("cpu")
    from deblur_core.precision import cpu_has_amx_bf16

    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_amx_bf16() else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cpu) is torch.float16


def test_bf16_training_step_on_cpu_learns():
    """A few steps under bf16 autocast at tiny size: finite loss that falls (any CPU runs bf16 correctly,
    if slowly where it lacks native support)."""
    from deblur_core.models import get_model
    from deblur_core.losses import multiscale_loss

    torch.manual_seed(0)
    imgs = _images()
    db = _batches(imgs, blur="gaussian", batch_size=4, patch=16)
    model = get_model("srn-small").train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    blur, sharp = db(0)
    losses = []
    for _ in range(8):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = multiscale_loss(model(blur), sharp, "l1", fft=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
