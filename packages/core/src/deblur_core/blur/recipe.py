"""The blur of a batch as a draw and a render: one synthesis for evaluation, ``deblur-cli blur`` and training.

:func:`draw_blur` decides everything random about a batch's blur on the CPU (kernels, whether the blur acts
in linear light, a moving foreground's kernel and shape): a few small tensors, cheap to draw ahead in worker
processes. :func:`render_blur` applies a draw to the pixels wherever they live (the training device), either
to crops that carry ``K - 1`` pixels of real context (training: no border handling reaches the output) or to
whole images reflected at their borders (evaluation, ``deblur-cli blur``).

Kinds drawn here (the older ``gaussian``/``motion``/``shake``/``video`` kinds of :func:`synth_blur` keep their
own code, which the shipped weights' figures were measured on; their kernels come through :func:`draw_blur`
unchanged for training):

* ``long``: pans and motion of 25-40 px end to end, with speed changes and curvature; half continuous
  motion, half a camera pan recorded as 7-15 averaged sub-frames; half averaged in linear light, half on
  the sRGB values (RSBlur found that datasets built both ways differ, and real footage holds both);
* ``nonuniform``: a soft-edged foreground region moving 8-40 px on its own path over a background moving
  1-20 px in another direction (see :mod:`.layered`);
* ``realistic`` (the training mix): gaussian defocus (sigma 0.5-3.2) 10%, continuous motion 3-40 px 20%,
  sub-frame pans 3-40 px 25%, camera shake up to 31 px 20%, non-uniform 25%;
* ``light`` and ``none`` (:data:`SHARP_KINDS`): frames a deblurrer must leave (nearly) as they are. ``light`` is
  a slight defocus (sigma 0.3-0.8) or a 1-2 px straight shake, half each; ``none`` leaves the image unblurred.
  Evaluation scores the harm a network does to them; training mixes a share of them into every batch
  (:func:`with_sharp_samples`), so a network learns that a sharp frame needs nothing done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._kernel import check_image, pad_kernels
from ._mix import in_sample_order, per_kind
from .gaussian import gaussian_kernels, sample_seed_sigmas
from .layered import MASK_PARAMS, mask_params, soft_masks
from .motion import motion_kernels, random_motion_kernels
from .paths import MAX_REACH, curved_paths, path_kernels
from .shake import shake_kernels
from .video import linear_to_srgb, pan_kernels, pan_paths, srgb_to_linear

__all__ = ["EXTENTS", "KINDS", "MIXES", "SEED_KINDS", "SHARP_KINDS", "LONG_KERNEL", "REALISTIC_SHARES", "BlurDraw",
           "check_kind", "draw_blur", "kernel_size", "random_kernels", "render_blur", "seed_kind_kernels",
           "valid_convolve", "with_sharp_samples", "clip_highlights"]

LONG_KERNEL = 2 * int(MAX_REACH) + 3  # 51: every kernel the kinds of this module draw fits
DIRECT_MAX = 25  # kernels up to this size convolve directly; larger ones through the FFT (exact, far cheaper)
SEED_KINDS = ("gaussian", "motion", "shake", "video")  # the first kinds, and the shipped weights' "mix"
KINDS = (*SEED_KINDS, "long", "nonuniform")  # one kind of blur per image
SHARP_KINDS = ("none", "light")  # no blur, or less than a frame's own softness: what a deblurrer must not harm
MIXES = ("mix", "realistic")  # each sample draws a kind: mix from SEED_KINDS, realistic as REALISTIC_SHARES
LIGHT_KERNEL = 9  # every light kernel fits (sigma 0.8's OpenCV size is 5, a 2 px streak's 5)
# what each kind and mix covers, for people: the model card says with it which ranges weights were trained on
EXTENTS = {
    "gaussian": "sigma from {1, 2, 3} px",
    "motion": "straight streaks of 5-21 px",
    "shake": "camera shake within a 25 px kernel",
    "video": "pans of 4.5-15 px, 15 sub-frames averaged in linear light",
    "long": "pans and motion of 25-40 px with speed changes and curvature, continuous or 7-15 sub-frames",
    "nonuniform": "a foreground moving 8-40 px over a background moving 1-20 px",
    "none": "no blur: the sharp image itself",
    "light": "slight defocus (sigma 0.3-0.8 px) or a straight 1-2 px shake, half each",
    "mix": "a quarter each of gaussian (sigma 1-3 px), motion (5-21 px), shake (25 px kernel), video (pans to 15 px)",
    "realistic": "defocus (sigma 0.5-3.2), curved motion and sub-frame pans of 3-40 px, shake to 31 px, non-uniform",
}
REALISTIC_SHARES = {"gaussian": 0.10, "motion": 0.20, "pan": 0.25, "shake": 0.20, "nonuniform": 0.25}


@dataclass
class BlurDraw:
    """Everything random about the blur of a batch: small CPU tensors."""

    kernels: Tensor  # (B, K, K): the kernel of the whole image, or of its background where it has a foreground
    linear: Tensor  # (B,) bool: averaged in linear light (as a sensor integrates) rather than on sRGB values
    fg_kernels: Tensor | None = None  # (B, K, K): the moving foreground's kernel
    masks: Tensor | None = None  # (B, MASK_PARAMS): the foreground's shape (see layered.soft_masks)
    layered: Tensor | None = None  # (B,) bool: the samples that have a moving foreground

    @property
    def uniform(self) -> bool:
        """Whether one kernel per image describes the whole blur (a non-blind baseline can use it)."""
        return self.layered is None or not bool(self.layered.any())


def _rand(n: int, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g)


def _path_kernel(length: float, g: torch.Generator | None, sub_frames: int | None) -> Tensor:
    # continuous motion: densely sampled; sub-frames: as many samples as averaged frames
    pts = curved_paths(torch.tensor([length]), g, points=sub_frames or 4 * LONG_KERNEL)
    return path_kernels(pts, LONG_KERNEL)[0]


def _sub_frames(g: torch.Generator | None) -> int:
    return int(torch.randint(7, 16, (), generator=g))


def _moving(n: int, lengths: Tensor, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Kernels of ``n`` paths of ``lengths``: half continuous, half sub-frame pans; half in linear light."""
    ks = [_path_kernel(float(lengths[i]), g, _sub_frames(g) if _rand(1, g) < 0.5 else None) for i in range(n)]
    return torch.stack(ks), _rand(n, g) < 0.5


def _layered(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    fg_len = 8 + 32 * (_rand(n, g) if strength is None else torch.full((n,), strength))
    bg_len = 1 + 19 * _rand(n, g) if strength is None else fg_len / 2
    kernels, fg, linear = [], [], _rand(n, g) < 0.5
    for i in range(n):
        # both layers recorded the same way: continuous, or as the same number of sub-frames
        sub = _sub_frames(g) if _rand(1, g) < 0.5 else None
        kernels.append(_path_kernel(float(bg_len[i]), g, sub))
        fg.append(_path_kernel(float(fg_len[i]), g, sub))
    return BlurDraw(torch.stack(kernels), linear, torch.stack(fg), mask_params(n, g), torch.ones(n, dtype=torch.bool))


def _sharp_draw(n: int, kind: str, g: torch.Generator | None, s: Tensor | None) -> BlurDraw:
    """``none`` (a centred unit impulse) or ``light``: half a defocus of sigma 0.3-0.8, half a straight
    streak of 1-2 px in any direction; ``s`` (strength) sets the size in place of a draw."""
    if kind == "none":
        kernels = torch.zeros(n, LIGHT_KERNEL, LIGHT_KERNEL)
        kernels[:, LIGHT_KERNEL // 2, LIGHT_KERNEL // 2] = 1
        return BlurDraw(kernels, torch.zeros(n, dtype=torch.bool))
    size = _rand(n, g) if s is None else s
    defocus, angle = _rand(n, g) < 0.5, 180 * _rand(n, g)
    kernels = torch.where(defocus.view(-1, 1, 1), gaussian_kernels(0.3 + 0.5 * size, LIGHT_KERNEL),
                          motion_kernels(1 + size, angle, LIGHT_KERNEL))
    return BlurDraw(kernels, torch.zeros(n, dtype=torch.bool))


def with_sharp_samples(draw: BlurDraw, share: float, g: torch.Generator | None) -> BlurDraw:
    """``draw`` with a share of its samples (each with probability ``share``) made ``none`` or ``light``,
    half each: the identity a deblurrer must learn for frames that are already sharp. The samples keep
    everything else of their plan (noise, saturation, JPEG). ``share`` 0 returns ``draw`` itself and draws
    nothing from ``g``, so the rest of a plan stays as it was."""
    if share <= 0:
        return draw
    n, size = draw.kernels.shape[0], draw.kernels.shape[-1]
    picked = (_rand(n, g) < share).nonzero().flatten()
    none = _rand(n, g) < 0.5
    light = _sharp_draw(n, "light", g, None).kernels
    sharp = torch.where(none.view(-1, 1, 1), _sharp_draw(n, "none", g, None).kernels, light)
    kernels, linear = draw.kernels.clone(), draw.linear.clone()
    kernels[picked], linear[picked] = pad_kernels(sharp[picked], size), False
    if draw.uniform:
        return BlurDraw(kernels, linear)
    layered = draw.layered.clone()
    layered[picked] = False
    return BlurDraw(kernels, linear, draw.fg_kernels, draw.masks, layered)


def _draw_one(n: int, kind: str, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    """A draw of ``n`` samples of one kind of this module (or a part of the realistic mix)."""
    s = None if strength is None else torch.full((n,), strength)
    if kind == "long":
        return BlurDraw(*_moving(n, 25 + 15 * (_rand(n, g) if s is None else s), g))
    if kind == "nonuniform":
        return _layered(n, g, strength)
    if kind == "gaussian":
        sigma = 0.5 + 2.7 * (_rand(n, g) if s is None else s)
        return BlurDraw(pad_kernels(gaussian_kernels(sigma), LONG_KERNEL), torch.zeros(n, dtype=torch.bool))
    if kind in ("motion", "pan"):
        lengths = 3 + 37 * (_rand(n, g) if s is None else s)
        pan = kind == "pan"
        ks = [_path_kernel(float(lengths[i]), g, _sub_frames(g) if pan else None) for i in range(n)]
        return BlurDraw(torch.stack(ks), _rand(n, g) < 0.5)
    if kind == "shake":
        extent = (0.35, 1.0) if strength is None else (0.35 + 0.65 * strength,) * 2
        return BlurDraw(pad_kernels(shake_kernels(n, 33, g, extent=extent), LONG_KERNEL),
                        torch.zeros(n, dtype=torch.bool))
    raise ValueError(f"unknown blur kind '{kind}'")


def _concat(draws: list[tuple[Tensor, BlurDraw]], n: int) -> BlurDraw:
    """One draw of ``n`` samples from draws of disjoint index sets."""
    kernels = torch.zeros(n, LONG_KERNEL, LONG_KERNEL)
    linear, layered = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    fg, masks = torch.zeros(n, LONG_KERNEL, LONG_KERNEL), torch.zeros(n, MASK_PARAMS)
    for idx, d in draws:
        kernels[idx], linear[idx] = pad_kernels(d.kernels, LONG_KERNEL), d.linear
        if not d.uniform:
            fg[idx], masks[idx], layered[idx] = d.fg_kernels, d.masks, d.layered
    if not layered.any():
        return BlurDraw(kernels, linear)
    return BlurDraw(kernels, linear, fg, masks, layered)


def check_kind(kind: str, *, mix: bool = True) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`KINDS`, :data:`SHARP_KINDS` or (when ``mix``) of
    :data:`MIXES`."""
    kinds = (*KINDS, *SHARP_KINDS, *MIXES) if mix else (*KINDS, *SHARP_KINDS)
    if kind not in kinds:
        raise ValueError(f"unknown blur kind '{kind}'; expected one of {kinds}")


def seed_kind_kernels(batch: int, kind: str, g: torch.Generator | None, strength: float | None = None) -> Tensor:
    """(B, k, k) kernels of one of :data:`SEED_KINDS` (``video``: its pan rasterised, acting in linear light).

    ``strength`` None: the training recipe's sizes, drawn from ``g``; else sizes set by strength, directions
    from ``g``."""
    if kind == "gaussian":
        sigma = sample_seed_sigmas(batch, g) if strength is None else torch.full((batch,), 0.5 + 3.5 * strength)
        return gaussian_kernels(sigma)
    if kind == "motion":
        if strength is None:
            return random_motion_kernels(batch, g)
        return motion_kernels(torch.full((batch,), 3.0 + 28.0 * strength), 180.0 * torch.rand(batch, generator=g))
    if kind == "shake":
        if strength is None:
            return shake_kernels(batch, 25, g)
        # the path reaches 90-100% of the kernel's radius, so the size strength sets is the blur's size
        return shake_kernels(batch, 2 * round(3 + 17 * strength) + 1, g, extent=(0.9, 1.0))
    return pan_kernels(pan_paths(batch, g))


def random_kernels(batch: int, kind: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw the kernels of ``batch`` blurs of one of :data:`SEED_KINDS` or ``mix`` without applying them.

    Returns:
        ((B, k, k) kernels zero-padded to a common size, (B,) bool: the kernel acts in linear light).
    """
    if kind not in (*SEED_KINDS, "mix"):
        raise ValueError(f"unknown blur kind '{kind}'; random_kernels draws {(*SEED_KINDS, 'mix')}")
    if kind != "mix":
        return seed_kind_kernels(batch, kind, generator), torch.full((batch,), kind == "video")
    choice = torch.randint(0, len(SEED_KINDS), (batch,), generator=generator)
    groups = per_kind(choice, SEED_KINDS, lambda name, idx: seed_kind_kernels(idx.numel(), name, generator))
    return in_sample_order(groups, pad_kernels), choice == SEED_KINDS.index("video")


def draw_blur(batch: int, kind: str, generator: torch.Generator | None = None, *,
              strength: float | None = None) -> BlurDraw:
    """Draw the blur of ``batch`` images of any kind or mix (see :func:`check_kind`).

    The seed kinds and ``mix`` draw their kernels as :func:`random_kernels` does (``strength`` is not used
    for them here: :func:`deblur_core.blur.synth_blur` blurs those kinds at a strength).

    ``strength`` in [0, 1] sets the size instead of drawing it (paths and directions still from
    ``generator``): long 25-40 px, non-uniform foreground 8-40 px over a background moving half as far,
    light sigma 0.3-0.8 or 1-2 px,
    and in the realistic mix gaussian sigma 0.5-3.2, motion and pans 3-40 px, shake reaching 35-100% of
    its 33 px kernel.
    """
    check_kind(kind)
    if kind in (*SEED_KINDS, "mix"):
        return BlurDraw(*random_kernels(batch, kind, generator))
    if kind in SHARP_KINDS:  # small kernels: a whole photo convolves directly, not through the FFT
        return _sharp_draw(batch, kind, generator, None if strength is None else torch.full((batch,), strength))
    if kind != "realistic":
        return _concat([(torch.arange(batch), _draw_one(batch, kind, generator, strength))], batch)
    choice = torch.multinomial(torch.tensor(list(REALISTIC_SHARES.values())), batch, replacement=True,
                               generator=generator)
    return _concat(per_kind(choice, list(REALISTIC_SHARES),
                            lambda name, idx: _draw_one(idx.numel(), name, generator, strength)), batch)


def valid_convolve(x: Tensor, kernels: Tensor) -> Tensor:
    """True convolution of each image of (B, C, H, W) with its own (B, K, K) kernel, valid part only:
    (B, C, H - K + 1, W - K + 1). Large kernels go through the FFT, whose circular wrap-around never
    reaches the valid part."""
    b, c, h, w = x.shape
    k = kernels.to(device=x.device, dtype=torch.float32)
    size = k.shape[-1]
    if size <= DIRECT_MAX:
        # true convolution = correlation with the flipped kernel; one group per (sample, channel)
        weight = k.flip(-1, -2).repeat_interleave(c, dim=0)[:, None].to(x.dtype)
        return F.conv2d(x.reshape(1, b * c, h, w), weight, groups=b * c).view(b, c, h - size + 1, w - size + 1)
    spectrum = torch.fft.rfft2(x.float(), s=(h, w)) * torch.fft.rfft2(k, s=(h, w))[:, None]
    return torch.fft.irfft2(spectrum, s=(h, w))[..., size - 1 :, size - 1 :].to(x.dtype)


def _boost(light: Tensor, gain: Tensor) -> Tensor:
    """Linear-light values above 0.9 grown up to ``1 + gain`` (B,) times: highlights brighter than white."""
    return light * (1 + gain.view(-1, 1, 1, 1) * ((light - 0.9).clamp(min=0) / 0.1))


def clip_highlights(x: Tensor, gain: Tensor) -> Tensor:
    """The sharp frame of the scene :func:`render_blur` saturates with ``gain`` (B,): its highlights boosted in
    linear light and clipped at white, as the sensor records them unblurred. The training target of a saturated
    sample, so that input and target hold the same light and only the blur tells them apart."""
    saturated = (gain > 0).to(x.device).view(-1, 1, 1, 1)
    clipped = linear_to_srgb(_boost(srgb_to_linear(x), gain.to(x.device)).clamp(0, 1))
    return torch.where(saturated, clipped, x)


def render_blur(x: Tensor, draw: BlurDraw, *, context: bool = False, gain: Tensor | None = None) -> Tensor:
    """Blur sharp images (B, C, H, W) in [0, 1] as ``draw`` says.

    Args:
        context: True when ``x`` carries ``K - 1`` pixels of real context around the output (training
            crops): the output is ``K - 1`` pixels smaller and no border handling reaches it. False: the
            image is reflected at its borders and keeps its size.
        gain: (B,) highlight boost (0 = none): values above 0.9 grow up to ``1 + gain`` times before the
            blur, in linear light, and clip at white after it, as a sensor clips light streaks.

    Returns:
        (B, C, H', W') in [0, 1], before any noise or quantisation.
    """
    check_image(x)
    dev = x.device
    size = draw.kernels.shape[-1]
    linear = draw.linear.to(dev)
    if gain is not None:
        gain = gain.to(dev)
        linear = linear | (gain > 0)
    light = torch.where(linear.view(-1, 1, 1, 1), srgb_to_linear(x), x)
    if gain is not None:
        light = _boost(light, gain)
    r = size // 2  # the kernel's reach: the border a reflected render adds, the margin a mask is drawn with
    if not context:
        small = min(light.shape[-2:]) <= r
        light = F.pad(light, (r, r, r, r), mode="replicate" if small else "reflect")
    out = valid_convolve(light, draw.kernels)
    if not draw.uniform:
        idx = draw.layered.nonzero().flatten().to(dev)
        # the mask's shape is placed within the output's frame, whatever context comes with it
        m = soft_masks(draw.masks[draw.layered], out.shape[-2], out.shape[-1], margin=r, device=dev,
                       dtype=light.dtype)
        c = x.shape[1]
        moved = valid_convolve(torch.cat([light[idx] * m, m], dim=1), draw.fg_kernels[draw.layered])
        out[idx] = moved[:, :c] + (1 - moved[:, c:]) * out[idx]
    out = out.clamp(0, 1)
    return torch.where(linear.view(-1, 1, 1, 1), linear_to_srgb(out), out)


def kernel_size(kind: str) -> int:
    """The size every kernel of ``kind`` is padded to (the context a training crop needs is this - 1)."""
    if kind in SHARP_KINDS:
        return LIGHT_KERNEL
    return 25 if kind in (*SEED_KINDS, "mix") else LONG_KERNEL
