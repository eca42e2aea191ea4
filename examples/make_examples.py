"""Regenerate the bundled example clip in ``examples/reds/`` (REDS layout).

A virtual camera pans across scikit-image's ``stereo_motorcycle`` photograph (a real photo bundled in the
wheel). Each output frame is the mean, in linear light, of the sub-frames its shutter saw while the camera
moved, as REDS and GoPro blur are made; its sharp twin is the middle sub-frame. Run from the repository
root: ``python examples/make_examples.py``.
"""

from pathlib import Path

import numpy as np
import skimage.data
import torch

from deblur_core.blur import average_frames
from deblur_core.io import Image, write_image

OUT = Path(__file__).parent / "reds" / "val"
FRAMES, WIDTH, HEIGHT = 6, 448, 256
SUBFRAMES = 13  # sub-frames averaged per blurred frame


def main() -> None:
    photo = torch.from_numpy(skimage.data.stereo_motorcycle()[0]).permute(2, 0, 1).float() / 255
    rng = np.random.default_rng(0)
    x, y = 30.0, 150.0
    for i in range(FRAMES):
        # a pan to the right with some vertical wobble; the shutter is open for 40% of the frame interval
        vx, vy = 24 + rng.uniform(-4, 4), rng.uniform(-6, 6)
        path = [(x + vx * t, y + vy * t) for t in np.linspace(0, 0.4, SUBFRAMES)]
        subs = torch.stack([_crop(photo, px, py) for px, py in path])
        blur = average_frames(subs[None])[0]
        sharp = subs[SUBFRAMES // 2]
        name = f"{i:08d}.png"
        for kind, img in (("val_blur", blur), ("val_sharp", sharp)):
            (OUT / kind / "000").mkdir(parents=True, exist_ok=True)
            write_image(OUT / kind / "000" / name, Image(data=img.clamp(0, 1), alpha=None, bit_depth=8))
        x, y = x + vx, y + vy


def _crop(photo: torch.Tensor, x: float, y: float) -> torch.Tensor:
    # sub-pixel crop by bilinear sampling, so slow sub-frame motion is not quantised to whole pixels
    import torch.nn.functional as F

    h, w = photo.shape[-2:]
    ys = (torch.arange(HEIGHT) + y) / (h - 1) * 2 - 1
    xs = (torch.arange(WIDTH) + x) / (w - 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    return F.grid_sample(photo[None], grid, mode="bilinear", align_corners=True)[0]


if __name__ == "__main__":
    main()
