"""The server's long-lived objects kept out of the cyclic garbage collector's walks.

At a thousand deployments the server holds a few hundred thousand long-lived objects (rows,
specs, snapshots, replica handles, supervisor tasks). CPython's full collection walks all of
them with the event loop stopped: ~150 ms at 1,000 deployments, and while rows kept changing one
came every second. So after each reconcile pass that read the rows, young garbage is collected
and what survives is frozen (`gc.freeze`): later collections walk only what came after. Cycles
that become garbage once frozen are freed by a full collection over everything, which runs
rarely.
"""

from __future__ import annotations

import gc
import time

FULL_COLLECTION_EVERY_S = 600.0


class HeapKeeper:
    def __init__(self):
        self._last_full = time.monotonic()

    def after_pass(self, fresh: bool) -> None:
        """After a reconcile pass; `fresh`: it read the rows again (the long-lived state changed)."""
        now = time.monotonic()
        if now - self._last_full >= FULL_COLLECTION_EVERY_S:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full = now
        elif fresh:
            gc.collect(1)
            gc.freeze()
