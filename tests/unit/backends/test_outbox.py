"""Frames to a replica socket: gathered over one pass of the event loop, sent in one write."""

from __future__ import annotations

import asyncio

from modelfleet.backends.outbox import Outbox


async def one_pass() -> None:
    """Let the event loop run one pass: the outbox's unit of gathering (not a wait for a condition)."""
    await asyncio.sleep(0)


class Transport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def test_frames_of_one_pass_go_out_in_one_write_in_order():
    async def scenario():
        out = Outbox(asyncio.get_running_loop())
        out.transport = t = Transport()
        for frame in (b"a", b"bb", b"c"):
            out.put(frame)
        assert t.writes == []
        await one_pass()
        out.put(b"d")
        await one_pass()
        assert t.writes == [b"abbc", b"d"]
    asyncio.run(scenario())


def test_close_sends_what_is_gathered_first_and_a_closed_socket_takes_nothing():
    async def scenario():
        out = Outbox(asyncio.get_running_loop())
        out.transport = t = Transport()
        out.put(b"last")
        out.close()
        assert t.writes == [b"last"] and t.closing
        out.put(b"late")
        await one_pass()
        assert t.writes == [b"last"]
    asyncio.run(scenario())
