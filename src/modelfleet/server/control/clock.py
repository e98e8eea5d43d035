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

    def call_later(self, seconds: float, fn: Callable[[], None]) -> asyncio.TimerHandle | None:
        """Call `fn` after `seconds`; the handle cancels it (None: it cannot be cancelled)."""
        return asyncio.get_running_loop().call_later(seconds, fn)

    async def wait(self, fut: asyncio.Future, seconds: float) -> bool:
        """Whether `fut` is done within `seconds`; it is not cancelled either way. One future and
        one timer, not a task: every serving replica's supervisor waits here four times a second."""
        if fut.done():
            return True
        waiter = asyncio.get_running_loop().create_future()

        def wake(_=None) -> None:
            if not waiter.done():
                waiter.set_result(None)
        fut.add_done_callback(wake)
        timer = self.call_later(seconds, wake)
        try:
            await waiter
        finally:
            fut.remove_done_callback(wake)
            if timer is not None:
                timer.cancel()
        return fut.done()

    async def within(self, aw: Awaitable, seconds: float):
        """The result of `aw`, or asyncio.TimeoutError (and `aw` cancelled) after `seconds`."""
        fut = asyncio.ensure_future(aw)
        if await self.wait(fut, seconds):
            return fut.result()
        fut.cancel()
        raise asyncio.TimeoutError()
