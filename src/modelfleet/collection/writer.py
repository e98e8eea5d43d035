"""The collection writer process: `python -m modelfleet.collection.writer ROOT`.

The server (writer_client.py) sends it, once a flush, one frame holding every deployment's
collected entries, packed (payload.PayloadSink.pack); it turns them into columns and writes
Parquet under ROOT (columns.write_packed), prunes windows past their retention, and answers with
what it wrote and dropped. Bodies -> columns -> Parquet runs here, not under the gateway's GIL. It ends when the server says stop or closes the
pipe (the server is gone).

`python -m modelfleet.datastores.collected ROOT` runs this same loop with an `uploader`: each file
written is also put in the workspace's default datastore (a blob container) once its window has
closed or the writer stops, from a thread of the writer (datastores/collected.py); the frame
carries that datastore.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path

from .columns import write_packed
from .frames import read_frame, write_frame
from .payload import PayloadSink
from .sink import PRUNE_EVERY_S, prune

log = logging.getLogger("modelfleet.monitoring")

WRITER_NICENESS = 10


def serve(root: Path, src, out, uploader=None) -> int:
    sinks: dict[tuple[str, str], PayloadSink] = {}
    pruned = time.monotonic()
    while True:
        batch = read_frame(src)
        if batch is None:
            return 0
        if uploader is not None:
            uploader.configure(batch.get("datastore"))
        gc.disable()   # a batch's parsed documents are all freed by counting: walking them would double its cost
        try:
            answer = [write(sinks, root, i, sink, batch["tag"], uploader) for i, sink in enumerate(batch["sinks"])]
        finally:
            gc.enable()
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


def write(sinks: dict, root: Path, i: int, frame_sink: tuple, tag: str, uploader) -> tuple:
    endpoint, deployment, rolling_rate, retention_days, packed = frame_sink
    sink = sinks.get((endpoint, deployment))
    if sink is None:
        sink = sinks[(endpoint, deployment)] = PayloadSink(root, endpoint, deployment)
    sink.rolling_rate, sink.retention_days = rolling_rate, retention_days
    written = write_packed(sink, packed, f"{tag}-{i}")
    if uploader is not None:
        uploader.written(written.files)
    return dict(written.rows), dict(written.dropped), written.failure


def main(argv: list[str] | None = None, uploader=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="collection writer: %(message)s")
    # Background work: when the cores are busy, the server and the replicas answering requests
    # go first, and a second's batch is written in the gaps (its queue bounds what waits).
    os.nice(WRITER_NICENESS)
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
