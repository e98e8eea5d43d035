"""Failed token attempts per client address: a token bucket, so a burst of mistakes passes and
guessing does not.

Each address may fail `per_minute` times at once, then once every 60/`per_minute` seconds.
While an address has no attempt left, every request from it is refused (429 with Retry-After),
a valid token included: otherwise a guess that hit would still tell itself apart.
"""

from __future__ import annotations

import math
import time
from typing import Callable

MAX_ADDRESSES = 10_000   # beyond this, addresses whose bucket is full again are forgotten


class FailedAttempts:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.burst = float(per_minute)
        self.rate = per_minute / 60.0   # attempts given back per second
        self.clock = clock
        self._left: dict[str, tuple[float, float]] = {}   # address -> (attempts left, at)

    def _now_left(self, address: str) -> float:
        left, at = self._left.get(address, (self.burst, 0.0))
        return min(self.burst, left + (self.clock() - at) * self.rate)

    def retry_after(self, address: str) -> int:
        """0 when `address` may try; else the whole seconds until it may try again."""
        left = self._now_left(address)
        return 0 if left >= 1.0 else max(1, math.ceil((1.0 - left) / self.rate))

    def failed(self, address: str) -> None:
        self._left[address] = (self._now_left(address) - 1.0, self.clock())
        if len(self._left) > MAX_ADDRESSES:
            for a in [a for a in self._left if self._now_left(a) >= self.burst]:
                del self._left[a]
