"""A thread-safe LRU bounded in entries and in bytes (a render draws frames in several threads)."""

from __future__ import annotations

import threading
from collections import OrderedDict


class Lru:
    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._items[key] = (value, nbytes)
            self.nbytes += nbytes
            while self._items and (len(self._items) > self.max_entries or self.nbytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0
