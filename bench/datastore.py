"""Datastore throughput: a 1 GiB model up to and down from Azure Blob storage (Azurite on
127.0.0.1) through modelfleet's datastore, against the azure-storage-blob client alone on the
same emulator, with the same block size and concurrency; then a replica's fetch through the
node cache when the cache is empty and when it already holds the model.

    .venv/bin/python bench/datastore.py [--size-mib 1024] [--runs 3]

modelfleet's upload also hashes every block and the whole stream (sha256) and commits only a
checked blob; its download hashes, fsyncs and renames. The client alone does none of that:
the ratio is what those promises cost.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/azurite.py: one way to run Azurite

from common import machine, median_of, publish, table  # noqa: E402
from modelfleet.datastores import NodeCache, open_datastore, parse_document  # noqa: E402
from modelfleet.datastores.azure_blob import BLOCK, CONCURRENCY  # noqa: E402
from tests.azurite import ACCOUNT, KEY, Azurite, model_file  # noqa: E402

MiB = 1 << 20


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="fleet-bench-ds-") as tmp:
        tmp = Path(tmp)
        azurite = Azurite(tmp / "azurite").start()
        try:
            results = run(azurite, tmp, size, args.runs)
        finally:
            azurite.stop()
    rows = [{"op": op, "fleet": results[f"fleet_{op}"], "sdk": results[f"sdk_{op}"],
             "checked": results[f"checked_{op}"]} for op in ("up", "down")]
    for r in rows:
        r["fleet_mibs"], r["sdk_mibs"] = size / MiB / r["fleet"], size / MiB / r["sdk"]
        r["ratio"], r["ratio_checked"] = r["sdk"] / r["fleet"], r["checked"] / r["fleet"]
        r["op"] = {"up": "upload", "down": "download"}[r["op"]]
    cache_rows = [{"case": "fetch, empty node cache", "ms": results["cold"] * 1000},
                  {"case": "fetch, warm node cache (nothing remote)", "ms": results["warm"] * 1000}]
    md = (f"Datastore: a {args.size_mib} MiB model, Azurite on 127.0.0.1, blocks of {BLOCK // MiB} MiB, "
          f"{CONCURRENCY} in flight, median of {args.runs}\n\n"
          + table(rows, [("op", "operation"), ("fleet", "modelfleet s"), ("fleet_mibs", "modelfleet MiB/s"),
                         ("sdk", "azure-storage-blob s"), ("sdk_mibs", "azure-storage-blob MiB/s"),
                         ("ratio", "modelfleet / client"), ("checked", "client + the same checks s"),
                         ("ratio_checked", "modelfleet / client + checks")])
          + "\n\n" + table(cache_rows, [("case", "replica start"), ("ms", "median ms")]) + "\n")
    publish("datastore", {"machine": machine(), "size_bytes": size, "runs": args.runs, "block": BLOCK,
                          "concurrency": CONCURRENCY, "throughput": rows, "cache": cache_rows,
                          "samples": results["samples"]}, md)


def run(azurite: Azurite, tmp: Path, size: int, runs: int) -> dict:
    from azure.storage.blob import ContainerClient
    store = open_datastore(parse_document(azurite.document()))
    store.ensure_container()
    client = ContainerClient(
        azurite.url, "models", credential={"account_name": ACCOUNT, "account_key": KEY},
        max_single_get_size=BLOCK, max_chunk_get_size=BLOCK, max_block_size=BLOCK, max_single_put_size=BLOCK)
    src = tmp / "model.bin"
    sha = model_file(src, size)
    samples = {k: [] for k in ("fleet_up", "sdk_up", "checked_up", "fleet_down", "sdk_down", "checked_down",
                               "cold", "warm")}
    for i in range(runs):
        store.delete(sha)
        baseline = client.get_blob_client(f"baseline/{i}")
        out = tmp / "down.bin"

        def fleet_up():
            with open(src, "rb") as f:
                samples["fleet_up"].append(timed(lambda: store.put(sha, f)))

        def sdk_up():
            with open(src, "rb") as f:
                samples["sdk_up"].append(timed(lambda: baseline.upload_blob(
                    f, length=size, overwrite=True, max_concurrency=CONCURRENCY)))

        def checked_up():  # what the client alone needs for the same promise: the name first, then the bytes
            def go():
                with open(src, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                    f.seek(0)
                    client.get_blob_client(f"checked/{digest}").upload_blob(
                        f, length=size, overwrite=True, max_concurrency=CONCURRENCY)
            samples["checked_up"].append(timed(go))
            client.get_blob_client(f"checked/{sha}").delete_blob()

        def checked_down():  # the bytes, made durable, then checked (before a rename, not done here)
            def go():
                with open(out, "wb") as f:
                    baseline.download_blob(max_concurrency=CONCURRENCY).readinto(f)
                    f.flush()
                    os.fsync(f.fileno())
                with open(out, "rb") as f:
                    assert hashlib.file_digest(f, "sha256").hexdigest() == sha
            samples["checked_down"].append(timed(go))
            out.unlink()

        def fleet_down():
            samples["fleet_down"].append(timed(lambda: store.get(sha, out)))
            out.unlink()

        def sdk_down():
            with open(out, "wb") as f:
                samples["sdk_down"].append(timed(
                    lambda: baseline.download_blob(max_concurrency=CONCURRENCY).readinto(f)))
            out.unlink()

        # each pair in both orders over the runs, so that a busy moment of the machine or a
        # warming emulator does not always fall on the same side
        order = [(fleet_up, sdk_up, checked_up), (fleet_down, sdk_down, checked_down)]
        for group in order:
            for step in (group if i % 2 == 0 else group[::-1]):
                step()
        baseline.delete_blob()
        cache = NodeCache(tmp / f"cache{i}", max_bytes=4 * size)
        samples["cold"].append(timed(lambda: cache.lease(sha, store).release()))
        samples["warm"].append(timed(lambda: cache.lease(sha, store).release()))
        os.chmod(cache.blobs / sha, 0o644)
        (cache.blobs / sha).unlink()
        print(f"run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()), flush=True)
    store.delete(sha)
    return {**{k: median_of(v) for k, v in samples.items()}, "samples": samples}


if __name__ == "__main__":
    main()
