"""Training batches of synthetic blur, made on the training device.

Making a batch has two halves, split by where each is cheap:

* a **plan**, drawn on the CPU from the generator of ``(seed, step, rank)``: which image, where to crop,
  the flips, the small blur kernels (camera-shake paths are a Python loop), the noise and highlight
  levels. Plans are tiny and picklable, so DataLoader workers draw the next steps' plans while the
  device computes (``workers``), and a plan is a pure function of its step: a resumed run draws the
  very same batches.
* the **pixels**, made where the network trains (a GPU, or the CPU): crops cut from photos kept decoded
  on that device (uint8, 4x smaller than float), the one with more edges of two candidates kept, rotated
  and flipped, blurred by one grouped
  convolution for the whole batch (in linear light where the blur is video-like or highlights
  saturate), given sensor noise and rounded to 8 bits, as a saved frame would be.

Every crop is cut with ``K - 1`` pixels of real context around it and convolved without padding, so
no border handling ever reaches the pixels the network is trained on.

Degradations beyond the blur (RSBlur, Rim et al. 2022, found sensor noise the largest single gain on
real blur): ``noise`` is the largest read-noise sigma (each sample draws its own in [0, noise], plus
shot noise that grows with the signal); ``saturate`` is the share of samples whose highlights are
boosted past white before blurring and clipped after it, as a sensor clips light streaks; their target is the
same scene clipped unblurred (:func:`deblur_core.blur.clip_highlights`), so that input and target differ by the
blur alone and a network is not taught to dim the highlights of sharp frames. ``sharp_share`` is
the share of samples left unblurred or blurred only lightly (see :func:`deblur_core.blur.with_sharp_samples`),
through the same noise, saturation and JPEG steps: real footage is mostly sharp frames, which a deblurrer must
return as they came.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ..blur import (BlurDraw, clip_highlights, draw_blur, jpeg_compress, kernel_size, pad_kernels, quantize_8bit,
                     render_blur, sensor_noise, with_sharp_samples)
from .cache import ImageCache
from ..seeding import seeded_generator

__all__ = ["KERNEL_SIZE", "Plan", "Planner", "DeviceBatches", "plan_loader"]

KERNEL_SIZE = kernel_size("mix")  # 25: every kernel of the mix kinds fits (shake 25, motion 23, gaussian 19, video <= 21)


@dataclass
class Plan:
    """Everything random about one training batch; small CPU tensors."""

    step: int
    image: Tensor  # (2B,) index into the training images: two candidate crops per sample
    y: Tensor  # (2B,) top-left corner of the crop with its context
    x: Tensor
    flip_h: Tensor  # (B,) bool
    flip_v: Tensor
    transpose: Tensor  # (B,) bool: with the flips, all 8 rotations/reflections of a square crop
    blur: BlurDraw  # the kernels (K x K each), linear light or sRGB, a moving foreground where there is one
    gain: Tensor  # (B,) highlight boost before blurring (0 = none)
    read: Tensor  # (B,) read-noise sigma
    shot: Tensor  # (B,) shot-noise coefficient: variance grows by shot * signal
    noise_seed: int  # seeds the device generator of this batch's noise
    jpeg: Tensor | None = None  # (B,) JPEG quality each blurred crop is saved at (0: none)


@dataclass(frozen=True)
class Planner:
    """Draws the :class:`Plan` of a step. Picklable: DataLoader workers run it."""

    sizes: tuple[tuple[int, int], ...]  # (height, width) of each training image
    blur: str
    batch_size: int
    patch: int
    seed: int
    rank: int = 0
    noise: float = 0.0
    saturate: float = 0.0
    rotate: bool = False
    jpeg: float = 0.0  # share of samples saved as a JPEG of quality 60-95 after the 8-bit rounding
    sharp_share: float = 0.0  # share of samples with no blur or a light one (drawn last: 0 changes no other draw)

    @property
    def context(self) -> int:
        return self.patch + kernel_size(self.blur) - 1

    def __call__(self, step: int) -> Plan:
        g = seeded_generator("train", self.seed, step, self.rank)
        b, full = self.batch_size, self.context
        image = torch.randint(0, len(self.sizes), (2 * b,), generator=g)
        h = torch.tensor([max(self.sizes[i][0], full) for i in image.tolist()])
        w = torch.tensor([max(self.sizes[i][1], full) for i in image.tolist()])
        y = (torch.rand(2 * b, generator=g) * (h - full + 1)).long()
        x = (torch.rand(2 * b, generator=g) * (w - full + 1)).long()
        flips = torch.rand(3, b, generator=g) < 0.5
        draw = draw_blur(b, self.blur, g)
        draw = replace(draw, kernels=pad_kernels(draw.kernels, kernel_size(self.blur)))
        gain = torch.where(torch.rand(b, generator=g) < self.saturate, 1 + 3 * torch.rand(b, generator=g),
                           torch.zeros(b))
        read = self.noise * torch.rand(b, generator=g)
        shot = 2 * self.noise**2 * torch.rand(b, generator=g)
        noise_seed = int(torch.randint(0, 2**62, (), generator=g))
        jpeg = None
        if self.jpeg > 0:
            jpeg = torch.where(torch.rand(b, generator=g) < self.jpeg, (60 + 36 * torch.rand(b, generator=g)).floor(),
                               torch.zeros(b))
        draw = with_sharp_samples(draw, self.sharp_share, g)
        return Plan(step, image, y, x, flips[0], flips[1], flips[2] & self.rotate, draw, gain, read, shot,
                    noise_seed, jpeg)


class _Steps(torch.utils.data.Dataset):
    """Step indices -> plans, for a DataLoader that draws them ahead in worker processes."""

    def __init__(self, planner: Planner, start: int, stop: int) -> None:
        self.planner, self.start, self.stop = planner, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> Plan:
        return self.planner(self.start + i)


def plan_loader(planner: Planner, start: int, stop: int, workers: int) -> Iterator[Plan]:
    """The plans of steps ``start`` .. ``stop - 1`` in order, drawn ahead by ``workers`` processes."""
    yield from torch.utils.data.DataLoader(_Steps(planner, start, stop), batch_size=None, num_workers=workers,
                                           prefetch_factor=4, persistent_workers=False)


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


class DeviceBatches:
    """Training batches of synthetic blur, made on ``device`` from sharp photographs.

    Args:
        load: ``index -> (C, H, W)`` float tensor in [0, 1] of a sharp training image. Each is decoded
            once and kept on the device as uint8 (least recently used dropped beyond ``max_bytes``);
            images smaller than the crop with its context are reflect-padded to it.
        sizes: (H, W) of each image (from the file headers), so plans can be drawn before any decoding.
        device: where pixels are made: the training device.
        workers: DataLoader worker processes drawing plans ahead (0: drawn in this process, in order).
    """

    def __init__(self, load: Callable[[int], Tensor], sizes: Sequence[tuple[int, int]], *, blur: str,
                 batch_size: int, patch: int, seed: int, rank: int = 0, device: torch.device | str = "cpu",
                 noise: float = 0.0, saturate: float = 0.0, rotate: bool = False, jpeg: float = 0.0,
                 sharp_share: float = 0.0, workers: int = 0, max_bytes: int | None = None) -> None:
        if not sizes:
            raise ValueError("no training images")
        if noise < 0 or not all(0 <= v <= 1 for v in (saturate, jpeg, sharp_share)):
            raise ValueError(f"noise must be >= 0, saturate, jpeg and sharp_share in [0, 1], got {noise}, "
                             f"{saturate}, {jpeg}, {sharp_share}")
        self.planner = Planner(tuple((int(h), int(w)) for h, w in sizes), blur, batch_size, patch, seed, rank,
                               noise, saturate, rotate, jpeg, sharp_share)
        self.device = torch.device(device)
        self.workers = workers
        self._load = load
        # photos stay decoded on the device: 70 photos of 2 MP are 0.4 GB, nothing next to a GPU's memory
        self._images = ImageCache(self._to_device, max_bytes or (4 if self.device.type == "cuda" else 1) * 2**30)

    def _to_device(self, i: int) -> Tensor:
        src = self._load(i)
        full = self.planner.context
        ph, pw = max(0, full - src.shape[-2]), max(0, full - src.shape[-1])
        if ph or pw:  # smaller than the crop with its context: reflect it out to that size
            src = F.pad(src[None], (0, pw, 0, ph), mode="reflect" if min(src.shape[-2:]) > max(ph, pw)
                        else "replicate")[0]
        return (src.clamp(0, 1) * 255).round().to(torch.uint8).to(self.device)

    def make(self, plan: Plan) -> tuple[Tensor, Tensor]:
        """The (blurred, sharp) batch of ``plan``, both (B, C, patch, patch) floats in [0, 1] on the device."""
        dev, full, patch = self.device, self.planner.context, self.planner.patch
        crops = torch.stack([self._images(i)[:, y : y + full, x : x + full]
                             for i, y, x in zip(plan.image.tolist(), plan.y.tolist(), plan.x.tolist())]).float()
        # of each sample's two candidates keep the one with more edges: photographs hold wide areas of
        # sky and out-of-focus background, where a blurred and a sharp crop barely differ
        n = crops.shape[0] // 2
        edges = (crops.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + crops.diff(dim=-2).abs().mean(dim=(1, 2, 3)))
        sharp = _where(edges[:n] >= edges[n:], crops[:n], crops[n:]).div_(255)
        fh, fv, tr = (t.to(dev, non_blocking=True) for t in (plan.flip_h, plan.flip_v, plan.transpose))
        sharp = _where(fh, sharp.flip(-1), sharp)
        sharp = _where(fv, sharp.flip(-2), sharp)
        sharp = _where(tr, sharp.transpose(-1, -2), sharp)
        blurred = render_blur(sharp, plan.blur, context=True, gain=plan.gain)
        g = torch.Generator(dev).manual_seed(plan.noise_seed)
        blurred = sensor_noise(blurred, plan.read, plan.shot, g)
        blurred = quantize_8bit(blurred)  # what an 8-bit frame can hold
        if plan.jpeg is not None:
            blurred = jpeg_compress(blurred, plan.jpeg)
        m = (full - patch) // 2
        target = sharp[..., m : m + patch, m : m + patch]
        if bool(plan.gain.any()):  # the sensor clips the sharp frame's highlights as it clips the blurred one's
            target = clip_highlights(target, plan.gain)
        return blurred, target.contiguous()

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        return self.make(self.planner(step))

    def iterate(self, start: int, stop: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of steps ``start`` .. ``stop - 1`` in order, plans drawn ahead by the workers."""
        if self.workers <= 0:
            for step in range(start, stop):
                yield self(step)
            return
        for plan in plan_loader(self.planner, start, stop, self.workers):
            yield self.make(plan)
