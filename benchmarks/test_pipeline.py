"""End-to-end ``batch`` on a folder of 1280x720 PNG frames against the model alone on the same frames.

Both run ``srn`` (random weights) on the same frames, whole frames (no tiling), the same batch size, through
the same :class:`deblur_core.inference.Deblurrer` call; the only difference is the IO: decoding the PNGs and
encoding the results, which the pipeline overlaps with the network in reader and writer threads. The
ratio of the two frames/s (``e2e_over_model``, in the report) is the share of the model's speed that
survives the IO; the issue asks for at least 85%. Skipped, with the reason, where ``deblur_core.batch``
cannot be imported (a codec it needs, such as PyAV, missing).

``test_batch_tiling`` runs ``deblur_path`` on a few of the frames with its default options (tiles only where
a frame exceeds the memory budget) and with ``tile=4096`` (whole frames): ``default_over_tile_4096``, in the
report, is the default's share of the frames/s of whole frames; the target is at least 95%.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deblur_core.inference import Deblurrer, load_deblurrer
from harness import CUDA, count_gflop, device_params, measure, randomise, synchronize

try:
    from deblur_core import batch as batch_module
    from deblur_core.batch import BatchOptions, deblur_path
    from deblur_core.io import read_image
except ImportError as err:  # an optional codec (PyAV) missing, as on the GPU machine unless its wheel is carried
    pytest.skip(f"deblur_core.batch cannot be imported here: {err}", allow_module_level=True)

MODEL = "srn"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")

_model_only_fps: dict[str, float] = {}  # device -> frames/s of test_model_only, for the ratio
_tile_4096_fps: dict[str, float] = {}  # device -> frames/s of test_batch_tiling with tile=4096
TILING_FRAMES = 3  # frames of test_batch_tiling: a few, each round does them all


@pytest.fixture(scope="session")
def frames_dir(tmp_path_factory: pytest.TempPathFactory, sizes) -> Path:
    """``sizes.e2e_frames`` RGB PNG frames at the large size, made once per session from the photographs
    bundled with scikit-image (resized, so each is a real-looking photo rather than noise that PNG cannot
    compress)."""
    import imageio.v3 as iio
    import skimage.data
    from skimage.transform import resize

    folder = tmp_path_factory.mktemp("frames_720p")
    frames = {}  # each photo resized once: the profile's folder holds 96 frames
    for i in range(sizes.e2e_frames):
        name = PHOTOS[i % len(PHOTOS)]
        if name not in frames:
            frame = resize(getattr(skimage.data, name)(), sizes.large, anti_aliasing=True, preserve_range=False)
            frames[name] = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
        iio.imwrite(folder / f"{i:08d}.png", frames[name])
    return folder


def _deblurrer(device: str) -> Deblurrer:
    torch.manual_seed(0)
    deb = load_deblurrer(MODEL, device=device)
    randomise(deb.model)
    return deb


def _work(sizes, frames: int | None = None) -> dict:
    h, w = sizes.large
    n = frames or sizes.e2e_frames
    model = randomise(load_deblurrer(MODEL, device="cpu").model)
    return dict(frames=n, megapixels=n * h * w / 1e6, gflop=n * count_gflop(model, (1, 3, h, w)))


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
def test_model_only(benchmark, sizes, frames_dir, device):
    """The network alone on the frames already in memory, in batches of ``sizes.e2e_batch``."""
    benchmark.group = "e2e"
    deb = _deblurrer(device)
    frames = torch.stack([read_image(p).data for p in sorted(frames_dir.glob("*.png"))])
    batches = frames.split(sizes.e2e_batch)

    def run():
        for x in batches:
            deb(x)  # in the arithmetic --precision auto picks; the result comes back to the CPU, as in batch

    h, w = sizes.large
    measure(benchmark, run, sizes, device=device, kind="model-only", model=MODEL, precision=deb.precision,
            resolution=f"{w}x{h}", batch=sizes.e2e_batch, **_work(sizes))
    if "frames_per_s" in benchmark.extra_info:
        _model_only_fps[device] = benchmark.extra_info["frames_per_s"]


@pytest.mark.gpu_profile
@pytest.mark.parametrize("device", device_params())
def test_batch_folder(benchmark, sizes, frames_dir, tmp_path, device):
    """``deblur_path`` on the folder of PNG frames: decode, deblur, encode and write every frame."""
    benchmark.group = "e2e"
    deb = _deblurrer(device)
    h, w = sizes.large
    out = tmp_path / "out"

    def run():
        # tile = the frame's size: whole frames, as test_model_only; overwrite: every round does all frames
        options = BatchOptions(tile=max(h, w), batch_size=sizes.e2e_batch, overwrite=True)
        return deblur_path(frames_dir, out, options, deblurrer=deb)

    # its codec threads: as many readers as writers; the report compares with the IO pipeline alone at that count
    io_threads = 2 * batch_module.io_workers(deb.device)
    report = measure(benchmark, run, sizes, device=device, kind="e2e", model=MODEL, precision=deb.precision,
                     resolution=f"{w}x{h}", batch=sizes.e2e_batch, io_threads=io_threads, **_work(sizes))
    assert report.done == sizes.e2e_frames and not report.failed, report.as_dict()
    assert len(list(out.glob("*.png"))) == sizes.e2e_frames
    if report.wall_s > 0:
        benchmark.extra_info["pipeline_model_share"] = round(report.model_s / report.wall_s, 4)
    fps = benchmark.extra_info.get("frames_per_s")
    if fps is not None and device in _model_only_fps:
        benchmark.extra_info["e2e_over_model"] = fps / _model_only_fps[device]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tile", [4096, None], ids=["tile-4096", "tile-default"])
def test_batch_tiling(benchmark, sizes, frames_dir, tmp_path, device, tile):
    """``deblur_path`` with its default options (batch size 4; tiles only where a frame exceeds the memory
    budget) and with ``tile=4096`` (whole frames, as the old default of 512 never did at this size)."""
    benchmark.group = "tiling"
    deb = _deblurrer(device)
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame in sorted(frames_dir.glob("*.png"))[:TILING_FRAMES]:
        shutil.copy(frame, folder)
    n = len(list(folder.glob("*.png")))
    h, w = sizes.large
    out = tmp_path / "out"

    def run():
        return deblur_path(folder, out, BatchOptions(tile=tile, overwrite=True), deblurrer=deb)

    report = measure(benchmark, run, sizes, device=device, kind="tiling", model=MODEL, precision=deb.precision,
                     resolution=f"{w}x{h}", batch=4, tile=str(tile or "default"), **_work(sizes, n))
    assert report.done == n and not report.failed, report.as_dict()
    benchmark.extra_info["tiled"] = [note for note in report.notes if "tiles" in note]
    fps = benchmark.extra_info.get("frames_per_s")
    if fps is not None and tile == 4096:
        _tile_4096_fps[device] = fps
    elif fps is not None and device in _tile_4096_fps:
        benchmark.extra_info["default_over_tile_4096"] = fps / _tile_4096_fps[device]


@pytest.mark.gpu_profile
@pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine: nothing to copy to")
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("way", ["to-gpu-pinned", "to-gpu-pageable", "to-host"])
def test_frame_copies(benchmark, sizes, way, dtype):
    """A batch of ``sizes.e2e_batch`` 1280x720 frames copied between host and GPU, as ``batch`` moves it (to the
    GPU from pinned memory, the result back to pageable memory), and from pageable memory; in float32, as
    today, and in uint8, 4x fewer bytes. The H200 ran ``srn`` at 160 frames/s on frames already on the GPU and
    at 63 with the copies (the model-only twin): this says what the copies cost."""
    benchmark.group = "e2e"
    h, w = sizes.large
    host = torch.zeros(sizes.e2e_batch, 3, h, w, dtype=getattr(torch, dtype))
    if way == "to-gpu-pinned":
        host = host.pin_memory()
    on_gpu = host.to("cuda")

    def run():
        out = on_gpu.cpu() if way == "to-host" else host.to("cuda", non_blocking=True)
        synchronize("cuda")
        return out

    measure(benchmark, run, sizes, device="cuda", frames=sizes.e2e_batch,
            megapixels=sizes.e2e_batch * h * w / 1e6, gflop=0.0, kind="copy", way=way, dtype=dtype,
            megabytes=host.numel() * host.element_size() / 1e6, resolution=f"{w}x{h}", batch=sizes.e2e_batch)
