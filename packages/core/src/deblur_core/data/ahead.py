"""The items of an iterator made ahead in a background thread, while the caller works on the previous one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

import torch

__all__ = ["made_ahead"]

T = TypeVar("T")
_DONE = object()  # the iterator ran out


def made_ahead(items: Iterator[T], ahead: int = 1, *, stream: torch.cuda.Stream | None = None) -> Iterator[T]:
    """``items``, in order, each made in a background thread while the caller uses the one before.

    A training step on a GPU returns as soon as its kernels are queued, so the host is free while the GPU
    computes: a thread that makes the next batch then overlaps with the step instead of following it. The
    items are the same objects, in the same order, as iterating ``items`` directly; an exception raised in
    making one is raised to the caller at that item. Closing the returned iterator (a ``break`` out of the
    loop that drives it) stops the thread after the item it is making.

    With ``stream``, the items are made on that CUDA stream. On the caller's stream, where the training step
    runs, every copy between host and device that making an item does (a plan's tensors going over, a JPEG
    round trip) would wait for the step queued before it, and the step for the item: the two would take turns.
    On a stream of their own they wait for the item's own work only, and the GPU runs both at once. The
    caller's stream waits for each item's work before the item is handed over.

    Args:
        items: any iterator; it is advanced only by the background thread.
        ahead: items made and not yet taken, at most (>= 1).
        stream: a CUDA stream to make the items on (None: the thread's current one). Its items must be
            tensors or tuples of tensors.
    """
    if ahead < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    made: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            it = iter(items)
            while True:
                with torch.cuda.stream(stream):  # None: no change of stream
                    item = next(it, _DONE)
                    ready = None if stream is None or item is _DONE else stream.record_event()
                if item is _DONE:
                    break
                if not _put(made, (item, ready, None), stop):
                    return
            _put(made, (_DONE, None, None), stop)
        except BaseException as err:  # noqa: BLE001  (raised again in the caller's thread)
            _put(made, (_DONE, None, err), stop)

    thread = threading.Thread(target=produce, name="deblur-made-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, ready, err = made.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            if ready is not None:
                _hand_over(item, ready, stream.device)
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


def _hand_over(item, ready: torch.cuda.Event, device: torch.device) -> None:
    """Make the caller's stream on ``device`` wait for ``ready`` (the end of ``item``'s work on the stream it was
    made on), and keep the item's memory from being reused there until the caller's stream is done with it."""
    current = torch.cuda.current_stream(device)
    current.wait_event(ready)
    for t in item if isinstance(item, tuple) else (item,):
        t.record_stream(current)
