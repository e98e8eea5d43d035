"""The gateway <-> replica wire framing: frames survive any split of the byte stream."""

from __future__ import annotations

from hypothesis import given, strategies as st

from modelfleet.runtime import protocol as p

frames = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 255), st.binary(max_size=300)), max_size=20)


def _stream(items) -> bytes:
    return b"".join(p.frame(rid, kind, payload) for rid, kind, payload in items)


def _read_in_chunks(data: bytes, cuts: list[int]) -> tuple[list, bytearray]:
    """Feed `data` to split_frames as a socket would, in pieces ending at each cut."""
    buf, out, start = bytearray(), [], 0
    for end in [*sorted(cuts), len(data)]:
        buf += data[start:end]
        start = max(start, end)
        out += p.split_frames(buf)
    return out, buf


@given(frames)
def test_round_trip_in_one_buffer(items):
    buf = bytearray(_stream(items))
    assert p.split_frames(buf) == items
    assert buf == b""


@given(frames, st.data())
def test_round_trip_across_any_chunk_boundaries(items, data):
    stream = _stream(items)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    out, rest = _read_in_chunks(stream, cuts)
    assert out == items and rest == b""


def test_one_byte_at_a_time():
    items = [(1, p.SCORE, b'{"data": [[1, 2]]}'), (2, p.PING, b""), (3, p.V2_INFER, b"\x00" * 40)]
    stream = _stream(items)
    out, rest = _read_in_chunks(stream, list(range(len(stream))))
    assert out == items and rest == b""


def test_header_layout():
    assert p.HEADER_SIZE == 9
    assert p.frame(0x01020304, p.OK, b"ab") == b"\x00\x00\x00\x02" + b"\x01\x02\x03\x04" + b"\x00" + b"ab"


def test_a_partial_header_is_kept():
    buf = bytearray(p.frame(7, p.OK, b"payload")[:p.HEADER_SIZE - 1])
    before = bytes(buf)
    assert p.split_frames(buf) == [] and buf == before


def test_a_partial_payload_is_kept():
    whole = p.frame(7, p.OK, b"payload")
    buf = bytearray(whole[:-1])
    assert p.split_frames(buf) == [] and buf == whole[:-1]
    buf += whole[-1:]
    assert p.split_frames(buf) == [(7, p.OK, b"payload")] and buf == b""


def test_complete_frames_are_taken_and_the_partial_tail_kept():
    tail = p.frame(3, p.SCORE, b"third")[:5]
    buf = bytearray(p.frame(1, p.SCORE, b"first") + p.frame(2, p.PING) + tail)
    assert p.split_frames(buf) == [(1, p.SCORE, b"first"), (2, p.PING, b"")]
    assert buf == tail


def test_many_frames_in_one_buffer_keep_their_order():
    items = [(i, p.SCORE if i % 2 else p.V2_INFER, str(i).encode() * (i % 7)) for i in range(1000)]
    buf = bytearray(_stream(items))
    assert p.split_frames(buf) == items and buf == b""


def test_big_payloads():
    big = bytes(range(256)) * (64 * 1024)   # 16 MiB
    buf = bytearray(p.frame(9, p.OK, big) + p.frame(10, p.OK, b"next"))
    assert p.split_frames(buf) == [(9, p.OK, big), (10, p.OK, b"next")]
    # arriving in socket-sized reads, the big frame comes out once, whole
    out, rest = _read_in_chunks(p.frame(9, p.OK, big), list(range(0, len(big), 1 << 20)))
    assert out == [(9, p.OK, big)] and rest == b""


def test_payloads_do_not_alias_the_buffer():
    buf = bytearray(p.frame(1, p.OK, b"abc") + p.frame(2, p.OK, b"de")[:4])
    [(_, _, payload)] = p.split_frames(buf)
    buf[:] = b"x" * len(buf)
    assert payload == b"abc" and isinstance(payload, bytes)


@given(st.binary(max_size=40), st.binary(max_size=300), st.binary(max_size=8))
def test_request_frames_carry_the_request_id(request_id, body, prefix):
    (rid, kind, payload), = p.split_frames(bytearray(p.request_frame(9, p.SCORE, request_id, body, prefix)))
    assert (rid, kind) == (9, p.SCORE)
    given_id, rest = p.split_request(payload)
    assert given_id == request_id.decode("ascii", "replace") and rest == prefix + body
