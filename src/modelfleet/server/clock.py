"""Time as the controller sees it, injected so that tests can drive it (tests/fakes.py)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class Clock:
    """Monotonic seconds, sleeping, and timers on the running event loop."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(seconds, fn)

    async def wait(self, fut: asyncio.Future, seconds: float) -> bool:
        """Whether `fut` is done within `seconds`; it is not cancelled either way."""
        if fut.done():
            return True
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return fut.done()

    async def within(self, aw: Awaitable, seconds: float):
        """The result of `aw`, or asyncio.TimeoutError (and `aw` cancelled) after `seconds`."""
        fut = asyncio.ensure_future(aw)
        if await self.wait(fut, seconds):
            return fut.result()
        fut.cancel()
        raise asyncio.TimeoutError()
