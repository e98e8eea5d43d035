"""Which server of a workspace runs the controller: a lease in the database (store/leases.py).

Every server asks for the lease (and heartbeats) every quarter of its duration. The one that
holds it leads: its controller acts, and every write it makes carries the lease's epoch, which
the store checks. A leader counts its lease from the moment it *sent* the renewal, on its own
monotonic clock, so its idea of the end is never later than the database's; when that end comes
without a renewal (the database unreachable, the process paused), it stops acting at once, before
any other server can take the lease. The others follow: they serve the API and the gateway from
the rows, and take the lease when it lapses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ...store.leases import Fence, LeaseStore
from .clock import Clock

log = logging.getLogger("modelfleet.leadership")

# A renewal must be answered within this share of the lease, else it counts as failed.
RENEW_TIMEOUT_SHARE = 0.25


class Leadership:
    def __init__(self, store: LeaseStore, server_id: str, duration_s: float, clock: Clock,
                 lead: Callable[[Fence], Awaitable[None]], follow: Callable[[str], Awaitable[None]]):
        self._store, self.server_id, self.duration_s, self._clock = store, server_id, duration_s, clock
        self._lead, self._follow = lead, follow
        self.fence: Fence | None = None       # set while this server leads
        self.valid_until = 0.0                # this server's clock: when its lease may have ended
        self._claiming: asyncio.Future | None = None   # a renewal still on its way (a hung database)
        self._taking: asyncio.Task | None = None       # the controller taking the lead (adopting)
        self._task: asyncio.Task | None = None

    @property
    def leading(self) -> bool:
        return self.fence is not None

    @property
    def interval_s(self) -> float:
        return self.duration_s / 4

    async def start(self) -> None:
        """The first look, so that a lone server leads before it answers its first request."""
        await self.tick()
        if self._taking is not None:
            await self._taking
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            wake = self._clock.now() + self.interval_s
            if self.leading:
                wake = min(wake, self.valid_until)
            await self._clock.sleep(max(0.0, wake - self._clock.now()))
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:   # never let the lease loop die: a leader without it would act forever
                log.exception("the lease loop failed; trying again")

    async def tick(self) -> None:
        """Ask for the lease once; lead, keep leading, or stop leading."""
        if self.leading and self._clock.now() >= self.valid_until:
            await self._stop_leading("its lease ran out before it could renew it")
        if self._claiming is not None and not self._claiming.done():
            return   # the last renewal still hangs: do not pile up threads on a dead connection
        sent = self._clock.now()
        self._claiming = claiming = asyncio.ensure_future(asyncio.to_thread(self._store.claim, self.server_id,
                                                                            self.duration_s))
        claiming.add_done_callback(lambda f: f.cancelled() or f.exception())   # a late failure is no news
        try:
            if not await self._clock.wait(claiming, self.duration_s * RENEW_TIMEOUT_SHARE):
                raise asyncio.TimeoutError()
            lease = claiming.result()
        except Exception as e:
            why = "no answer from the database" if isinstance(e, asyncio.TimeoutError) else \
                getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            log.warning("could not renew the controller lease: %s", why)
            if self.leading and self._clock.now() >= self.valid_until:
                await self._stop_leading(f"its lease ran out ({why})")
            return
        if lease is None:
            if self.leading:
                await self._stop_leading("another server holds the lease")
            return
        self.valid_until = sent + self.duration_s - min(1.0, self.duration_s * 0.1)   # a margin for clock rates
        if self.fence is None or self.fence.epoch != lease.epoch:
            if self.fence is not None:   # lapsed and taken again: a new term, acted on afresh
                await self._stop_leading("its lease lapsed")
            self.fence = Fence(lease.epoch)
            log.info("this server leads (controller lease epoch %d, %.1f s)", lease.epoch, self.duration_s)
            # its own task: taking the lead waits for a pass under way, and renewals must go on meanwhile
            self._taking = asyncio.ensure_future(self._lead(self.fence))

    async def _stop_leading(self, why: str) -> None:
        if self.fence is None:
            return
        log.warning("this server stops running the controller (epoch %d): %s", self.fence.epoch, why)
        self.fence = None
        if self._taking is not None and not self._taking.done():
            self._taking.cancel()
            await asyncio.gather(self._taking, return_exceptions=True)
        await self._follow(why)

    async def stop(self) -> None:
        """At a clean stop: let the lease go now, so that another server need not wait for it."""
        for task in (self._task, self._taking):
            if task is not None:
                task.cancel()
        self.fence = None
        try:
            await asyncio.wait_for(asyncio.to_thread(self._store.release, self.server_id), 5.0)
        except Exception as e:
            log.warning("could not release the controller lease: %s", getattr(e, "message", e))
