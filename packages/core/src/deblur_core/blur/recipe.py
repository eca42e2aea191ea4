"""The kinds of synthetic blur and how each is drawn: one draw per kind, all rendered by
:func:`.render.render_blur`, for evaluation, ``deblur-cli blur``, the demo and training alike.

:func:`draw_blur` decides everything random about a batch's blur on the CPU (kernels, whether the blur acts
in linear light, a moving foreground's kernel and shape): a few small tensors, cheap to draw ahead in worker
processes. The names below are the ones ``--blur``, model cards and saved training configs use.

* The four kinds of ``mix`` (:data:`MIX_KINDS`, a quarter each), on which the shipped weights were first
  trained and measured:

  * ``gaussian``: the original project's CIFAR-10 recipe, sigma 1, 2 or 3 px (:data:`.gaussian.CIFAR_SIGMAS`)
    with OpenCV's kernel size;
  * ``motion``: a straight streak of 5-21 px in any direction;
  * ``shake``: a camera-shake path (Boracchi & Foi) within a 25 px kernel;
  * ``video``: a camera pan of 4.5-15 px recorded as 15 sub-frames averaged in linear light (:mod:`.pan`).

* ``long``: pans and motion of 25-40 px end to end, with speed changes and curvature; half continuous
  motion, half a camera pan recorded as 7-15 averaged sub-frames; half averaged in linear light, half on
  the sRGB values (RSBlur found that datasets built both ways differ, and real footage holds both).
* ``nonuniform``: a soft-edged foreground region moving 8-40 px on its own path over a background moving
  1-20 px in another direction (see :mod:`.layered`).
* ``realistic``, the training mix of :data:`REALISTIC_SHARES`. Its parts are recipes of their own, named apart
  from the kinds above: ``defocus`` (gaussian, sigma 0.5-3.2 px), ``curved_motion`` (continuous curved paths
  of 3-40 px with speed changes), ``subframe_pan`` (the same paths recorded as 7-15 sub-frames),
  ``wide_shake`` (camera shake within a 33 px kernel, reaching up to 15 px) and ``nonuniform``; half of the
  motion and pans in linear light.
* ``broad`` (:data:`BROAD_PARTS`): each sample draws ``mix`` or ``realistic``, half each. Training on
  ``realistic`` alone lost 0.4-1.5 dB on ``gaussian`` and ``video`` against weights trained on ``mix``, so a
  run that should learn the long and non-uniform blur without forgetting the short kinds keeps both.
* ``light`` and ``none`` (:data:`SHARP_KINDS`): frames a deblurrer must leave (nearly) as they are. ``light`` is
  a slight defocus (sigma 0.3-0.8) or a 1-2 px straight shake, half each; ``none`` leaves the image unblurred.
  Evaluation scores the harm a network does to them; training mixes a share of them into every batch
  (:func:`with_sharp_samples`), so a network learns that a sharp frame needs nothing done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import torch
from torch import Tensor

from ._kernel import pad_kernels
from .gaussian import draw_cifar_sigmas, gaussian_kernels
from .layered import MASK_PARAMS, mask_params
from .motion import motion_kernels, random_motion_kernels
from .pan import pan_paths
from .paths import MAX_REACH, curved_paths, path_kernels
from .render import BlurDraw
from .shake import shake_kernels

__all__ = ["BROAD_PARTS", "EXTENTS", "KINDS", "MIXES", "MIX_KINDS", "SHARP_KINDS", "LONG_KERNEL", "REALISTIC_SHARES",
           "check_kind", "draw_blur", "kernel_size", "with_sharp_samples"]

LONG_KERNEL = 2 * int(MAX_REACH) + 3  # 51: every kernel of long, nonuniform and realistic fits
MIX_KINDS = ("gaussian", "motion", "shake", "video")  # the kinds of "mix", a quarter each
KINDS = (*MIX_KINDS, "long", "nonuniform")  # one kind of blur per image
SHARP_KINDS = ("none", "light")  # no blur, or less than a frame's own softness: what a deblurrer must not harm
MIXES = ("mix", "realistic", "broad")  # each sample draws a kind: mix from MIX_KINDS, realistic as
# REALISTIC_SHARES, broad one of BROAD_PARTS (half each)
BROAD_PARTS = ("mix", "realistic")
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
    "broad": "half mix, half realistic",
}
REALISTIC_SHARES = {"defocus": 0.10, "curved_motion": 0.20, "subframe_pan": 0.25, "wide_shake": 0.20,
                    "nonuniform": 0.25}

Draw = Callable[[int, torch.Generator | None, float | None], BlurDraw]  # (n, generator, strength)
T = TypeVar("T")


def _rand(n: int, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g)


def _srgb(n: int) -> Tensor:
    return torch.zeros(n, dtype=torch.bool)


def _sizes(n: int, g: torch.Generator | None, strength: float | None) -> Tensor:
    """(n,) values in [0, 1]: drawn, or all ``strength``."""
    return _rand(n, g) if strength is None else torch.full((n,), strength)


def _gaussian(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    sigma = draw_cifar_sigmas(n, g) if strength is None else torch.full((n,), 0.5 + 3.5 * strength)
    return BlurDraw(gaussian_kernels(sigma), _srgb(n))


def _straight_motion(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    if strength is None:
        return BlurDraw(random_motion_kernels(n, g), _srgb(n))
    return BlurDraw(motion_kernels(torch.full((n,), 3.0 + 28.0 * strength), 180.0 * _rand(n, g)), _srgb(n))


def _shake(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    if strength is None:
        return BlurDraw(shake_kernels(n, 25, g), _srgb(n))
    # the path reaches 90-100% of the kernel's radius, so the size strength sets is the blur's size
    return BlurDraw(shake_kernels(n, 2 * round(3 + 17 * strength) + 1, g, extent=(0.9, 1.0)), _srgb(n))


def _video(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    paths = pan_paths(n, g, max_shift=15.0 if strength is None else 3.0 + 28.0 * strength)
    return BlurDraw(path_kernels(paths), torch.ones(n, dtype=torch.bool))


def _path_kernel(length: float, g: torch.Generator | None, sub_frames: int | None) -> Tensor:
    # continuous motion: densely sampled; sub-frames: as many samples as averaged frames
    pts = curved_paths(torch.tensor([length]), g, points=sub_frames or 4 * LONG_KERNEL)
    return path_kernels(pts, LONG_KERNEL)[0]


def _sub_frames(g: torch.Generator | None) -> int:
    return int(torch.randint(7, 16, (), generator=g))


def _long(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    """Paths of 25-40 px: half continuous, half sub-frame pans; half in linear light."""
    lengths = 25 + 15 * _sizes(n, g, strength)
    ks = [_path_kernel(float(lengths[i]), g, _sub_frames(g) if _rand(1, g) < 0.5 else None) for i in range(n)]
    return BlurDraw(torch.stack(ks), _rand(n, g) < 0.5)


def _curved(n: int, g: torch.Generator | None, strength: float | None, sub_frames: bool) -> BlurDraw:
    lengths = 3 + 37 * _sizes(n, g, strength)
    ks = [_path_kernel(float(lengths[i]), g, _sub_frames(g) if sub_frames else None) for i in range(n)]
    return BlurDraw(torch.stack(ks), _rand(n, g) < 0.5)


def _layered(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    fg_len = 8 + 32 * _sizes(n, g, strength)
    bg_len = 1 + 19 * _rand(n, g) if strength is None else fg_len / 2
    kernels, fg, linear_light = [], [], _rand(n, g) < 0.5
    for i in range(n):
        # both layers recorded the same way: continuous, or as the same number of sub-frames
        sub = _sub_frames(g) if _rand(1, g) < 0.5 else None
        kernels.append(_path_kernel(float(bg_len[i]), g, sub))
        fg.append(_path_kernel(float(fg_len[i]), g, sub))
    return BlurDraw(torch.stack(kernels), linear_light, torch.stack(fg), mask_params(n, g),
                    torch.ones(n, dtype=torch.bool))


def _defocus(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    sigma = 0.5 + 2.7 * _sizes(n, g, strength)
    return BlurDraw(pad_kernels(gaussian_kernels(sigma), LONG_KERNEL), _srgb(n))


def _wide_shake(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    extent = (0.35, 1.0) if strength is None else (0.35 + 0.65 * strength,) * 2
    return BlurDraw(pad_kernels(shake_kernels(n, 33, g, extent=extent), LONG_KERNEL), _srgb(n))


def _none(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    """A centred unit impulse: the image itself."""
    kernels = torch.zeros(n, LIGHT_KERNEL, LIGHT_KERNEL)
    kernels[:, LIGHT_KERNEL // 2, LIGHT_KERNEL // 2] = 1
    return BlurDraw(kernels, _srgb(n))


def _light(n: int, g: torch.Generator | None, strength: float | None) -> BlurDraw:
    """Half a defocus of sigma 0.3-0.8, half a straight streak of 1-2 px in any direction."""
    size = _sizes(n, g, strength)
    defocus, angle = _rand(n, g) < 0.5, 180 * _rand(n, g)
    kernels = torch.where(defocus.view(-1, 1, 1), gaussian_kernels(0.3 + 0.5 * size, LIGHT_KERNEL),
                          motion_kernels(1 + size, angle, LIGHT_KERNEL))
    return BlurDraw(kernels, _srgb(n))


_DRAWS: dict[str, Draw] = {
    "gaussian": _gaussian, "motion": _straight_motion, "shake": _shake, "video": _video,
    "long": _long, "nonuniform": _layered, "none": _none, "light": _light,
    "defocus": _defocus, "curved_motion": lambda n, g, s: _curved(n, g, s, False),
    "subframe_pan": lambda n, g, s: _curved(n, g, s, True), "wide_shake": _wide_shake,
}


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
    light = _light(n, g, None).kernels
    sharp = torch.where(none.view(-1, 1, 1), _none(n, g, None).kernels, light)
    kernels, linear_light = draw.kernels.clone(), draw.linear_light.clone()
    kernels[picked], linear_light[picked] = pad_kernels(sharp[picked], size), False
    layered = None if draw.layered is None else draw.layered.clone()
    if layered is not None:
        layered[picked] = False
    return replace(draw, kernels=kernels, linear_light=linear_light, layered=layered)


def _per_kind(choice: Tensor, kinds: Sequence[str], fn: Callable[[str, Tensor], T]) -> list[tuple[Tensor, T]]:
    """``fn(kind, idx)`` for each kind of ``kinds`` that ``choice`` (B,) holds (as an index into ``kinds``), on
    the (n,) ascending indices ``idx`` of the samples that drew it, in the order of ``kinds``: a mix is drawn
    one call per kind rather than one per sample (camera-shake paths are a Python loop over time steps, so
    a group of 16 costs about as much as one)."""
    groups = []
    for i, kind in enumerate(kinds):
        idx = (choice == i).nonzero().flatten()
        if idx.numel():
            groups.append((idx, fn(kind, idx)))
    return groups


def _concat(draws: list[tuple[Tensor, BlurDraw]], n: int) -> BlurDraw:
    """One draw of ``n`` samples from draws of disjoint index sets, kernels zero-padded to the largest."""
    size = max(d.kernels.shape[-1] for _, d in draws)
    kernels, linear_light = torch.zeros(n, size, size), _srgb(n)
    fg, masks, layered = torch.zeros(n, size, size), torch.zeros(n, MASK_PARAMS), _srgb(n)
    for idx, d in draws:
        kernels[idx], linear_light[idx] = pad_kernels(d.kernels, size), d.linear_light
        if not d.uniform:
            fg[idx], masks[idx], layered[idx] = pad_kernels(d.fg_kernels, size), d.masks, d.layered
    if not layered.any():
        fg = masks = layered = None
    return BlurDraw(kernels, linear_light, fg, masks, layered)


def check_kind(kind: str, *, mix: bool = True) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`KINDS`, :data:`SHARP_KINDS` or (when ``mix``) of
    :data:`MIXES`."""
    kinds = (*KINDS, *SHARP_KINDS, *MIXES) if mix else (*KINDS, *SHARP_KINDS)
    if kind not in kinds:
        raise ValueError(f"unknown blur kind '{kind}'; expected one of {kinds}")


def draw_blur(batch: int, kind: str, generator: torch.Generator | None = None, *,
              strength: float | None = None) -> BlurDraw:
    """Draw the blur of ``batch`` images of any kind or mix (see :func:`check_kind` and the module docstring).

    ``strength`` in [0, 1] sets the size instead of drawing it (directions and paths still from
    ``generator``), mild to strong: gaussian sigma 0.5 to 4 px, motion 3 to 31 px long, shake within a 7 to
    41 px kernel, a video pan of up to 3 to 31 px, long 25 to 40 px, a non-uniform foreground 8 to 40 px over
    a background moving half as far, light sigma 0.3 to 0.8 or 1 to 2 px; in the realistic mix defocus sigma
    0.5 to 3.2, curved motion and sub-frame pans 3 to 40 px, wide shake reaching 35 to 100% of its kernel.

    Kernels keep the size their kind draws (a mix: the largest of its samples'); training pads them to
    :func:`kernel_size`.
    """
    check_kind(kind)
    if kind not in MIXES:
        return _DRAWS[kind](batch, generator, strength)
    if kind == "broad":
        choice = torch.randint(0, len(BROAD_PARTS), (batch,), generator=generator)
        return _concat(_per_kind(choice, BROAD_PARTS, lambda name, idx: draw_blur(
            idx.numel(), name, generator, strength=strength)), batch)
    if kind == "mix":
        parts, choice = MIX_KINDS, torch.randint(0, len(MIX_KINDS), (batch,), generator=generator)
    else:
        parts = list(REALISTIC_SHARES)
        choice = torch.multinomial(torch.tensor(list(REALISTIC_SHARES.values())), batch, replacement=True,
                                   generator=generator)
    return _concat(_per_kind(choice, parts, lambda name, idx: _DRAWS[name](idx.numel(), generator, strength)),
                   batch)


def kernel_size(kind: str) -> int:
    """The size every kernel of ``kind`` is padded to (the context a training crop needs is this - 1)."""
    if kind in SHARP_KINDS:
        return LIGHT_KERNEL
    return 25 if kind in (*MIX_KINDS, "mix") else LONG_KERNEL
