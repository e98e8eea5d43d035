"""The collection writer process: `python -m modelfleet.collection.writer ROOT`.

The server (writer_client.py) sends it, once a flush, one frame holding every deployment's
collected entries; it turns them into rows, writes Parquet under ROOT (sink.write_entries), prunes
windows past their retention, and answers with what it wrote and dropped. Bodies -> rows ->
Parquet runs here, not under the gateway's GIL. It ends when the server says stop or closes the
pipe (the server is gone).

`python -m modelfleet.datastores.collected ROOT` runs this same loop with an `uploader`: each file
written is also put in the workspace's default datastore (a blob container) once its window has
closed or the writer stops, from a thread of the writer (datastores/collected.py); the frame
carries that datastore.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from .frames import read_frame, write_frame
from .payload import convert
from .sink import PRUNE_EVERY_S, Sink, prune, write_entries

log = logging.getLogger("modelfleet.monitoring")


def serve(root: Path, src, out, uploader=None) -> int:
    sinks: dict[tuple[str, str], Sink] = {}
    pruned = time.monotonic()
    while True:
        batch = read_frame(src)
        if batch is None:
            return 0
        if uploader is not None:
            uploader.configure(batch.get("datastore"))
        answer = []
        for i, (endpoint, deployment, rolling_rate, retention_days, entries) in enumerate(batch["sinks"]):
            sink = sinks.get((endpoint, deployment))
            if sink is None:
                sink = sinks[(endpoint, deployment)] = Sink(root, endpoint, deployment, convert)
            sink.rolling_rate, sink.retention_days = rolling_rate, retention_days
            written = write_entries(sink, entries, f"{batch['tag']}-{i}", pause_s=0)
            if uploader is not None:
                uploader.written(written.files)
            answer.append((dict(written.rows), dict(written.dropped), written.failure))
        if time.monotonic() - pruned > PRUNE_EVERY_S:
            pruned = time.monotonic()
            for sink in sinks.values():
                prune(sink)
                if uploader is not None:
                    uploader.prune(sink.endpoint, sink.deployment, sink.retention_days)
        write_frame(out, {"seq": batch["seq"], "sinks": answer,
                          "uploads": uploader.counts() if uploader is not None else []})
        if batch.get("stop"):
            return 0


def main(argv: list[str] | None = None, uploader=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="collection writer: %(message)s")
    import pyarrow.parquet  # noqa: F401  (now, not in the first batch: the queues fill meanwhile)
    # the uploader's thread is a daemon: an upload cut short is done again by the next writer
    uploads = uploader(Path(argv[0])) if uploader else None
    try:
        return serve(Path(argv[0]), sys.stdin.buffer, sys.stdout.buffer, uploads)
    except (BrokenPipeError, KeyboardInterrupt):   # the server is gone or stopping
        return 0
    finally:
        if uploads is not None:   # stopping: every file written goes up, windows open or not
            uploads.finish()


if __name__ == "__main__":
    sys.exit(main())
