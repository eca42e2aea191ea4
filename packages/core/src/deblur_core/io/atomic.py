"""Writing an output whole or not at all: under a hidden temporary name in its folder, renamed over the final
name only once complete, so that neither a killed run nor a failed write leaves a truncated file, and a rerun
can take every file that exists as finished; and checking that an output can be written before any work.

:func:`atomic_path` serves single files written once (checkpoints, exports, charts): a unique temporary name,
fsynced before the rename. :func:`write_atomic` and :class:`AtomicVideo` serve a run's many outputs:
the temporary name is one fixed name per output (``.<stem>.partial<ext>``), so a rerun after a kill overwrites
any leftover instead of adding to it. While it is written and renamed, the writer holds an exclusive lock on
it (POSIX ``flock``): two processes writing the same output (two runs without sharding on one folder) take
turns instead of writing into one file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import ImageWriteError
from .video_writer import VideoWriter

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["atomic_path", "write_atomic", "AtomicVideo", "out_of_space", "check_writable_folder", "unwritable"]


def _partial_name(path: Path) -> Path:
    # hidden (list_images skips it), in the same folder (so the rename is atomic), same extension (format)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def _claimed(tmp: Path) -> Iterator[None]:
    """Hold an exclusive lock on an output's temporary file (created if missing) while it is written and
    renamed. Two runs without sharding on one output folder then take turns on a frame instead of writing into
    the same file (the second redoes it, to the same bytes), and no output is ever left half written; a
    killed run's leftover holds no lock. Where there is no ``flock`` (Windows, some network filesystems),
    files are written unlocked."""
    fd = None
    while fcntl is not None:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(tmp).st_ino:
                break
        except FileNotFoundError:  # the holder renamed or removed the file this one waited on: lock the next
            pass
        except OSError:  # a filesystem without locks
            break
        os.close(fd)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` a file, then rename it to ``path`` (creating its folder); on any error, remove it.

    Raises:
        ImageWriteError: the folder, the lock, the write or the rename failed (the cause is chained).
    """
    tmp = _partial_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _claimed(tmp):
            try:
                write(tmp)
                os.replace(tmp, path)
            except BaseException:
                _discard(tmp)  # under the lock: another run may take the name once it is released
                raise
    except OSError as err:  # the folder, the lock or the rename (write_image raises ImageWriteError itself)
        raise ImageWriteError(path, f"{type(err).__name__}: {err.strerror or err}") from err


def out_of_space(err: BaseException | None) -> OSError | None:
    """The OSError behind ``err`` (itself, or what it was raised from) that says the disk is full or the
    user's quota spent; None if there is none."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        err = err.__cause__ or err.__context__
    return None


def _discard(path: Path) -> None:
    # where the write failed (a read-only or full disk), removing its leftover may fail too: the write's
    # error is the one to report
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class AtomicVideo:
    """A :class:`VideoWriter` on a hidden temporary file, renamed to ``path`` only if no error occurred (a
    ``path`` of None writes nothing: a video that was not asked for)."""

    def __init__(self, path: Path | None, **encoding: Any) -> None:
        self.path, self.writer = path, None
        self.tmp = _partial_name(path) if path is not None else None
        self.held = contextlib.ExitStack()  # the temporary file's lock (see _claimed), until renamed or removed
        if path is not None:
            self.held.enter_context(_claimed(self.tmp))
            try:
                self.writer = VideoWriter(self.tmp, **encoding)
            except BaseException:
                _discard(self.tmp)
                self.held.close()
                raise

    def write(self, frame: Tensor, pts: int | None) -> None:
        self.writer.write(frame, pts)

    def __enter__(self) -> AtomicVideo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.writer is None:
            return
        with self.held:
            try:
                self.writer.close()
            except ImageWriteError:
                if exc_type is None:
                    _discard(self.tmp)
                    raise
            if exc_type is None:
                try:
                    os.replace(self.tmp, self.path)
                except OSError as err:
                    _discard(self.tmp)
                    raise ImageWriteError(self.path, f"{type(err).__name__}: {err.strerror or err}") from err
            else:
                _discard(self.tmp)


def check_writable_folder(folder: Path) -> None:
    """Create ``folder`` if needed and make sure files can be created in it, before any work is done.

    Raises:
        ValueError: it is a file, or it (or a folder above it) cannot be created or written to.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output '{folder}' is a file, not a folder; pass --out a folder (new or existing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"cannot write to the output folder '{folder}': {err.strerror or err}; pass --out a "
                         "writable folder") from err


def unwritable(path: Path) -> str | None:
    """Why the file ``path`` cannot be written, or None. Creates its folder if needed; leaves no new file
    behind, and appends nothing to an existing one (which survives a run that then fails)."""
    if path.is_dir():
        return "it is a folder"
    existing = next((p for p in path.parents if p.exists()), Path("."))
    if not existing.is_dir():
        return f"'{existing}' is a file, not a folder"
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
        if not existed:
            path.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary name beside ``path``; on success it is fsynced and renamed over ``path``, so a
    reader (or a run killed mid-write) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600), and writers may recreate it: give the finished file the
        # permissions of any new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
