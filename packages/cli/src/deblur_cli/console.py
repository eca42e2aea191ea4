"""Where every command prints: results to stdout, notes, progress and errors to stderr."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from deblur_core.progress import Progress

__all__ = ["console", "err_console", "fail", "note", "show_log", "Bar"]

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (2: usage error, 1: the work failed).
    ``message`` is plain text: brackets in it (``pip install 'deblur-toolkit[zoo]'``) are printed as they are."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    err_console.print(f"[yellow]note:[/] {message}", soft_wrap=True)


def show_log(ctx: typer.Context) -> None:
    """Print the core library's log to stderr, DEBUG and up, until the command ends: the details its messages
    only summarise (such as every tensor name of a weight file that does not fit its model)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("deblur_core")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    def stop() -> None:  # the stream may be gone after the command (a test runner's capture)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)

    ctx.call_on_close(stop)


class Bar:
    """A progress bar on stderr fed by core's progress callbacks (:class:`deblur_core.progress.Progress`; nothing when
    disabled); with ``rates``, also frames/s and megapixels/s since the first update. ``fields``: text columns
    after the count, by name with their first text; :meth:`update`'s keywords set them (each keeps its last)."""

    def __init__(self, label: str, enabled: bool = True, *, rates: bool = False,
                 fields: dict[str, str] | None = None) -> None:
        self.label, self.enabled, self.rates, self.fields = label, enabled, rates, dict(fields or {})
        self.bar = self.task = None
        self.start = 0.0

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            rates = [TextColumn("{task.fields[fps]:.2f} frames/s"), TextColumn("{task.fields[mps]:.2f} MP/s")]
            texts = [TextColumn(f"{{task.fields[{name}]}}") for name in self.fields]
            self.bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(), *texts,
                                *(rates if self.rates else []), TimeRemainingColumn(), console=err_console)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, p: Progress, **fields: str) -> None:
        if self.bar is None:
            return
        done, total, megapixels = p.done, p.total, p.megapixels
        if self.task is None:
            self.start = time.perf_counter()
            self.task = self.bar.add_task(self.label, total=total, fps=0.0, mps=0.0, **self.fields)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=done, total=total, fps=done / elapsed, mps=megapixels / elapsed,
                        **fields)
