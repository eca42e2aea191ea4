"""Long curved motion, sub-frame pans, non-uniform (layered) blur, sensor noise and JPEG (deblur_core.blur)."""

import pytest
import torch
import torch.nn.functional as F
from kornia.filters import filter2d

from deblur_core.data.batches import DeviceBatches
from deblur_core.blur import (LONG_KERNEL, REALISTIC_SHARES, curved_paths, draw_blur, jpeg_compress,
                              kernel_size, linear_to_srgb, pad_kernels, path_kernels, quantize_8bit, render_blur,
                              sensor_noise, soft_masks, srgb_to_linear, synth_blur, valid_convolve)
from deblur_core.blur.layered import mask_params
from deblur_core.blur.paths import MAX_REACH
from helpers import planned_crop


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def _extent(k):
    """Largest distance between two pixels of a kernel holding weight (its streak's length, in px)."""
    ys, xs = torch.nonzero(k > 1e-4, as_tuple=True)
    pts = torch.stack([xs, ys], -1).float()
    return float(torch.cdist(pts, pts).max())


def test_curved_paths_span_their_length_centred_on_their_centroid():
    length = torch.tensor([5.0, 25.0, 40.0])
    pts = curved_paths(length, g(1), points=200, speed=0.5, bend=0.25)
    assert pts.shape == (3, 200, 2)
    torch.testing.assert_close(pts.mean(dim=1), torch.zeros(3, 2), atol=1e-4, rtol=0)
    span = (pts[:, -1] - pts[:, 0]).norm(dim=-1)
    reach = pts.norm(dim=-1).amax(dim=1)
    # end points stay `length` apart unless the path had to shrink to fit the kernel
    for s, r, l in zip(span.tolist(), reach.tolist(), length.tolist()):
        assert r <= MAX_REACH + 1e-4
        assert s == pytest.approx(l, rel=1e-4) or r == pytest.approx(MAX_REACH, rel=1e-4)


def test_straight_constant_speed_path_is_evenly_spaced_and_speed_changes_are_not():
    straight = curved_paths(torch.tensor([30.0]), g(2), points=31, speed=0.0, bend=0.0)[0]
    steps = straight.diff(dim=0).norm(dim=-1)
    torch.testing.assert_close(steps, torch.full_like(steps, 1.0), atol=1e-4, rtol=0)
    varying = curved_paths(torch.tensor([30.0]), g(2), points=31, speed=0.5, bend=0.0)[0]
    vs = varying.diff(dim=0).norm(dim=-1)
    assert float(vs.max() / vs.min()) > 1.05  # the camera sped up or slowed down


def test_long_kernels_are_25_to_40_px_long_normalised_and_fit():
    d = draw_blur(24, "long", g(3))
    assert d.kernels.shape == (24, LONG_KERNEL, LONG_KERNEL) and d.uniform
    torch.testing.assert_close(d.kernels.sum(dim=(1, 2)), torch.ones(24))
    ext = [_extent(k) for k in d.kernels]
    assert min(ext) >= 23 and max(ext) <= 2 * MAX_REACH + 2
    assert 0 < int(d.linear_light.sum()) < 24  # both linear-light and sRGB averages are drawn


def test_sub_frame_pans_leave_separate_dots():
    # 7-15 sub-frames over 30+ px: the kernel is a row of dots, not a streak (few pixels hold weight)
    pts = curved_paths(torch.tensor([36.0]), g(4), points=9, speed=0.0, bend=0.0)
    k = path_kernels(pts, LONG_KERNEL)[0]
    assert int((k > 1e-6).sum()) <= 4 * 9
    dense = path_kernels(curved_paths(torch.tensor([36.0]), g(4), points=200, speed=0.0, bend=0.0), LONG_KERNEL)[0]
    assert int((dense > 1e-6).sum()) > 2 * int((k > 1e-6).sum())


def test_fft_and_direct_convolution_agree():
    x = torch.rand(2, 3, 70, 64, generator=g(5))
    k = torch.rand(2, 31, 31, generator=g(6))
    k = k / k.sum(dim=(1, 2), keepdim=True)
    fft = valid_convolve(x, k)
    ref = F.conv2d(x.reshape(1, 6, 70, 64), k.flip(-1, -2).repeat_interleave(3, 0)[:, None], groups=6)
    torch.testing.assert_close(fft, ref.view(2, 3, 40, 34), atol=1e-5, rtol=0)
    # the same as kornia's convolution with reflection, centre kept
    reflected = filter2d(x, k, border_type="reflect", behaviour="conv")
    torch.testing.assert_close(fft, reflected[..., 15:-15, 15:-15], atol=1e-5, rtol=0)


def test_masks_are_soft_blobs_of_reasonable_size():
    m = soft_masks(mask_params(64, g(7)), 96, 128)
    assert m.shape == (64, 1, 96, 128) and m.min() >= 0 and m.max() <= 1
    area = m.mean(dim=(1, 2, 3))
    assert area.min() > 0.02 and area.max() < 0.6
    edge = ((m > 0.1) & (m < 0.9)).float().mean(dim=(1, 2, 3))
    assert (edge > 0).all()  # soft edges, not a hard cut


def test_nonuniform_blur_moves_the_foreground_and_background_differently():
    """Deep inside the mask the blur is the foreground's kernel, far outside it the background's."""
    torch.manual_seed(0)
    x = F.interpolate(torch.rand(1, 3, 40, 40, generator=g(8)), size=200, mode="bilinear").expand(4, 3, 200, 200)
    d = draw_blur(4, "nonuniform", g(9))
    assert not d.uniform and d.layered.all()
    out = render_blur(x, d)
    m = soft_masks(d.masks, 200, 200)
    assert m.shape == (4, 1, 200, 200)
    r = LONG_KERNEL // 2
    fg = render_blur(x, type(d)(d.fg_kernels, d.linear_light))  # the whole image moving as the foreground does
    bg = render_blur(x, type(d)(d.kernels, d.linear_light))
    # a pixel's exposure is all foreground where the mask, widened by the kernel, is 1; all background where 0
    wide = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)
    core = -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r)
    inside, outside = core > 0.999, wide < 1e-3
    for i in range(4):
        if inside[i].any():
            assert (out[i] - fg[i]).abs()[:, inside[i, 0]].max() < 2e-3
        assert outside[i].any()
        assert (out[i] - bg[i]).abs()[:, outside[i, 0]].max() < 2e-3
        assert not torch.allclose(fg[i], bg[i], atol=1e-2)
    assert synth_blur(x, "nonuniform", g(9)).kernels is None  # no single kernel: no non-blind baseline


@pytest.mark.parametrize("kind", ["long", "nonuniform"])
def test_render_with_context_equals_reflected_render_away_from_borders(kind):
    """A crop with context and the crop alone (reflected at its borders) blur alike where no border reaches:
    the foreground's shape is placed within the output's frame, whatever context comes with it."""
    x = torch.rand(3, 3, 150, 140, generator=g(10))
    d = draw_blur(3, kind, g(11))
    r = d.kernels.shape[-1] // 2
    with_context = render_blur(x, d, context=True)
    alone = render_blur(x[..., r:-r, r:-r], d)
    torch.testing.assert_close(with_context[..., r:-r, r:-r], alone[..., r:-r, r:-r], atol=1e-5, rtol=0)


def test_realistic_mix_draws_every_part():
    assert not set(REALISTIC_SHARES) & {"gaussian", "motion", "shake", "video"}  # its own recipes, named apart
    d = draw_blur(400, "realistic", g(12))
    share = float(d.layered.float().mean())
    assert share == pytest.approx(REALISTIC_SHARES["nonuniform"], abs=0.07)
    ext = torch.tensor([_extent(k) for k in d.kernels[~d.layered][:120]])
    assert ext.min() < 10 and ext.max() > 30  # short and long blur both appear
    assert kernel_size("realistic") == LONG_KERNEL and kernel_size("mix") == 25


@pytest.mark.parametrize("strength", [None, 0.5])
def test_broad_draws_mix_or_realistic_half_each(strength):
    n = 240
    d = draw_blur(n, "broad", g(21), strength=strength)
    # the same draws made part by part: which part each sample takes, then each part's samples
    gen = g(21)
    choice = torch.randint(0, 2, (n,), generator=gen)
    mix = draw_blur(int((choice == 0).sum()), "mix", gen, strength=strength)
    realistic = draw_blur(int((choice == 1).sum()), "realistic", gen, strength=strength)
    assert 0.4 < choice.float().mean() < 0.6
    assert d.kernels.shape == (n, LONG_KERNEL, LONG_KERNEL) and kernel_size("broad") == LONG_KERNEL
    assert torch.equal(d.kernels[choice == 0], pad_kernels(mix.kernels, LONG_KERNEL))
    assert torch.equal(d.kernels[choice == 1], realistic.kernels)
    assert torch.equal(d.linear_light[choice == 0], mix.linear_light)
    assert not d.layered[choice == 0].any() and torch.equal(d.layered[choice == 1], realistic.layered)
    assert torch.equal(d.masks[choice == 1], realistic.masks)

def test_sensor_noise_follows_read_and_shot_levels():
    flat = torch.full((2, 3, 64, 64), 0.5)
    gen = torch.Generator().manual_seed(13)
    out = sensor_noise(flat, torch.tensor([0.0, 0.02]), torch.tensor([0.0, 0.0]), gen)
    assert torch.equal(out[0], flat[0])
    assert float((out[1] - 0.5).std()) == pytest.approx(0.02, rel=0.1)
    shot = sensor_noise(flat, torch.zeros(2), torch.tensor([0.0, 0.002]), gen)
    assert float((shot[1] - 0.5).std()) == pytest.approx((0.002 * 0.5) ** 0.5, rel=0.1)


def test_jpeg_compresses_only_where_asked_and_returns_8_bit_values():
    x = F.interpolate(torch.rand(2, 3, 16, 16, generator=g(14)), size=64, mode="bicubic").clamp(0, 1)
    x = quantize_8bit(x)
    out = jpeg_compress(x, torch.tensor([0.0, 75.0]))
    assert torch.equal(out[0], x[0])
    err = float((out[1] - x[1]).square().mean())
    assert 0 < err < 0.006  # a visible but mild loss (PSNR above 22 dB on this colourful noise)
    assert float((jpeg_compress(x, 20.0) - x).square().mean()) > err  # lower quality, larger loss
    torch.testing.assert_close(out[1] * 255, (out[1] * 255).round(), atol=1e-4, rtol=0)
    gray = jpeg_compress(x[:1, :1], 50.0)
    assert gray.shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(x, 120.0)
    assert not torch.equal(synth_blur(x, "long", g(1), jpeg_quality=50).blurred,
                           synth_blur(x, "long", g(1), quantize=True).blurred)


@pytest.mark.parametrize("kind", ["long", "nonuniform", "realistic"])
def test_training_batches_are_the_render_of_their_crops(kind):
    """DeviceBatches' blurred crop is render_blur of the sharp crop with its context, rounded to 8 bits."""
    gen = torch.Generator().manual_seed(15)
    imgs = [torch.rand(3, 130 + 9 * i, 140, generator=gen).round() * 0.6 + 0.2 for i in range(3)]
    db = DeviceBatches(lambda i: imgs[i], [tuple(im.shape[-2:]) for im in imgs], blur=kind, batch_size=4,
                       patch=24, seed=1)
    plan = db.planner(3)
    blurred, sharp = db.make(plan)
    full = db.planner.context
    assert full == 24 + LONG_KERNEL - 1
    for j in range(4):
        crop = planned_crop(imgs, plan, j, full, sharp[j : j + 1])
        draw = plan.blur
        one = type(draw)(draw.kernels[j : j + 1], draw.linear_light[j : j + 1],
                         *(None if t is None else t[j : j + 1] for t in (draw.fg_kernels, draw.masks, draw.layered)))
        ref = quantize_8bit(render_blur(crop, one, context=True))
        assert (ref - blurred[j : j + 1]).abs().max() <= 1 / 255 + 1e-6


def test_linear_light_average_differs_from_srgb_average():
    x = torch.rand(1, 3, 80, 80, generator=g(16)).round()  # black and white: where the two averages differ most
    d = draw_blur(1, "long", g(17))
    lin = render_blur(x, type(d)(d.kernels, torch.tensor([True])))
    srgb = render_blur(x, type(d)(d.kernels, torch.tensor([False])))
    assert float((lin - srgb).mean()) > 0.05  # linear light averages to brighter sRGB values
    reference = linear_to_srgb(filter2d(srgb_to_linear(x), d.kernels, border_type="reflect", behaviour="conv"))
    torch.testing.assert_close(lin, reference, atol=1e-4, rtol=0)
