"""A byte-bounded cache of decoded images: the datasets' CPU images and the training device's photos."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from torch import Tensor

__all__ = ["ImageCache"]

K = TypeVar("K", bound=Hashable)


class ImageCache(Generic[K]):
    """``load`` memoised: images by key, least recently used dropped first once ``max_bytes`` is exceeded
    (the image just loaded always stays, however large).

    Args:
        load: ``key -> tensor``, e.g. a path to its decoded (C, H, W) image. Device and dtype are the
            loader's choice; the cache counts the bytes the tensors hold.
        max_bytes: the budget.
    """

    def __init__(self, load: Callable[[K], Tensor], max_bytes: int) -> None:
        self.load, self.max_bytes = load, max_bytes
        self._items: OrderedDict[K, Tensor] = OrderedDict()
        self._bytes = 0

    def __call__(self, key: K) -> Tensor:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        img = self.load(key)
        self._items[key] = img
        self._bytes += img.numel() * img.element_size()
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
        return img
