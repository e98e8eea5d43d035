"""A separate process using a datastore, for tests that kill one or run several at once.

    python tests/datastore_child.py put DOC_JSON FILE SHA256 [HALF]   # prints "half" after HALF bytes read
    python tests/datastore_child.py get DOC_JSON FILE SHA256
    python tests/datastore_child.py lease DOC_JSON CACHE_DIR SHA256    # prints the lease as JSON

`put` and `get` end by printing {"sent", "peak_rss"}: the bytes sent (put) and the process's peak
resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from modelfleet.datastores import NodeCache, open_datastore, parse_document


class Announcing:
    """A file that says "half" on stdout once `half` bytes were read from it."""

    def __init__(self, f, half: int):
        self.f, self.half, self.read_bytes = f, half, 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        before, self.read_bytes = self.read_bytes, self.read_bytes + len(data)
        if before < self.half <= self.read_bytes:
            print("half", flush=True)
        return data


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    verb, doc = sys.argv[1], parse_document(json.loads(sys.argv[2]))
    store = open_datastore(doc)
    if verb == "put":
        with open(sys.argv[3], "rb") as f:
            source = Announcing(f, int(sys.argv[5])) if len(sys.argv) > 5 else f
            sent = store.put(sys.argv[4], source)
        print(json.dumps({"sent": sent, "peak_rss": peak_rss()}), flush=True)
    elif verb == "get":
        store.get(sys.argv[4], Path(sys.argv[3]))
        print(json.dumps({"sent": 0, "peak_rss": peak_rss()}), flush=True)
    elif verb == "lease":
        cache = NodeCache(Path(sys.argv[3]), max_bytes=1 << 30)
        with cache.lease(sys.argv[4], store) as lease:
            print(json.dumps({"fetched": lease.fetched, "path": str(lease.path)}), flush=True)


if __name__ == "__main__":
    main()
