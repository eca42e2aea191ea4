"""deblur_core.batch: folders and videos, mirroring, resume, bad frames, modes, tiling, sharding, memory."""

import errno
import hashlib
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.transform import resize
from torch import nn

from deblur_core.batch import COMPARE_DIR, BatchOptions, deblur_path
from deblur_core.blur import synth_blur
from deblur_core.errors import DeblurError, ImageWriteError
from deblur_core.inference import CPU_MEMORY_BUDGET, Deblurrer, TilePlan, deblur_tensor, load_deblurrer, plan_batch
from deblur_core.io import (Image, VideoWriter, list_images, read_image, read_video_frames, to_tensor, video_fps,
                            write_image)
from deblur_core.metrics import blur_effect, psnr
from deblur_core.models import get_model

from helpers import assert_output_of, random_deblurrer, randomise


def deblur(input, out=None, *, model="srn", progress=None, **options):
    """:func:`deblur_path` with :class:`BatchOptions` from keywords and ``model`` a name or a ready Deblurrer."""
    return deblur_path(input, out, BatchOptions(**options), deblurrer=model, progress=progress)


def _frame(h=40, w=48, c=3, bits=8, alpha=False, seed=0) -> Image:
    g = torch.Generator().manual_seed(seed)
    data = torch.rand(c, h, w, generator=g)
    a = None
    if alpha:
        dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
        a = np.random.default_rng(seed).integers(0, top + 1, size=(h, w)).astype(dtype)
    return Image(data=data, alpha=a, bit_depth=bits)


def _write_frames(root: Path, rels, **kw) -> list[Path]:
    paths = []
    for i, rel in enumerate(rels):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        write_image(p, _frame(seed=i, **kw))
        paths.append(p)
    return paths


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Recorder(nn.Module):
    """The identity, remembering the (B, C, H, W) shape and first pixel of every call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((tuple(x.shape), x[:, 0, 0, 0].tolist()))
        return x


def _recorder() -> Deblurrer:
    return Deblurrer(model=_Recorder(), name="recorder", device=torch.device("cpu"), weights=None)


def test_nested_folders_are_read_in_natural_order_and_each_frame_runs_alone(tmp_path):
    src = tmp_path / "clips"
    rels = ["10/frame1.png", "2/frame10.png", "2/frame2.png", "2/frame1.png", "10/frame0.png"]
    sizes = {"10/frame1.png": (24, 32), "10/frame0.png": (24, 32)}
    for rel in rels:
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        h, w = sizes.get(rel, (40, 48))
        # the first pixel encodes the frame's position in natural order
        order = ["2/frame1.png", "2/frame2.png", "2/frame10.png", "10/frame0.png", "10/frame1.png"].index(rel)
        img = torch.zeros(3, h, w)
        img[:, 0, 0] = order / 255
        write_image(p, Image(data=img))
    deb = _recorder()
    report = deblur(src, model=deb, batch_size=2)
    seen = [round(v * 255) for _, firsts in deb.model.calls for v in firsts]
    assert seen == [0, 1, 2, 3, 4]
    # 2/ holds three 40x48 frames, 10/ two 24x32 frames: batched by size, but the network sees one at a time
    assert [shape for shape, _ in deb.model.calls] == [(1, 3, 40, 48)] * 3 + [(1, 3, 24, 32)] * 2
    out = tmp_path / "clips_deblurred"
    assert report.output == str(out)
    assert sorted(str(p.relative_to(out)) for p in list_images(out)) == sorted(rels)
    assert (report.done, report.skipped, report.failed, report.total) == (5, 0, [], 5)
    assert report.frames_per_s > 0 and report.megapixels_per_s > 0
    assert report.as_dict()["done"] == 5 and "frames_per_s" in report.as_dict()


def test_never_writes_inside_input_nor_changes_it(tmp_path):
    src = tmp_path / "in"
    _write_frames(src, ["a/1.png", "a/2.png", "b.png"])
    before = _digest(src)
    report = deblur(src, tmp_path / "out", model="srn")
    assert report.done == 3
    assert _digest(src) == before  # no file added, removed or changed
    assert sorted(_digest(tmp_path / "out")) == sorted(before)
    with pytest.raises(ValueError, match="inside the input"):
        deblur(src, src / "out")
    with pytest.raises(ValueError, match="inside the input"):
        deblur(src, src)
    with pytest.raises(ValueError, match="contains the input"):
        deblur(src, tmp_path)
    assert _digest(src) == before


def test_rerun_skips_existing_outputs_and_redoes_deleted_ones(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _write_frames(src, [f"{i:03d}.png" for i in range(6)])
    assert deblur(src, out, model="srn").done == 6
    (out / "001.png").unlink()
    (out / "004.png").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    report = deblur(src, out, model="srn")
    assert (report.done, report.skipped, report.total) == (2, 4, 6)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in kept.items())  # finished frames not redone
    assert deblur(src, out, model="srn", overwrite=True).done == 6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_corrupt_and_truncated_frames_are_reported_and_the_rest_done(tmp_path):
    src = tmp_path / "in"
    _write_frames(src, ["1.png", "3.png", "4.png"])
    (src / "2.png").write_bytes(b"this is not a png")
    whole = (src / "4.png").read_bytes()
    (src / "5.png").write_bytes(whole[: len(whole) // 2])
    report = deblur(src, model="srn")
    assert report.done == 3
    assert sorted(name for name, _ in report.failed) == ["2.png", "5.png"]
    assert all(reason for _, reason in report.failed)
    assert sorted(p.name for p in list_images(tmp_path / "in_deblurred")) == ["1.png", "3.png", "4.png"]


@pytest.mark.parametrize(
    "name, kw",
    [
        ("gray8.png", dict(c=1)),
        ("gray16.png", dict(c=1, bits=16)),
        ("rgba8.png", dict(alpha=True)),
        ("rgb16.png", dict(bits=16)),
        ("rgba16.png", dict(bits=16, alpha=True)),
        ("graya8.png", dict(c=1, alpha=True)),
        ("rgb16.tif", dict(bits=16)),
        ("odd.png", dict(h=37, w=53)),
    ],
)
def test_modes_bit_depths_alpha_and_odd_sizes_round_trip(tmp_path, name, kw):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / name, _frame(**kw))
    original = read_image(src / name)
    deb = random_deblurrer()
    report = deblur(src, model=deb)
    assert report.done == 1
    result = read_image(tmp_path / "in_deblurred" / name)
    assert (result.mode, result.bit_depth) == (original.mode, original.bit_depth)
    assert_output_of(result.data, deb, original.data, original.bit_depth)  # the network's pixels, to the level
    if original.alpha is not None:
        assert result.alpha.dtype == original.alpha.dtype and np.array_equal(result.alpha, original.alpha)


def _blurred_photo_frames(root: Path) -> torch.Tensor:
    """Central 192x192 crops of three photographs, blurred by the seed's gaussian recipe (sigma 1, 2 or 3),
    saved as 8-bit PNG frames under ``root``; returns the sharp crops (3, 3, 192, 192)."""
    sharp = []
    for photo in (skdata.astronaut(), skdata.coffee(), skdata.chelsea()):
        top, left = (photo.shape[0] - 192) // 2, (photo.shape[1] - 192) // 2
        sharp.append(torch.from_numpy(photo[top:top + 192, left:left + 192]).permute(2, 0, 1).float() / 255)
    sharp = torch.stack(sharp)
    blurred = synth_blur(sharp, "gaussian", torch.Generator().manual_seed(0), quantize=True).blurred
    root.mkdir()
    for i, frame in enumerate(blurred):
        write_image(root / f"{i}.png", frame)
    return sharp


def test_blur_effect_falls_where_a_trained_network_removes_the_blur_and_not_where_it_is_the_identity(tmp_path):
    sharp = _blurred_photo_frames(tmp_path / "in")
    before = blur_effect(torch.stack([read_image(p).data for p in sorted((tmp_path / "in").glob("*.png"))]))
    trained = deblur(tmp_path / "in", tmp_path / "nafnet", model="nafnet")  # shipped: trained on gaussian blur
    assert trained.trained and trained.blur_effect_before == pytest.approx(before.mean().item(), abs=1e-9)
    # measured: 0.681 before, 0.447 after (0.449 in fp32); the sharp crops 0.381
    assert trained.blur_effect_after < trained.blur_effect_before - 0.15
    assert trained.blur_effect_after == pytest.approx(blur_effect(sharp).mean().item(), abs=0.1)
    identity = deblur(tmp_path / "in", tmp_path / "identity", model="srn-nolstm")  # untrained: the identity
    assert not identity.trained and identity.blur_effect_before == trained.blur_effect_before
    assert identity.blur_effect_after == pytest.approx(identity.blur_effect_before, abs=1e-4)
    assert {"blur_effect_before", "blur_effect_after"} <= set(trained.as_dict())


def test_blur_effect_is_none_where_no_frame_was_scored(tmp_path):
    _write_frames(tmp_path / "in", ["tiny.png"], h=3, w=40)  # too small to tell
    report = deblur(tmp_path / "in", model=_recorder())
    assert report.done == 1 and report.blur_effect_before is None and report.blur_effect_after is None


def test_compare_writes_side_by_side_images(tmp_path):
    src = tmp_path / "in"
    _write_frames(src, ["c/1.png"], alpha=True)
    deblur(src, tmp_path / "out", model="srn", compare=True)
    side = read_image(tmp_path / "out" / COMPARE_DIR / "c" / "1.png")
    before = read_image(src / "c" / "1.png")
    assert side.data.shape == (3, 40, 96) and side.mode == "RGBA"
    assert torch.equal(side.data[..., :48], before.data)
    # with compare asked for, an output without its side-by-side image is not "done"
    (tmp_path / "out" / COMPARE_DIR / "c" / "1.png").unlink()
    assert deblur(src, tmp_path / "out", model="srn", compare=True).done == 1


def test_frames_larger_than_the_tile_run_alone_in_tiles(tmp_path):
    src = tmp_path / "in"
    _write_frames(src, ["1.png", "2.png"], h=100, w=90)
    deb = _recorder()
    report = deblur(src, model=deb, tile=64, overlap=8, batch_size=4)
    assert report.done == 2
    assert {shape for shape, _ in deb.model.calls} == {(1, 3, 64, 64)}
    assert len(deb.model.calls) == 2 * 2 * 2  # two frames of 2 x 2 tiles


def test_frames_run_whole_within_the_memory_budget_else_in_tiles(tmp_path, monkeypatch):
    src = tmp_path / "in"
    _write_frames(src, [f"{i}.png" for i in range(4)], h=64, w=80)
    monkeypatch.setattr(Deblurrer, "bytes_per_pixel", property(lambda self: 1000.0))
    # a 64x80 frame (5.1 MB at 1000 bytes a pixel) fits in 11 MB: whole
    monkeypatch.setattr(Deblurrer, "budget", property(lambda self: 11_000_000))
    deb = _recorder()
    report = deblur(src, tmp_path / "a", model=deb, batch_size=4)
    assert [shape for shape, _ in deb.model.calls] == [(1, 3, 64, 80)] * 4
    assert report.done == 4 and not [n for n in report.notes if "tiles" in n]
    # one frame does not fit in 3 MB: each runs alone, in overlapping tiles of at most 3000 pixels
    monkeypatch.setattr(Deblurrer, "budget", property(lambda self: 3_000_000))
    deb = _recorder()
    report = deblur(src, tmp_path / "b", model=deb, batch_size=4, overlap=8)
    shapes = {shape for shape, _ in deb.model.calls}
    assert all(b == 1 and h * w <= 3000 for b, _, h, w in shapes), shapes
    per_frame = plan_batch(64, 80, bytes_per_pixel=1000, budget=3_000_000, batch_size=4, overlap=8).tiles(64, 80, 8)
    assert len(deb.model.calls) == 4 * per_frame and per_frame > 1
    assert any("80x64 frames ran in" in n and "tiles" in n for n in report.notes), report.notes
    assert report.done == 4


def test_a_720p_frame_of_srn_runs_whole_and_an_8k_one_in_few_tiles():
    bpp = load_deblurrer("srn", device="cpu").bytes_per_pixel
    assert 1000 < bpp < 2000  # 924 bytes of activations a pixel, counted, times 1.5
    plan = plan_batch(720, 1280, bytes_per_pixel=bpp, budget=CPU_MEMORY_BUDGET, batch_size=4, overlap=32)
    assert plan == TilePlan(frames=1, tile=None)  # whole: the default --tile 512 cut it into 6 tiles
    plan = plan_batch(4320, 7680, bytes_per_pixel=bpp, budget=CPU_MEMORY_BUDGET, batch_size=4, overlap=32)
    th, tw = plan.tile
    assert th * tw * bpp <= CPU_MEMORY_BUDGET and th % 16 == tw % 16 == 0
    assert plan.tiles(4320, 7680, 32) * th * tw < 1.1 * 4320 * 7680  # < 10% overlap (512-pixel tiles: 30%)
    assert plan_batch(360, 640, bytes_per_pixel=bpp, budget=CPU_MEMORY_BUDGET, batch_size=4, overlap=32).frames == 4


def test_a_network_that_needs_multiples_or_squares_is_planned_in_them():
    """Published networks state size rules (FFTformer: sides multiple of 32; Uformer: squares of 128): the plan
    counts the padded input and cuts tiles of that kind."""
    kw = dict(bytes_per_pixel=1000, budget=100_000_000, batch_size=4, overlap=32)  # 100,000 pixels
    plan = plan_batch(1000, 1500, multiple=32, **kw)
    th, tw = plan.tile
    assert th % 32 == tw % 32 == 0 and th * tw <= 100_000
    side = plan_batch(1000, 1500, multiple=128, square=True, **kw).tile
    assert side == (256, 256)  # the largest square of 128s within 100,000 pixels
    # whole: 40x60 pads to a 128-square, which fits; 300x40 pads to a 384-square (147,456 px), which does not
    assert plan_batch(40, 60, multiple=128, square=True, **kw).tile is None
    assert plan_batch(300, 40, multiple=128, square=True, **kw).tile == (256, 256)
    assert plan_batch(300, 40, **kw).tile is None  # the same frame without the rule runs whole


@pytest.mark.slow
def test_tiled_output_matches_untiled_output():
    # An untrained network is the identity: randomise it so that the tiles' context really matters.
    torch.manual_seed(0)
    model = randomise(get_model("srn")).eval().to(memory_format=torch.channels_last)
    photo = resize(skdata.astronaut(), (1024, 1024), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()
    whole = deblur_tensor(model, x)
    tiled = deblur_tensor(model, x, tile=256, overlap=32)
    assert psnr(whole, x) < 35  # the network changes the image ...
    assert psnr(tiled, whole) >= 45  # ... and the tiles agree with the whole frame: no seams


@pytest.mark.slow
def test_two_ranks_split_the_frames_disjointly_and_completely(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = [f"{clip}/{i}.png" for clip in ("1", "2", "10") for i in range(3)]
    _write_frames(src, rels)
    reports = [deblur(src, out, model="srn", rank=r, world_size=2) for r in (0, 1)]
    assert [r.done for r in reports] == [5, 4]  # frame i goes to rank i % 2
    assert sum(r.done for r in reports) == len(rels)  # so nothing was done twice ...
    assert sorted(str(p.relative_to(out)) for p in list_images(out)) == sorted(rels)  # ... and nothing missed
    with pytest.raises(ValueError, match="rank"):
        deblur(src, out, rank=2, world_size=2)


def _streams(path: Path) -> tuple[list[float], Fraction, list[str]]:
    """(video frame times in seconds, average frame rate, audio codecs) of a video file."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(video)]
        return times, video.average_rate, [s.codec_context.name for s in container.streams.audio]


@pytest.mark.slow
def test_video_keeps_its_frames_rate_timestamps_and_sound(tmp_path, video_with_audio):
    clip = tmp_path / "clip.mp4"
    video_with_audio(clip, frames=10)
    report = deblur(clip, model="srn", compare=True, batch_size=3)
    out = tmp_path / "clip_deblurred.mp4"
    assert report.output == str(out) and (report.done, report.failed) == (10, [])
    frames = list(read_video_frames(out))
    assert len(frames) == 10 and frames[0].shape == (40, 48, 3)
    assert video_fps(out) == pytest.approx(25.0)
    times, rate, audio = _streams(out)
    assert (times, rate, audio) == _streams(clip)  # every frame at its time, same rate, the AAC track kept
    assert audio == ["aac"] and any("copied without re-encoding" in n for n in report.notes)
    with av.open(str(clip)) as a, av.open(str(out)) as b:  # remuxed packet for packet, not re-encoded
        assert [bytes(p) for p in a.demux(audio=0) if p.size] == [bytes(p) for p in b.demux(audio=0) if p.size]
    side = list(read_video_frames(tmp_path / "clip_deblurred_compare.mp4"))
    assert len(side) == 10 and side[0].shape == (40, 96, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    again = deblur(clip, model="srn", compare=True)
    assert (again.done, again.skipped) == (0, 10)
    assert any("--overwrite" in n for n in again.notes)
    # an explicit output folder receives STEM.mp4; a second rank has nothing to do
    assert deblur(clip, tmp_path / "videos", model="srn").done == 10
    assert (tmp_path / "videos" / "clip.mp4").is_file()
    assert deblur(clip, tmp_path / "other.mp4", rank=1, world_size=2).done == 0


def test_audio_the_container_cannot_hold_is_reencoded_to_aac(tmp_path, video_with_audio):
    clip = tmp_path / "clip.mkv"
    video_with_audio(clip, frames=8, audio="libopus", rate=48000)
    report = deblur(clip, tmp_path / "out.avi", model="srn-nolstm", codec="mpeg4")
    assert report.done == 8 and not report.failed
    assert any("re-encoded to AAC" in n and "opus" in n for n in report.notes)
    times, rate, audio = _streams(tmp_path / "out.avi")
    assert (len(times), rate, audio) == (8, 25, ["aac"])


@pytest.mark.slow
def test_codec_and_crf_choose_the_video_encoding(tmp_path, video_with_audio):
    clip = tmp_path / "clip.mp4"
    video_with_audio(clip, frames=6)
    sizes = {}
    for crf in (0, 40):
        out = tmp_path / f"crf{crf}.mkv"
        assert deblur(clip, out, model="srn-nolstm", codec="libx264", crf=crf).done == 6
        sizes[crf] = out.stat().st_size
    assert sizes[0] > 2 * sizes[40]  # lossless is far larger than crf 40
    assert deblur(clip, tmp_path / "vp9.webm", model="srn-nolstm", codec="libvpx-vp9").done == 6
    with av.open(str(tmp_path / "vp9.webm")) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
        assert [s.codec_context.name for s in container.streams.audio] == ["opus"]  # WebM takes no AAC
    with pytest.raises(ValueError, match="unknown video codec 'nope'"):
        deblur(clip, tmp_path / "x.mp4", model="srn-nolstm", codec="nope")
    with pytest.raises(ValueError, match="cannot hold libx264"):
        deblur(clip, tmp_path / "x.webm", model="srn-nolstm", codec="libx264")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "crf0.mkv", "crf40.mkv", "vp9.webm"]


def test_unreadable_video_is_reported_and_leaves_no_output(tmp_path):
    clip = tmp_path / "broken.mp4"
    with VideoWriter(tmp_path / "good.mp4", fps=10) as video:
        for _ in range(6):
            video.write(torch.rand(3, 40, 48))
    clip.write_bytes(b"\x00" * 64 + (tmp_path / "good.mp4").read_bytes()[200:])
    report = deblur(clip, model="srn")
    assert report.done == 0 and [name for name, _ in report.failed] == ["broken.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "good.mp4"]


def test_truncated_and_fake_videos_are_named_with_the_reason(tmp_path, video_with_audio):
    good = tmp_path / "good.mp4"
    video_with_audio(good, frames=12)
    whole = good.read_bytes()
    cases = {
        "cut.mp4": whole[: len(whole) // 2],  # a recording cut off before its index was written
        "fake.mp4": b"this is a text file with a video extension\n" * 20,
        "empty.mp4": b"",
    }
    with av.open(str(good)) as src, av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    fast = (tmp_path / "fast.mp4").read_bytes()  # index first: the cut file opens, then breaks off
    cases["cut-fast.mp4"] = fast[: len(fast) * 2 // 3]
    expected = {"cut.mp4": "truncated: its index", "fake.mp4": "not a video", "empty.mp4": "empty file",
                "cut-fast.mp4": "truncated: "}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        report = deblur(tmp_path / name, tmp_path / "out" / name, model="srn-nolstm")
        assert report.done == 0 and len(report.failed) == 1, name
        assert report.failed[0][0] == name and expected[name] in report.failed[0][1], report.failed
        assert "pyav" not in report.failed[0][1]
    assert "of the 12 frames its header declares" in report.failed[0][1]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.mp4"))


def _read_only_under(root: Path, monkeypatch) -> None:
    """Make creating folders under ``root`` fail as on a read-only filesystem (root ignores permissions)."""
    mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self == root or root in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    src = tmp_path / "in"
    _write_frames(src, ["a/1.png", "2.png"])
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    deb = _recorder()
    with pytest.raises(ValueError, match="is a file, not a folder"):
        deblur(src, tmp_path / "notes.txt", model=deb)
    _read_only_under(tmp_path / "ro", monkeypatch)
    with pytest.raises(ValueError, match="cannot write to the output folder .*Read-only file system"):
        deblur(src, tmp_path / "ro" / "out", model=deb)
    with pytest.raises(ValueError, match="cannot write to the output folder .*Read-only file system"):
        (tmp_path / "clip.mp4").write_bytes(b"not decoded: the output is refused first")
        deblur(tmp_path / "clip.mp4", tmp_path / "ro" / "clip.mp4", model=deb)
    assert deb.model.calls == []  # refused before the network ran


def test_failed_writes_are_reported_even_when_their_cleanup_fails_too(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    _write_frames(src, ["1.png", "sub/2.png"])

    def read_only(path, image):
        raise ImageWriteError(path, "OSError: [Errno 30] Read-only file system")

    def unlink(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    # the disk turns read-only once the run has started: writes, removals and new folders all fail
    monkeypatch.setattr("deblur_core.batch.folder.write_image", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    _read_only_under(out / "sub", monkeypatch)
    report = deblur(src, out, model=_recorder())
    assert report.done == 0
    assert sorted(name for name, _ in report.failed) == ["1.png", os.path.join("sub", "2.png")]
    assert all("Read-only file system" in reason for _, reason in report.failed)


def test_bad_arguments_and_empty_folder(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DeblurError, match="no images found"):
        deblur(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        deblur(tmp_path / "missing")
    _write_frames(tmp_path / "in", ["1.png"])
    with pytest.raises(ValueError, match="twice the tile overlap"):
        deblur(tmp_path / "in", tile=64, overlap=32)
    with pytest.raises(ValueError, match="batch size"):
        deblur(tmp_path / "in", batch_size=0)
    with pytest.raises(ValueError, match="neither a folder nor a video"):
        deblur(tmp_path / "in" / "1.png")
    with pytest.raises(ValueError, match="unknown model"):
        deblur(tmp_path / "in", model="nope")


_MEASURE_CHILD = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
"""


@pytest.mark.slow
def test_peak_memory_of_an_8k_frame_stays_under_4gb(tmp_path):
    h, w = 4320, 7680
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.stack([(xx % 256), (yy % 256), ((xx + yy) // 64 % 256)], axis=-1).astype(np.uint8)
    src = tmp_path / "8k"
    src.mkdir()
    write_image(src / "frame.png", Image(data=to_tensor(frame)[0]))
    del yy, xx, frame
    cli = [sys.executable, "-m", "deblur_cli", "batch", str(src), "--out", str(tmp_path / "out"), "--model", "srn",
           "--device", "cpu", "--quiet"]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE_CHILD, *cli], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    seconds = time.perf_counter() - start
    peak_kib, rc = map(int, result.stdout.split()[-2:])
    print(f"8K frame with srn on CPU: peak RSS {peak_kib / 2**20:.2f} GiB, {seconds:.1f} s")
    assert rc == 0, result.stderr
    assert read_image(tmp_path / "out" / "frame.png").data.shape == (3, h, w)
    assert peak_kib * 1024 < 4e9


def test_io_workers_beside_cpu_and_gpu(monkeypatch):
    """Two codec threads each beside a network on the CPU (it takes the cores); beside a GPU, half the host's
    cores each, between two and the frames a run keeps in flight (8)."""
    from deblur_core.batch import pipeline

    assert pipeline.io_workers("cpu") == 2
    for cores, expected in ((1, 2), (2, 2), (6, 3), (16, 8), (64, 8)):
        monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
        assert pipeline.io_workers("cuda") == expected, cores


def test_folder_run_sizes_its_codec_threads_by_the_device(tmp_path, monkeypatch):
    from deblur_core.batch import folder, pipeline

    _write_frames(tmp_path / "in", ["0.png", "1.png", "2.png"])
    asked = []

    def spy(device):
        asked.append(torch.device(device))
        return 3

    monkeypatch.setattr(folder, "io_workers", spy)
    names = set()
    original = pipeline.ThreadPoolExecutor

    def pool(workers, thread_name_prefix=""):
        names.add((thread_name_prefix, workers))
        return original(workers, thread_name_prefix=thread_name_prefix)

    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", pool)
    report = deblur(tmp_path / "in", tmp_path / "out", model=random_deblurrer("srn-nolstm"))
    assert report.done == 3 and asked == [torch.device("cpu")]
    assert names == {("deblur-read", 3), ("deblur-write", 3)}
