"""The byte-bounded image cache shared by the datasets and the training device's photos."""

import torch

from deblur_core.data.cache import ImageCache


def test_least_recently_used_goes_first_and_the_budget_counts_bytes():
    loads = []

    def load(key):
        loads.append(key)
        return torch.zeros(10, dtype=torch.float32)  # 40 bytes

    cache = ImageCache(load, max_bytes=100)  # room for two
    a = cache("a")
    cache("b")
    assert cache("a") is a and loads == ["a", "b"]  # a hit: not loaded again, and now the most recent
    cache("c")  # over budget: b, the least recently used, goes
    cache("a")
    cache("b")
    assert loads == ["a", "b", "c", "b"]


def test_an_image_over_the_budget_is_still_kept_until_the_next():
    cache = ImageCache(lambda key: torch.zeros(1000, dtype=torch.uint8), max_bytes=10)
    big = cache(0)
    assert cache(0) is big
    assert cache(1) is not big
