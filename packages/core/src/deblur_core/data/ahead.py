"""The items of an iterator made ahead in a background thread, while the caller works on the previous one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["made_ahead"]

T = TypeVar("T")
_DONE = object()  # the iterator ran out


def made_ahead(items: Iterator[T], ahead: int = 1) -> Iterator[T]:
    """``items``, in order, each made in a background thread while the caller uses the one before.

    A training step on a GPU returns as soon as its kernels are queued, so the host is free while the GPU
    computes: a thread that makes the next batch then overlaps with the step instead of following it. The
    items are the same objects, in the same order, as iterating ``items`` directly; an exception raised in
    making one is raised to the caller at that item. Closing the returned iterator (a ``break`` out of the
    loop that drives it) stops the thread after the item it is making.

    Args:
        items: any iterator; it is advanced only by the background thread.
        ahead: items made and not yet taken, at most (>= 1).
    """
    if ahead < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    made: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(made, (item, None), stop):
                    return
            _put(made, (_DONE, None), stop)
        except BaseException as err:  # noqa: BLE001  (raised again in the caller's thread)
            _put(made, (_DONE, err), stop)

    thread = threading.Thread(target=produce, name="deblur-made-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, err = made.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(made: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    """Put ``entry`` once there is room; False (not put) when the consumer has stopped."""
    while not stop.is_set():
        try:
            made.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
