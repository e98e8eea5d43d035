"""The frames between the server and its collection writer process: a 4-byte length, then a
pickle (both ends are this package, on one machine)."""

from __future__ import annotations

import pickle
from typing import BinaryIO

_LEN = 4


def write_frame(out: BinaryIO, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(_LEN, "big") + data)
    out.flush()


def read_frame(src: BinaryIO):
    """The next object, or None at the end of the stream; EOFError when it ends inside a frame."""
    head = src.read(_LEN)
    if not head:
        return None
    size = int.from_bytes(head, "big") if len(head) == _LEN else -1
    data = src.read(size) if size >= 0 else b""
    if size < 0 or len(data) != size:
        raise EOFError("the stream ended inside a frame")
    return pickle.loads(data)
