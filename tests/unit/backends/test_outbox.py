"""Frames to a replica socket: gathered over one pass of the event loop, sent in one write."""

from __future__ import annotations

from modelfleet.backends.outbox import Outbox


class Loop:
    """The event loop as the outbox uses it: `call_soon` callbacks run when the test ends a pass."""

    def __init__(self):
        self.soon: list = []

    def call_soon(self, callback, *args) -> None:
        self.soon.append((callback, args))

    def end_pass(self) -> None:
        ready, self.soon = self.soon, []
        for callback, args in ready:
            callback(*args)


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
    loop = Loop()
    out = Outbox(loop)
    out.transport = t = Transport()
    for frame in (b"a", b"bb", b"c"):
        out.put(frame)
    assert t.writes == []
    loop.end_pass()
    out.put(b"d")
    loop.end_pass()
    assert t.writes == [b"abbc", b"d"]


def test_close_sends_what_is_gathered_first_and_a_closed_socket_takes_nothing():
    loop = Loop()
    out = Outbox(loop)
    out.transport = t = Transport()
    out.put(b"last")
    out.close()
    assert t.writes == [b"last"] and t.closing
    out.put(b"late")
    loop.end_pass()
    assert t.writes == [b"last"]
