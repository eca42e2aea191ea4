from dataclasses import fields

import pytest
import torch

from deblur_core.blur import (
    BLUR_KINDS,
    BlurDraw,
    average_frames,
    check_kind,
    draw_blur,
    draw_cifar_sigmas,
    gaussian_blur,
    gaussian_kernels,
    motion_kernels,
    opencv_gaussian_ksize,
    pan_paths,
    path_kernels,
    random_motion_kernels,
    render_blur,
    shake_kernels,
    srgb_to_linear,
    linear_to_srgb,
    synth_blur,
)


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def _check_kernels(k):
    assert k.ndim == 3 and k.shape[1] == k.shape[2] and k.shape[1] % 2 == 1
    assert (k >= 0).all()
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(k.shape[0]), atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gaussian_kernels(torch.tensor([1.0, 2.0, 3.0])),
        lambda: motion_kernels(torch.tensor([3.0, 10.0, 21.0]), torch.tensor([0.0, 45.0, 100.0])),
        lambda: random_motion_kernels(5, g()),
        lambda: shake_kernels(5, 25, g()),
        lambda: synth_blur(torch.rand(6, 3, 40, 40), "mix", g()).kernels,
        lambda: synth_blur(torch.rand(3, 3, 40, 40), "video", g()).kernels,
    ],
)
def test_kernels_are_normalised(make):
    _check_kernels(make())


def test_gaussian_recipe_uses_opencv_kernel_sizes():
    assert [opencv_gaussian_ksize(s) for s in (1, 2, 3)] == [7, 13, 19]
    for s in (0.5, 1.3, 2.7, 4.0):
        assert opencv_gaussian_ksize(s) == (round(s * 6 + 1) | 1)
    try:
        import cv2  # optional: compare with OpenCV itself when it is installed
    except ImportError:
        return
    for s in (1.0, 2.0, 3.0):
        k = cv2.getGaussianKernel(opencv_gaussian_ksize(s), s)
        assert k.shape[0] == opencv_gaussian_ksize(s)


def test_cifar_recipe_draws_sigma_from_1_2_3():
    s = draw_cifar_sigmas(300, g())
    assert set(s.tolist()) == {1.0, 2.0, 3.0}
    k = synth_blur(torch.rand(4, 3, 32, 32), "gaussian", g()).kernels
    assert k.shape[-1] == 19  # the common size is OpenCV's choice for the largest sigma


@pytest.mark.parametrize("kind", [*BLUR_KINDS, "mix"])
def test_same_seed_same_blur_and_different_seed_differs(kind):
    x = torch.rand(4, 3, 37, 53, generator=g(9))
    a = synth_blur(x, kind, g(1)).blurred
    b = synth_blur(x, kind, g(1)).blurred
    c = synth_blur(x, kind, g(2)).blurred
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", ["motion", "shake", "video", "mix"])
def test_per_sample_kernels_in_one_batch_differ(kind):
    k = synth_blur(torch.rand(4, 3, 40, 40), kind, g(3)).kernels
    assert not torch.allclose(k[0], k[1])


def test_gaussian_per_sample_sigma_equals_one_at_a_time():
    x = torch.rand(3, 3, 40, 40, generator=g(4))
    sig = torch.tensor([1.0, 2.0, 3.0])
    batched = gaussian_blur(x, sig)
    for i in range(3):
        alone = gaussian_blur(x[i : i + 1], float(sig[i]))
        # kernels differ in size (7 vs 19), the 3-sigma support makes the difference negligible
        assert torch.allclose(batched[i], alone[0], atol=2e-3)
    assert not torch.allclose(batched[0], batched[2])


@pytest.mark.parametrize("kind", [*BLUR_KINDS, "mix"])
@pytest.mark.parametrize("channels", [1, 3])
def test_constant_image_stays_constant_and_shape_kept(kind, channels):
    x = torch.full((3, channels, 37, 53), 0.37)
    r = synth_blur(x, kind, g())
    assert r.blurred.shape == x.shape
    assert torch.allclose(r.blurred, x, atol=1e-5)
    assert r.linear_light.shape == (3,) and r.linear_light.dtype == torch.bool


def test_blur_really_blurs():
    x = torch.rand(2, 3, 48, 48, generator=g(5))
    for kind in BLUR_KINDS:
        y = synth_blur(x, kind, g()).blurred
        # high frequencies go down
        assert (y.diff(dim=-1).abs().mean() < 0.7 * x.diff(dim=-1).abs().mean()), kind


def test_video_average_of_a_static_scene_is_the_scene():
    frame = torch.rand(2, 3, 20, 30, generator=g(6))
    frames = frame[:, None].expand(2, 7, 3, 20, 30)
    assert torch.allclose(average_frames(frames), frame, atol=1e-5)
    moving = torch.stack([frame, 1 - frame], dim=1)
    lin = average_frames(moving)
    plain = moving.mean(dim=1)
    assert not torch.allclose(lin, plain, atol=1e-3)  # linear light is not an sRGB average
    assert torch.allclose(linear_to_srgb(srgb_to_linear(frame)), frame, atol=1e-5)


def test_pan_with_zero_shift_is_identity():
    x = torch.rand(2, 3, 24, 24, generator=g(7))
    d = draw_blur(2, "video", g(7))
    k = torch.zeros(2, 3, 3)
    k[:, 1, 1] = 1
    still = BlurDraw(k, d.linear_light)
    assert torch.allclose(render_blur(x, still), x, atol=1e-4)


def test_a_pan_is_its_sub_frames_averaged_in_linear_light_and_crops_match_whole_images():
    """A pan's kernel is its sub-frames rasterised: rendering it equals shifting the photo to each sub-frame
    and averaging the copies in linear light (up to resampling rounding); crops with context see the same."""
    x = torch.nn.functional.interpolate(torch.rand(3, 3, 16, 16, generator=g(8)), size=80, mode="bilinear")
    paths = pan_paths(3, g(9))
    d = BlurDraw(path_kernels(paths), torch.ones(3, dtype=torch.bool))
    r = d.kernels.shape[-1] // 2
    whole = render_blur(x, d)
    ys, xs = torch.meshgrid(torch.arange(80.0), torch.arange(80.0), indexing="ij")
    copies = []
    for t in range(paths.shape[1]):  # the content moved by each sub-frame's (dx, dy), bilinear
        dx, dy = paths[:, t, 0], paths[:, t, 1]
        grid = torch.stack([(xs[None] - dx[:, None, None]) / 79 * 2 - 1, (ys[None] - dy[:, None, None]) / 79 * 2 - 1], -1)
        light = srgb_to_linear(x)  # a sensor adds up light: the resampling too happens in linear light
        copies.append(torch.nn.functional.grid_sample(light, grid, align_corners=True, padding_mode="reflection"))
    averaged = linear_to_srgb(torch.stack(copies, dim=1).mean(dim=1))
    inner = (..., slice(r, -r), slice(r, -r))  # away from the borders, where reflection differs
    torch.testing.assert_close(whole[inner], averaged[inner], atol=2e-3, rtol=0)
    cropped = render_blur(x, d, context=True)
    torch.testing.assert_close(cropped, whole[inner], atol=1e-5, rtol=0)


def test_mix_renders_each_sample_as_its_kind_does_alone():
    x = torch.rand(8, 3, 40, 44, generator=g(10))
    d = draw_blur(8, "mix", g(11))
    assert d.linear_light.any() and not d.linear_light.all()  # pans (linear light) and sRGB kernels in one batch
    mixed = synth_blur(x, "mix", g(11)).blurred
    for i in range(8):
        one = BlurDraw(*(None if t is None else t[i : i + 1] for t in (getattr(d, f.name) for f in fields(d))))
        torch.testing.assert_close(mixed[i : i + 1], render_blur(x[i : i + 1], one), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", BLUR_KINDS)
def test_strength_runs_from_mild_to_strong(kind):
    # smooth structure 8 px across: pixel noise would be averaged flat by 25 px as much as by 40 px
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12, generator=g(8)), size=96, mode="bilinear")
    mild, strong = (float((synth_blur(x, kind, g(1), strength=s).blurred - x).abs().mean()) for s in (0.0, 1.0))
    assert 0 < mild < strong
    assert torch.equal(synth_blur(x, kind, g(3), strength=0.5).blurred, synth_blur(x, kind, g(3), strength=0.5).blurred)


def test_strength_sets_the_size_not_the_generator():
    x = torch.rand(3, 3, 48, 48, generator=g(8))
    # gaussian: sigma 0.5 + 3.5 * strength, the same for every sample whatever the generator
    k = synth_blur(x, "gaussian", g(1), strength=1.0).kernels
    assert k.shape[-1] == opencv_gaussian_ksize(4.0) and torch.equal(k[0], k[2])
    torch.testing.assert_close(k[:1], gaussian_kernels(torch.tensor([4.0])))
    # motion: length 3 + 28 * strength px; only the direction is drawn
    assert synth_blur(x, "motion", g(1), strength=1.0).kernels.shape[-1] == 33
    assert synth_blur(x, "shake", g(1), strength=0.0).kernels.shape[-1] == 7
    assert synth_blur(x, "shake", g(1), strength=1.0).kernels.shape[-1] == 41


def test_bad_strength_and_kind_checks():
    with pytest.raises(ValueError, match="strength must be in"):
        synth_blur(torch.rand(1, 3, 16, 16), "motion", strength=2.0)
    check_kind("mix")
    with pytest.raises(ValueError, match=r"unknown blur kind 'mix'; expected one of \('gaussian'"):
        check_kind("mix", mix=False)
    with pytest.raises(ValueError, match="unknown blur kind 'zoom'"):
        check_kind("zoom")


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        synth_blur(torch.rand(3, 32, 32), "gaussian")
    with pytest.raises(ValueError, match="unknown blur kind 'blurry'"):
        synth_blur(torch.rand(1, 3, 32, 32), "blurry")
    with pytest.raises(ValueError, match="positive"):
        gaussian_blur(torch.rand(1, 3, 32, 32), -1.0)
    with pytest.raises(TypeError, match="float"):
        synth_blur(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "motion")
    with pytest.raises(ValueError, match="odd"):
        shake_kernels(2, 24)


def test_none_is_the_image_itself_with_no_kernel():
    x = torch.rand(3, 3, 37, 53, generator=g(11))
    r = synth_blur(x, "none", g(1))
    assert torch.equal(r.blurred, x) and r.kernels is None and not r.linear_light.any()


@pytest.mark.parametrize("strength", [None, 0.0, 1.0])
def test_light_blur_is_slight_and_keeps_the_levels(strength):
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 24, 24, generator=g(12)), size=96, mode="bilinear")
    r = synth_blur(x, "light", g(2), strength=strength)
    diff = (r.blurred - x).abs().mean()
    assert 0 < diff < 0.02  # softer, but far less than the mildest blur of the other kinds
    assert r.kernels.shape == (2, 9, 9) and torch.allclose(r.kernels.sum(dim=(1, 2)), torch.ones(2))
    assert (r.blurred - x).mean().abs() < 1e-4  # a normalised kernel moves no level


def test_light_kernels_are_defocus_or_short_streaks():
    k = draw_blur(400, "light", g(3)).kernels
    # a 1-2 px streak and all but a trace of a defocus of sigma <= 0.8 fit in the 5x5 around the centre
    outside = k.clone()
    outside[:, 2:7, 2:7] = 0
    assert outside.sum(dim=(1, 2)).max() < 0.01
    assert k[:, 4, 4].min() > 0.18
    check_kind("none"), check_kind("light"), check_kind("light", mix=False)


def test_sharp_share_replaces_a_share_of_the_samples():
    from deblur_core.blur import with_sharp_samples

    draw = draw_blur(2000, "realistic", g(4))
    assert with_sharp_samples(draw, 0.0, g(5)) is draw
    mixed = with_sharp_samples(draw, 0.3, g(5))
    sharp = (mixed.kernels != draw.kernels).any(dim=(1, 2))
    assert 0.25 < sharp.float().mean() < 0.35
    assert not mixed.linear_light[sharp].any() and not mixed.layered[sharp].any()
    outside = mixed.kernels[sharp].clone()
    outside[:, 21:30, 21:30] = 0  # the 9x9 centre of 51x51 kernels: where light and none kernels live
    assert outside.abs().max() == 0
    impulses = mixed.kernels[sharp][:, 25, 25] == 1
    assert 0.4 < impulses.float().mean() < 0.6  # half none, half light
    assert torch.equal(mixed.linear_light[~sharp], draw.linear_light[~sharp])
    assert torch.equal(mixed.layered[~sharp], draw.layered[~sharp])
