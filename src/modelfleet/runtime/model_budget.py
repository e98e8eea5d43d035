"""Which models a multi-model worker keeps loaded: the least recently used go first, by measured bytes.

Pure bookkeeping, no I/O and no clock: the worker says what it loaded (with the bytes it measured
around the load) and what it used, and asks what to evict. The model being loaded or used is never
evicted for itself, so a model larger than the whole budget still serves, alone.
"""

from __future__ import annotations

from collections import OrderedDict


class LruBudget:
    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._loaded: OrderedDict[str, int] = OrderedDict()   # key -> bytes, least recently used first
        self._sizes: dict[str, int] = {}                      # last measured size of each registered key
        self.used = 0                                         # bytes of the loaded models

    def __contains__(self, key: str) -> bool:
        return key in self._loaded

    def __len__(self) -> int:
        return len(self._loaded)

    def loaded(self) -> list[str]:
        """Loaded keys, least recently used first."""
        return list(self._loaded)

    def size(self, key: str) -> int | None:
        """The last measured size of `key` (loaded or not), if it was ever loaded."""
        return self._sizes.get(key)

    def touch(self, key: str) -> None:
        """`key` was just used: it is now the last to be evicted."""
        if key in self._loaded:
            self._loaded.move_to_end(key)

    def make_room(self, key: str, estimate: int) -> list[str]:
        """Before loading `key` (expected to take `estimate` bytes): the models to evict, least
        recently used first, so that it fits; they are no longer counted as loaded."""
        return self._evict_while(lambda: self.used + estimate > self.budget, keep=key)

    def add(self, key: str, size: int) -> list[str]:
        """`key` was loaded and measured at `size` bytes: record it as the most recently used, and
        return the models to evict if it did not fit after all."""
        self.remove(key)
        size = max(0, int(size))
        self._loaded[key] = size
        self._sizes[key] = size
        self.used += size
        return self._evict_while(lambda: self.used > self.budget, keep=key)

    def evict(self, key: str) -> bool:
        """Stop counting `key` as loaded (its size is remembered for the next estimate)."""
        size = self._loaded.pop(key, None)
        if size is None:
            return False
        self.used -= size
        return True

    def remove(self, key: str) -> bool:
        """Forget `key` altogether (unregistered); True when it was loaded."""
        self._sizes.pop(key, None)
        return self.evict(key)

    def _evict_while(self, over, keep: str) -> list[str]:
        out = []
        for victim in list(self._loaded):
            if not over():
                break
            if victim != keep:
                self.evict(victim)
                out.append(victim)
        return out
