"""A staged file hashes ranges written in any order and is renamed into place only when whole
and matching."""

import hashlib
import os
import random

import pytest

from modelfleet.datastores.staging import staged
from modelfleet.domain.errors import IntegrityError

RANGE = 1 << 16


def test_ranges_written_out_of_order_hash_as_the_whole(tmp_path):
    data = os.urandom(40 * RANGE + 123)
    offsets = list(range(0, len(data), RANGE))
    random.Random(7).shuffle(offsets)
    with staged(tmp_path / "blob", hashlib.sha256(data).hexdigest(), "test") as out:
        for off in offsets:
            out.seek(off)
            out.write(data[off:off + RANGE])
    assert (tmp_path / "blob").read_bytes() == data


def test_a_gap_or_a_mismatch_leaves_nothing(tmp_path):
    data = os.urandom(4 * RANGE)
    with pytest.raises(OSError, match="gap"), staged(tmp_path / "a", hashlib.sha256(data).hexdigest(), "t") as out:
        out.seek(RANGE)
        out.write(data[RANGE:])
    with pytest.raises(IntegrityError, match="t: sha256 mismatch"), staged(tmp_path / "b", "0" * 64, "t") as out:
        out.write(data)
    assert list(tmp_path.iterdir()) == []
