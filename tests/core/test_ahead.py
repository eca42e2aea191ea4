"""deblur_core.data.ahead: items made in a background thread ahead of the caller, in order, errors passed on."""

import threading
import time

import pytest
import torch

from deblur_core.data.ahead import made_ahead


def test_items_come_in_order_and_the_next_is_made_while_the_caller_works():
    asked = []

    def items():
        for i in range(5):
            asked.append(i)
            yield i

    it = made_ahead(items())
    assert next(it) == 0
    # the caller holds item 0; the thread has made item 1 (and waits, one ahead) without being asked
    for _ in range(200):
        if 1 in asked:
            break
        time.sleep(0.01)
    assert asked[:2] == [0, 1]
    assert list(it) == [1, 2, 3, 4]


def test_an_error_in_making_an_item_is_raised_at_that_item():
    def items():
        yield "a"
        raise RuntimeError("bad batch")

    it = made_ahead(items())
    assert next(it) == "a"
    with pytest.raises(RuntimeError, match="bad batch"):
        next(it)


def test_closing_stops_the_thread():
    def endless():
        n = 0
        while True:
            n += 1
            yield n

    before = threading.active_count()
    for n in made_ahead(endless(), ahead=2):
        if n == 3:
            break  # the loop's iterator is closed here, and with it the thread
    assert threading.active_count() == before
    with pytest.raises(ValueError):
        next(made_ahead(iter([]), ahead=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_items_made_on_a_stream_of_their_own_are_whole_when_handed_over():
    """Made on a side stream, an item's kernels may still be queued there when the thread hands it over: the
    caller's stream must wait for them."""
    stream = torch.cuda.Stream()

    def items():
        for i in range(4):
            x = torch.zeros(1 << 20, device="cuda")
            torch.cuda._sleep(10**7)  # milliseconds of GPU time before the fill: a caller that did not wait sees 0
            x.fill_(i + 1)
            yield x, x * 2

    for i, (a, b) in enumerate(made_ahead(items(), stream=stream)):
        assert torch.all(a == i + 1) and torch.all(b == 2 * (i + 1))
