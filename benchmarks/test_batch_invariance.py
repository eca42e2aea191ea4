"""What batch-invariant outputs cost: each frame of a batch run through the network alone, as
``deblur_core.batch`` does so that no frame's bytes depend on the frames beside it, against the whole batch in
one call.

``nafnet-cpu`` and ``srn`` with their shipped weights at ``--precision auto``, on photographs, at the large size
(1280x720) in batches of 2 and at half of it (640x360) in batches of 4: at 1280x720 ``deblur-cli batch``'s memory
budget on a CPU plans 2 frames a batch for ``nafnet-cpu`` and 1 for ``srn``, at 640x360 4 for both. Each
"alone" case records ``alone_over_batched``: its frames/s over the batched case's just before it (1.0: alone
costs nothing; below 0.9, batch-invariance would be worth an opt-in flag rather than the only behaviour).
"""

from __future__ import annotations

import pytest

from deblur_core.inference import load_deblurrer
from harness import count_gflop, device_params, measure, photo_batch

MODELS = ("nafnet-cpu", "srn")
_batched_fps: dict[tuple, float] = {}  # (model, device, size, frames) -> frames/s of the batched case


def _cases() -> list:
    # the batched case first, so that each alone case finds its ratio's other half
    return [pytest.param(model, scale, frames, mode, id=f"{model}-{'large' if scale == 1 else 'half'}-{mode}")
            for model in MODELS for scale, frames in ((1, 2), (2, 4)) for mode in ("batched", "alone")]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("model, scale, frames, mode", _cases())
def test_frames_alone_against_batched(benchmark, sizes, device, model, scale, frames, mode):
    benchmark.group = "batch-invariance"
    deb = load_deblurrer(model, device=device)
    h, w = sizes.large[0] // scale, sizes.large[1] // scale
    x = photo_batch(frames, (h, w), device)

    def batched():
        return deb(x)

    def alone():
        return [deb(x[i : i + 1]) for i in range(frames)]

    key = (model, device, (h, w), frames)
    measure(benchmark, batched if mode == "batched" else alone, sizes, device=device, kind=mode, model=model,
            precision=deb.precision, resolution=f"{w}x{h}", batch=frames, frames=frames,
            megapixels=frames * h * w / 1e6, gflop=frames * count_gflop(deb.model, (1, 3, h, w)))
    fps = benchmark.extra_info.get("frames_per_s")
    if fps is None:  # --benchmark-disable
        return
    if mode == "batched":
        _batched_fps[key] = fps
    elif key in _batched_fps:
        benchmark.extra_info["alone_over_batched"] = round(fps / _batched_fps[key], 4)
