"""deblur_core.batch when things go wrong: outputs holding NaN, a full disk (a patched writer, and a real tiny
filesystem where one can be mounted)."""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from deblur_core.batch import BatchOptions, deblur_path
from deblur_core.inference import NON_FINITE_OUTPUT, Deblurrer
from deblur_core.io import Image, VideoWriter, list_images, read_image, write_image

from helpers import disk_full_after, disk_full_error

FRAMES = 40


class _Network(nn.Module):
    """The identity (NaN for frames whose first pixel is 1), slow enough for a writer to fail mid-run; keeps
    the time of every call."""

    def __init__(self, seconds: float = 0.0):
        super().__init__()
        self.seconds, self.calls = seconds, []

    def forward(self, x):
        self.calls.append(time.monotonic())
        time.sleep(self.seconds)
        return torch.where(x[:, :1, :1, :1] == 1, torch.full_like(x, float("nan")), x)


def _deblurrer(seconds: float = 0.0) -> Deblurrer:
    return Deblurrer(model=_Network(seconds), name="identity", device=torch.device("cpu"), weights=None)


def _frames(root: Path, n: int = FRAMES, h: int = 40, w: int = 48, nan_at: tuple[int, ...] = ()) -> list[str]:
    g = torch.Generator().manual_seed(0)
    rels = [f"{i:03d}.png" for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    for i, rel in enumerate(rels):
        data = torch.rand(3, h, w, generator=g) * 0.9
        data[:, 0, 0] = 1.0 if i in nan_at else 0.0
        write_image(root / rel, Image(data=data))
    return rels


def _video(path: Path, n: int, nan_at: tuple[int, ...] = ()) -> None:
    g = torch.Generator().manual_seed(0)
    with VideoWriter(path, fps=10, crf=0) as video:
        for i in range(n):
            data = torch.rand(3, 40, 48, generator=g) * 0.8
            data[:, :8, :8] = 1.0 if i in nan_at else 0.0  # survives the encoding as pure white
            video.write(data)


def _names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in list_images(root))


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".*")] if root.exists() else []


def test_an_output_holding_nan_fails_its_frame_and_writes_nothing_for_it(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = _frames(src, 6, nan_at=(2, 4))
    report = deblur_path(src, out, BatchOptions(), deblurrer=_deblurrer())
    assert report.failed == [("002.png", NON_FINITE_OUTPUT), ("004.png", NON_FINITE_OUTPUT)]
    assert report.done == 4 and _names(out) == [r for i, r in enumerate(rels) if i not in (2, 4)]
    assert not _leftovers(out)


def test_a_video_with_a_nan_frame_is_not_written_and_stops_there(tmp_path):
    clip = tmp_path / "clip.mkv"
    _video(clip, 12, nan_at=(3,))
    deb = _deblurrer()
    report = deblur_path(clip, tmp_path / "out.mkv", BatchOptions(), deblurrer=deb)
    assert report.failed == [("clip.mkv", f"not written: clip.mkv frame 3: {NON_FINITE_OUTPUT}")]
    assert report.done == 0 and len(deb.model.calls) == 4  # frames 0-3, none after the failed one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


def test_a_full_disk_stops_the_run_at_the_first_failure_and_a_rerun_continues(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = _frames(src)
    state = disk_full_after(monkeypatch, writes=5)
    deb = _deblurrer(seconds=0.01)
    report = deblur_path(src, out, BatchOptions(batch_size=1), deblurrer=deb)
    assert report.done == 5 and report.failed == []
    assert report.stopped == (f"No space left on device in '{out}': stopped at the first such error with 5 of "
                              f"{FRAMES} frames written; they stay, and a rerun continues with the rest once there "
                              "is room")
    # the frame in the network when the write failed may finish; none starts after it
    assert len([t for t in deb.model.calls if t > state["failed_at"]]) <= 1
    assert len(deb.model.calls) < 5 + 10 and state["writes"] < 5 + 10
    assert _names(out) == rels[:5] and not _leftovers(out)
    monkeypatch.undo()  # room again
    again = deblur_path(src, out, BatchOptions(), deblurrer=_deblurrer())
    assert (again.done, again.skipped, again.stopped) == (FRAMES - 5, 5, "")
    assert _names(out) == rels


def test_a_full_disk_while_a_video_is_written_removes_its_partial_file(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mkv"
    _video(clip, 30)
    written, real, failed_at = [], VideoWriter.write, []

    def write(self, frame, pts=None):
        if len(written) == 4:
            failed_at.append(time.monotonic())
            raise disk_full_error(self.path)
        written.append(pts)
        real(self, frame, pts)

    monkeypatch.setattr(VideoWriter, "write", write)
    deb = _deblurrer(seconds=0.01)
    report = deblur_path(clip, tmp_path / "out" / "clip.mkv", BatchOptions(), deblurrer=deb)
    assert report.stopped == (f"No space left on device in '{tmp_path / 'out'}': 'clip.mkv' was not written (its "
                              "partial file is removed); a rerun starts it again once there is room")
    assert report.failed == [] and report.done == 0
    assert len([t for t in deb.model.calls if t > failed_at[0]]) <= 1 and len(deb.model.calls) < 30
    assert list((tmp_path / "out").iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB filesystem (tmpfs; needs root): skipped where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_stops_folders_and_videos(tmp_path, tiny_disk):
    src = tmp_path / "in"
    _frames(src, h=64, w=96)  # about 18 KB a PNG: a dozen fit
    report = deblur_path(src, tiny_disk / "out", BatchOptions(), deblurrer=_deblurrer())
    assert report.stopped.startswith(f"No space left on device in '{tiny_disk / 'out'}'")
    assert 0 < report.done < FRAMES and report.failed == []
    assert len(_names(tiny_disk / "out")) == report.done and not _leftovers(tiny_disk)
    clip = tmp_path / "clip.mkv"
    _video(clip, 60)
    report = deblur_path(clip, tiny_disk / "clip.mkv", BatchOptions(), deblurrer=_deblurrer())
    assert "'clip.mkv' was not written" in report.stopped and not (tiny_disk / "clip.mkv").exists()
    assert not _leftovers(tiny_disk)


def test_two_runs_on_one_output_folder_take_turns_and_leave_every_output_whole(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    rels = _frames(src, 6)

    def slow_write(path, image):  # a slow disk: time for the other run to reach the same file
        write_image(path, image)
        time.sleep(0.05)

    monkeypatch.setattr("deblur_core.batch.folder.write_image", slow_write)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(deblur_path, src, out, BatchOptions(), deblurrer=_deblurrer()) for _ in range(2)]
        reports = [run.result() for run in runs]
    assert [(r.done, r.failed) for r in reports] == [(6, []), (6, [])]  # duplicated work, no failure
    assert all(torch.equal(read_image(out / rel).data, read_image(src / rel).data) for rel in rels)
    assert not _leftovers(out)
