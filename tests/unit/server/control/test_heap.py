"""The server's heap policy: frozen after a pass that read rows, everything collected rarely."""

from __future__ import annotations

import gc
import weakref

from modelfleet.server.control import heap
from modelfleet.server.control.heap import HeapKeeper


class Node:
    pass


def test_what_survives_a_fresh_pass_is_frozen_and_a_full_collection_frees_frozen_cycles(monkeypatch):
    gc.unfreeze()
    keeper = HeapKeeper()
    try:
        keeper.after_pass(False)                      # nothing read: nothing to freeze
        assert gc.get_freeze_count() == 0
        node = Node()
        node.me = node                                # a cycle, alive when frozen
        ref = weakref.ref(node)
        keeper.after_pass(True)
        assert gc.get_freeze_count() > 0
        del node                                      # garbage now, but out of the collector's sight
        gc.collect()
        assert ref() is not None
        monkeypatch.setattr(heap, "FULL_COLLECTION_EVERY_S", 0.0)
        keeper.after_pass(False)                      # the rare full collection over everything
        assert ref() is None
    finally:
        gc.unfreeze()
