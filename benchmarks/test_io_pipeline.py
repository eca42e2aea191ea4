"""The IO pipeline alone: decoding and encoding 1280x720 PNG frames in worker threads, no network.

``batch`` decodes frames in reader threads and encodes its results in writer threads while the network runs;
where the network is fast (a GPU, bf16 on an AMX CPU) the codec bounds the frames/s. This measures that bound:
each call decodes ``sizes.e2e_frames`` PNG frames, at most 16 (photographs, written as most tools write PNG:
zlib level 6) with ``deblur_core.io.read_image`` and encodes each with ``write_image``, as ``batch`` does, in
1, 2, 4, ... worker threads up to the core count (at most 8, two frames each at most). Without a network
between them there is no pipeline to fill, so a few frames a worker give its rate. The report shows frames/s
against workers, and checks that it rises with them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from deblur_core.io import read_image, write_image
from harness import measure, photo_batch

CORES = len(os.sched_getaffinity(0))
WORKERS = sorted({1, *(2**i for i in range(1, 4) if 2**i <= CORES), min(CORES, 8)})
MAX_FRAMES = 2 * max(WORKERS)


@pytest.fixture(scope="session")
def png_frames(tmp_path_factory: pytest.TempPathFactory, sizes) -> list[Path]:
    from PIL import Image as PILImage

    folder = tmp_path_factory.mktemp("io_frames")
    frames = photo_batch(min(sizes.e2e_frames, MAX_FRAMES), sizes.large).permute(0, 2, 3, 1).numpy()
    frames = (frames * 255 + 0.5).astype(np.uint8)
    paths = [folder / f"{i:08d}.png" for i in range(len(frames))]
    for path, frame in zip(paths, frames):
        PILImage.fromarray(frame).save(path)  # Pillow's default, zlib level 6
    return paths


@pytest.mark.gpu_profile
@pytest.mark.parametrize("workers", WORKERS)
def test_io_pipeline(benchmark, sizes, png_frames, tmp_path, workers):
    """Decode + encode every frame (``read_image`` then ``write_image``) in ``workers`` threads."""
    benchmark.group = "io-pipeline"
    out = tmp_path / "out"
    out.mkdir()
    pool = ThreadPoolExecutor(workers)

    def one(path: Path) -> None:
        write_image(out / path.name, read_image(path))

    def run():
        list(pool.map(one, png_frames))

    h, w = sizes.large
    try:
        measure(benchmark, run, sizes, device="cpu", frames=len(png_frames),
                megapixels=len(png_frames) * h * w / 1e6, gflop=0.0, kind="io", workers=workers, cores=CORES,
                resolution=f"{w}x{h}", precision="-")
    finally:
        pool.shutdown()
    assert read_image(out / png_frames[0].name).data.shape == (3, h, w)
