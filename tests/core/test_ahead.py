"""deblur_core.data.ahead: items made in a background thread ahead of the caller, in order, errors passed on."""

import threading
import time

import pytest

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
