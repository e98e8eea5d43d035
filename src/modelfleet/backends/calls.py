"""A replica's current model call as the server sees it, from the replica's heartbeats: how old
it is, how long calls usually take, and when it becomes overdue (far older than usual). Routing
sends an overdue replica nothing new; the supervisor replaces one whose call outlives a request's
timeout (server/control/supervisor.py, spares.py)."""

from __future__ import annotations

import asyncio
import math

HEARD_RECENTLY_S = 0.5  # a heartbeat (or pong) this recent answers a liveness probe without a ping
OVERDUE_FACTOR = 10      # a model call this many times longer than usual is overdue,
OVERDUE_FLOOR_S = 0.2    # and never younger than this (a replica's heartbeats come every 0.25 s)


def overdue_after(usual_s: float) -> float:
    """The age at which a model call is far older than the `usual_s` its replica's calls take."""
    return max(OVERDUE_FLOOR_S, OVERDUE_FACTOR * usual_s)


class CallAge:
    """A replica's current model call as its heartbeats tell it: when it started (on the event
    loop's clock), how long calls usually take, and when this one becomes overdue. An answer
    means the call ended (`idle`) until the next heartbeat says otherwise."""
    __slots__ = ("loop", "since", "usual_s", "overdue_at")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.since: float | None = None
        self.usual_s = 0.0
        self.overdue_at = math.inf

    def heard(self, busy_s: float, usual_s: float) -> None:
        """A heartbeat: its current call has run `busy_s` (0: idle); calls usually take `usual_s`."""
        if usual_s:
            self.usual_s = usual_s
        if busy_s:
            since = self.loop.time() - busy_s   # a heartbeat read late makes the call look younger
            if self.since is None or since < self.since:
                self.since = since              # the earliest estimate (answers end a call: `idle`)
            # before any call has finished nothing is usual: a slow first call (a lazy load) is not overdue
            self.overdue_at = self.since + overdue_after(self.usual_s) if self.usual_s else math.inf
        else:
            self.idle()

    def idle(self) -> None:
        self.since, self.overdue_at = None, math.inf

    @property
    def busy_s(self) -> float:
        return self.loop.time() - self.since if self.since is not None else 0.0
