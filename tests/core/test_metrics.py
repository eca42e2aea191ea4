import math

import numpy as np
import pytest
import torch
from kornia.filters import gaussian_blur2d
from skimage import data
from skimage.measure import blur_effect as skimage_blur_effect
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblur_core.metrics import blur_effect, mse, psnr, ssim


def _photo(name: str, size: int = 96, top: int = 100, left: int = 150) -> torch.Tensor:
    """A crop of a real photograph as a (C, H, W) float tensor in [0, 1]."""
    array = getattr(data, name)()[top : top + size, left : left + size]
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur2d(x[None], (9, 9), (sigma, sigma))[0]


def _noisy(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    a, b = x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy()
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2
    )


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
@pytest.mark.parametrize("distort", ["blur", "noise"])
def test_matches_skimage(name, distort):
    y = _photo(name)
    x = _blurred(y, 1.5) if distort == "blur" else _noisy(y, 0.05)
    ref_psnr = peak_signal_noise_ratio(y.double().numpy(), x.double().numpy(), data_range=1)
    assert abs(psnr(x, y).item() - ref_psnr) < 1e-3
    assert abs(ssim(x, y).item() - _skimage_ssim(x, y)) < 1e-4
    assert x.shape[0] == (1 if name == "camera" else 3)


def test_batch_is_per_image():
    sharp = torch.stack([_photo("astronaut"), _photo("coffee")])
    degraded = torch.stack([_blurred(sharp[0], 0.8), _blurred(sharp[1], 2.5)])
    for metric in (mse, psnr, ssim):
        batch = metric(degraded, sharp)
        assert batch.shape == (2,)
        assert not torch.isclose(batch[0], batch[1])
        alone = torch.cat([metric(degraded[i], sharp[i]) for i in range(2)])
        torch.testing.assert_close(batch, alone)
    # The mean of per-image PSNRs is not the PSNR of the batch MSE (what kornia.metrics.psnr returns).
    batch_mse_psnr = 10 * math.log10(1 / mse(degraded, sharp).mean().item())
    assert abs(psnr(degraded, sharp).mean().item() - batch_mse_psnr) > 0.1


def test_identical_images():
    x = _photo("coffee")
    assert psnr(x, x).item() == math.inf
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert mse(x, x).item() == 0.0


@pytest.mark.parametrize("metric", [mse, psnr, ssim])
def test_shape_mismatch(metric):
    with pytest.raises(ValueError, match=r"\(1, 3, 32, 32\).*\(1, 3, 32, 31\)"):
        metric(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31))


def test_bad_input():
    with pytest.raises(ValueError):
        psnr(torch.rand(32, 32), torch.rand(32, 32))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_blur_effect_is_skimages_on_the_luma(name):
    x = _photo(name)  # 96x96: under the crop, scored whole
    array = x.permute(1, 2, 0).double().numpy()
    want = skimage_blur_effect(array, channel_axis=2) if x.shape[0] == 3 else skimage_blur_effect(array[..., 0])
    assert blur_effect(x).item() == pytest.approx(want, abs=1e-9)


def test_blur_effect_rises_with_blur_per_image_on_the_central_crop():
    sharp = _photo("astronaut", size=200, top=50, left=100)
    blurred = torch.stack([sharp, _blurred(sharp, 1.0), _blurred(sharp, 2.5)])
    scores = blur_effect(blurred)
    assert scores.shape == (3,) and scores[0] < scores[1] < scores[2]
    # the central 64x64 only: blurring outside it changes nothing
    framed = blurred[0].clone()
    framed[:, :60] = _blurred(sharp, 2.5)[:, :60]
    assert blur_effect(framed, crop=64).item() == blur_effect(sharp, crop=64).item()
    assert blur_effect(framed).item() != blur_effect(sharp).item()


def test_blur_effect_refuses_bad_input_and_cannot_tell_tiny_images():
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        blur_effect(torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) or \(C, H, W\)"):
        blur_effect(torch.rand(16, 16))
    assert torch.isnan(blur_effect(torch.rand(2, 3, 3, 40))).all()
