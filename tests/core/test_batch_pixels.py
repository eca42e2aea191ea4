"""deblur_core.batch off the CPU: frames cross to the device as their 8- or 16-bit pixels and are converted
there, to the bytes a run on float data writes. Rehearsed on the CPU by treating it as such a device."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from deblur_core.batch import BatchOptions, deblur_path, folder, pipeline, video
from deblur_core.io import Image, list_images, to_pixels, to_tensor, write_image
from helpers import random_deblurrer


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_images(root)}


@pytest.fixture
def crossed(monkeypatch):
    """The dtype and shape of each batch :func:`pipeline.frames_to` converts after moving it to the device."""
    seen, unit_float = [], pipeline.unit_float

    def convert(pixels):
        seen.append((pixels.dtype, tuple(pixels.shape)))
        return unit_float(pixels)

    monkeypatch.setattr(pipeline, "unit_float", convert)
    return seen


def test_frames_cross_as_pixels_only_when_every_frame_kept_them():
    arrays = [np.random.default_rng(i).integers(0, 256, size=(5, 6, 3)).astype(np.uint8) for i in range(3)]
    floats = [Image(*to_tensor(a)) for a in arrays]
    kept = [Image(pixels=to_pixels(a)[0]) for a in arrays]
    expected = torch.stack([image.data for image in floats])
    for images in (kept, kept[:1], floats, [kept[0], floats[1]]):
        x = pipeline.frames_to(images, torch.device("cpu"))
        assert x.dtype == torch.float32 and torch.equal(x, expected[: len(images)])
    # what crosses to another device is the integers, converted there
    x = pipeline.frames_to(kept, torch.device("meta"))
    assert x.device.type == "meta" and x.dtype == torch.float32 and x.shape == (3, 3, 5, 6)
    assert pipeline.keeps_pixels("cuda") and not pipeline.keeps_pixels("cpu")


@pytest.mark.parametrize("bits", [8, 16])
def test_a_run_on_pixels_writes_the_bytes_of_a_run_on_float_data(tmp_path, monkeypatch, crossed, bits):
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(24, 32), (24, 32), (24, 32), (20, 28)]):
        data = torch.rand(3, *size, generator=torch.Generator().manual_seed(i))
        alpha = np.full(size, 200, np.uint8 if bits == 8 else np.uint16) if i == 1 else None
        write_image(src / f"{i}.png", Image(data, alpha, bits))
    deb = random_deblurrer()
    deblur_path(src, tmp_path / "float", BatchOptions(batch_size=2, compare=True), deblurrer=deb)
    assert crossed == []
    monkeypatch.setattr(folder, "keeps_pixels", lambda device: True)  # the CPU as a device that converts
    deblur_path(src, tmp_path / "pixels", BatchOptions(batch_size=2, compare=True), deblurrer=deb)
    dtype = torch.uint8 if bits == 8 else torch.uint16
    assert crossed == [(dtype, (2, 3, 24, 32)), (dtype, (1, 3, 24, 32)), (dtype, (1, 3, 20, 28))]
    assert _digests(tmp_path / "pixels") == _digests(tmp_path / "float")


@pytest.mark.slow
def test_a_video_run_on_pixels_encodes_the_frames_of_a_run_on_float_data(tmp_path, monkeypatch, crossed,
                                                                         video_with_audio):
    from deblur_core.io import probe_video, video_writer

    clip = tmp_path / "clip.mp4"
    video_with_audio(clip, frames=4)
    handed: dict[str, list[np.ndarray]] = {"float": [], "pixels": []}  # what each run hands the encoder, 8-bit
    write = video_writer.VideoWriter.write

    def record(self, frame, pts=None):  # what reaches the encoder: x264's own bytes are not this test's business
        handed[next(name for name in ("float", "pixels") if name in self.path.name)].append(to_array_8(frame))
        return write(self, frame, pts)

    monkeypatch.setattr(video_writer.VideoWriter, "write", record)
    deb = random_deblurrer()
    deblur_path(clip, tmp_path / "float.mp4", BatchOptions(batch_size=2), deblurrer=deb)
    assert crossed == []
    monkeypatch.setattr(video, "keeps_pixels", lambda device: True)
    deblur_path(clip, tmp_path / "pixels.mp4", BatchOptions(batch_size=2), deblurrer=deb)
    assert crossed == [(torch.uint8, (2, 3, 40, 48))] * 2
    assert len(handed["float"]) == len(handed["pixels"]) == 4
    for i, (a, b) in enumerate(zip(handed["float"], handed["pixels"])):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() == 0, f"frame {i}: {int((diff > 0).sum())} samples differ, by up to {diff.max()}"
    assert probe_video(tmp_path / "pixels.mp4").frames == probe_video(tmp_path / "float.mp4").frames == 4


def to_array_8(frame) -> np.ndarray:
    from deblur_core.io import to_array

    return to_array(frame, 8) if isinstance(frame, torch.Tensor) else frame.copy()
