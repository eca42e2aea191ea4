"""Published checkpoints (spandrel's architectures at their authors' sizes, random weights) through the whole tool.

Each network's float output before quantisation is compared with spandrel's own forward pass on the whole frame
(the reference a user of the authors' code would get), written PNGs with that output quantised, and tiles with
whole frames. Needs the zoo extra (spandrel; Restormer also spandrel-extra-arches): skipped without it, failed
where CI's zoo run sets DEBLUR_REQUIRE_ZOO=1.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblur_cli.main import app
from deblur_core.inference import load_deblurrer
from deblur_core.io import read_video_frames, to_array
from deblur_core.metrics import psnr

from helpers import require_zoo

pytestmark = pytest.mark.zoo
runner = CliRunner()
KINDS = ["nafnet-gopro-width64", "nafnet-reds-width64", "fftformer-gopro", "restormer-motion"]
SIZE = (30, 44)  # no multiple of any network's requirement: every one pads


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth frames with a little texture, as photos are (noise alone would be no image a network meets)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        base = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=SIZE, mode="bilinear")
        img = (base * 0.8 + 0.1 + 0.05 * torch.rand(1, 3, *SIZE, generator=g)).clamp(0, 1)
        out.append(to_array(img[0], 8))
    return out


def _spandrel_forward(path: Path, x: torch.Tensor) -> torch.Tensor:
    """The network as spandrel builds and calls it, on the whole frame (float32, clamped to [0, 1])."""
    spandrel = require_zoo()
    try:
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
    except ImportError:
        pass
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        desc = spandrel.ModelLoader().load_from_state_dict(state).eval()
    return desc(x.clone())


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_tool_computes_what_spandrel_computes(published_checkpoint, kind, suffix):
    path = published_checkpoint(kind, suffix)
    x = _tensor(_frames(1))
    deb = load_deblurrer(None, path, device="cpu", precision="fp32")
    ours = deb(x)
    reference = _spandrel_forward(path, x)
    assert ours.shape == x.shape
    assert (ours - reference).abs().max() < 1e-5
    assert (ours - x).abs().mean() > 5e-3  # the network ran: it changes the frame
    assert deb.name.startswith(deb.published["architecture"]) and deb.name.endswith(f"({path.name})")
    if kind.startswith("nafnet"):  # NAFNet runs in this project's own NAFNet, its CPU path included
        from deblur_core.models.nafnet import NAFNet

        assert isinstance(deb.model, NAFNet)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_writes_the_output_quantised_and_a_video_keeps_its_sound(published_checkpoint, kind, tmp_path,
                                                                         video_with_audio):
    path = published_checkpoint(kind, ".pth")
    frames = _frames(2)
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(frames):
        iio.imwrite(src / f"{i:04d}.png", f)
    r = runner.invoke(app, ["batch", str(src), "--weights", str(path), "--out", str(tmp_path / "out"),
                            "--device", "cpu", "--precision", "fp32", "--quiet", "--json-summary",
                            str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    expected = _spandrel_forward(path, _tensor(frames))
    for i in range(2):
        assert np.array_equal(iio.imread(tmp_path / "out" / f"{i:04d}.png"), to_array(expected[i], 8))
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["model"].endswith(f"({path.name})") and summary["trained_on"] == "its authors' data (published)"
    # a rerun resumes: nothing left to do
    r = runner.invoke(app, ["batch", str(src), "--weights", str(path), "--out", str(tmp_path / "out"),
                            "--device", "cpu", "--precision", "fp32", "--quiet", "--json-summary",
                            str(tmp_path / "s2.json")])
    assert r.exit_code == 0 and json.loads((tmp_path / "s2.json").read_text())["skipped"] == 2

    clip = tmp_path / "clip.mp4"
    video_with_audio(clip, frames=3)
    r = runner.invoke(app, ["batch", str(clip), "--weights", str(path), "--device", "cpu", "--precision", "fp32",
                            "--quiet", "--crf", "0"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "clip_deblurred.mp4"
    got = list(read_video_frames(out))
    inputs = list(read_video_frames(clip))
    assert len(got) == 3
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    # the frames are the network's output on the decoded frames, encoded again (4:2:0 colour loses as much as
    # the network changes these noisy frames): what the network changed is what changed in the video
    before = _tensor(inputs)
    changed, want = _tensor(got) - before, _spandrel_forward(path, before) - before
    luma = torch.tensor([0.299, 0.587, 0.114])[:, None, None]  # kept at full resolution, unlike colour
    r = torch.corrcoef(torch.stack([(changed * luma).sum(1).flatten(), (want * luma).sum(1).flatten()]))[0, 1]
    assert r > 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_tiles_match_the_whole_frame(published_checkpoint, kind):
    """Tiles are planned in the network's multiple and blended; with weights that change a frame as much as a
    trained deblurrer does, tiled and whole outputs agree to at least 50 dB (measured: 69-90)."""
    path = published_checkpoint(kind, ".pth")
    deb = load_deblurrer(None, path, device="cpu", precision="fp32")
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(128, 192), mode="bilinear")
    whole, tiled = deb(x), deb(x, tile=96, overlap=32)
    assert psnr(tiled, whole).item() > 50
    # the plan's memory figure is counted for this network, not assumed
    from deblur_core.models import activation_bytes_per_pixel

    assert deb.bytes_per_pixel == pytest.approx(1.5 * activation_bytes_per_pixel(deb.model))
    assert (whole - x).abs().mean() > 5e-3


@pytest.mark.parametrize("kind", KINDS)
def test_eval_scores_it_beside_the_input_and_richardson_lucy(published_checkpoint, kind, tmp_path):
    path = published_checkpoint(kind, ".safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, f in enumerate(_frames(2, seed=3)):
        iio.imwrite(photos / f"{i}.png", np.repeat(np.repeat(f, 2, axis=0), 2, axis=1))  # 60x88
    r = runner.invoke(app, ["eval", "--weights", str(path), "--data", f"folder:{photos}", "--blur", "gaussian",
                            "--val-count", "2", "--device", "cpu", "--precision", "fp32", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)[0]
    assert set(result["rows"]) == {"blurred", "model", "richardson_lucy"}
    assert result["model"].endswith(f"({path.name})")
    assert result["rows"]["model"]["psnr"] != result["rows"]["blurred"]["psnr"]


def test_nafnet_takes_tlc_and_exports_but_other_networks_refuse_both(published_checkpoint, tmp_path):
    naf = published_checkpoint("nafnet-gopro-width64", ".pth")
    deb = load_deblurrer(None, naf, device="cpu", precision="fp32", tlc=True)
    assert {b.pool_window for _, b in deb.model._blocks_by_level()} >= {384}  # 1.5 x its 256 px training crops
    fft = published_checkpoint("fftformer-gopro", ".pth")
    r = runner.invoke(app, ["batch", str(tmp_path), "--weights", str(fft), "--tlc"])
    assert r.exit_code == 2 and "TLC" in r.output
    r = runner.invoke(app, ["export", "--weights", str(fft), "--out", str(tmp_path / "f.onnx")])
    assert r.exit_code == 2 and "not exported" in r.output and not (tmp_path / "f.onnx").exists()
    pytest.importorskip("onnxruntime")
    r = runner.invoke(app, ["export", "--weights", str(naf), "--out", str(tmp_path / "n.onnx")])
    assert r.exit_code == 0, r.output
    assert "onnxruntime matches" in r.output


def test_a_precision_the_network_does_not_support_is_refused(published_checkpoint, tmp_path):
    path = published_checkpoint("fftformer-gopro", ".pth")
    r = runner.invoke(app, ["batch", str(tmp_path), "--weights", str(path), "--precision", "fp16"])
    assert r.exit_code == 2 and "does not support fp16" in r.output
    r = runner.invoke(app, ["batch", str(tmp_path), "--weights", str(path), "--model", "srn"])
    assert r.exit_code == 2 and "leave out the model name" in r.output


def test_without_the_extra_architectures_restormer_is_refused_naming_them(published_checkpoint, tmp_path,
                                                                          monkeypatch):
    from deblur_core import published

    path = published_checkpoint("restormer-motion", ".pth")  # needs the extra to be made
    spandrel, extra = require_zoo(), published._extra_ids()
    main_only = spandrel.ArchRegistry()
    main_only.add(*[s for s in spandrel.MAIN_REGISTRY.architectures() if str(s.architecture.id) not in extra])

    class Loader(spandrel.ModelLoader):  # spandrel as installed without the extra
        def __init__(self):
            super().__init__(registry=main_only)

    monkeypatch.setattr(published, "_spandrel", lambda: type("spandrel", (), {
        "ModelLoader": Loader, "UnsupportedModelError": spandrel.UnsupportedModelError}))
    monkeypatch.setattr(published, "_extra_ids", set)
    out = tmp_path / "out"
    r = runner.invoke(app, ["batch", str(tmp_path), "--weights", str(path), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "not a checkpoint of an architecture spandrel knows" in r.output
    assert published.EXTRA_INSTALL in r.output.replace("\n", "")
    assert not out.exists()


def test_models_describes_a_checkpoint_with_its_licence(published_checkpoint):
    path = published_checkpoint("fftformer-gopro", ".safetensors")
    r = runner.invoke(app, ["models", "--json", "--weights", str(path)])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)["weights"][0]
    assert (info["architecture"], info["licence"], info["size_requirements"]) == ("FFTformer", "MIT", "multiple of 32")
    assert info["params"] == sum(p.numel() for p in load_deblurrer(None, path, device="cpu").model.parameters())


def test_convert_writes_tensors_that_load_the_same(published_checkpoint, tmp_path):
    src = published_checkpoint("nafnet-reds-width64", ".pth")
    r = runner.invoke(app, ["convert", str(src), str(tmp_path / "n.safetensors")])
    assert r.exit_code == 0 and "NAFNet 64w" in r.output, r.output
    x = _tensor(_frames(1))
    a = load_deblurrer(None, src, device="cpu", precision="fp32")(x)
    b = load_deblurrer(None, tmp_path / "n.safetensors", device="cpu", precision="fp32")(x)
    assert torch.equal(a, b)


def test_code_in_a_checkpoint_never_runs(tmp_path, capfd):
    """A pickle whose loading would write a file, and a TorchScript archive whose loading runs its
    ``__setstate__`` (which prints), are refused before any of it runs; a super-resolution model is refused
    with its scale."""
    require_zoo()
    marker = tmp_path / "pwned"
    torch.save({"w": torch.zeros(1), "payload": _Payload(str(marker))}, tmp_path / "evil.pth")
    script = tmp_path / "scripted.pt"
    _save_torchscript(script, tmp_path)
    torch.jit.load(str(script))  # what refusing it avoids: loading runs the archive's code
    assert "SETSTATE RAN" in capfd.readouterr().out
    for f in ("evil.pth", "scripted.pt"):
        out = tmp_path / f"out-{f}"
        for args in (["batch", str(tmp_path / "frames"), "--weights", str(tmp_path / f), "--out", str(out)],
                     ["convert", str(tmp_path / f), str(tmp_path / f"{f}.safetensors")]):
            r = runner.invoke(app, args)
            assert r.exit_code == 2, r.output
            assert ("posix.system" in r.output) if f == "evil.pth" else ("TorchScript" in r.output)
        assert not out.exists() and not (tmp_path / f"{f}.safetensors").exists()
    assert not marker.exists()
    assert "SETSTATE RAN" not in capfd.readouterr().out

    from spandrel.architectures.ESRGAN import ESRGAN

    torch.save(ESRGAN(num_blocks=1).state_dict(), tmp_path / "esrgan.pth")
    r = runner.invoke(app, ["batch", str(tmp_path), "--weights", str(tmp_path / "esrgan.pth")])
    assert r.exit_code == 2 and "4x super-resolution model (ESRGAN)" in r.output


class _Payload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def _save_torchscript(path: Path, tmp_path: Path) -> None:
    """A TorchScript archive whose ``__setstate__`` (run by torch.jit.load) prints "SETSTATE RAN"."""
    source = tmp_path / "scripted_module.py"
    source.write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.w = torch.nn.Parameter(torch.ones(1))\n"
        "    def forward(self, x):\n"
        "        return x * self.w\n"
        "    @torch.jit.export\n"
        "    def __getstate__(self):\n"
        "        return (self.w, self.training)\n"
        "    @torch.jit.export\n"
        "    def __setstate__(self, state: tuple[torch.Tensor, bool]):\n"
        "        self.w = state[0]\n"
        "        self.training = state[1]\n"
        "        print('SETSTATE RAN')\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("scripted_module", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module.M()), str(path))
