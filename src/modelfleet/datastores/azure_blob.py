"""An Azure Blob container as a datastore, through Microsoft's azure-storage-blob.

Blobs live at ``blobs/<sha256>`` in the container. `put` stages the bytes as blocks and commits
the block list only once every block is staged and the whole stream's sha256 is the blob's name,
so a blob is visible complete or not at all. A block's id is its index and the sha256 of the
stream up to its end (the running hash, so no byte is hashed twice): a `put` run again after a
kill finds the blocks already staged (the uncommitted block list) and sends only the others; a
block staged from other bytes has another id and is sent again.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ..domain.errors import DatastoreError, InvalidInput, NotFound
from .base import HashingReader, check_sha256, mismatch
from .staging import staged

BLOCK = 8 << 20          # bytes per staged block and per downloaded range
CONCURRENCY = 4          # blocks in flight; memory held is at most (CONCURRENCY + 1) x BLOCK
PREFIX = "blobs/"


def _read_full(source: BinaryIO, n: int) -> bytes:
    """`n` bytes, or fewer only at the end (a pipe or socket may return short reads)."""
    parts, got = [], 0
    while got < n:
        data = source.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class AzureBlobDatastore:
    def __init__(self, name: str, account_url: str, container: str, *, account_name: str | None = None,
                 account_key: str | None = None, sas_token: str | None = None, retries: int = 2,
                 concurrency: int = CONCURRENCY):
        from azure.storage.blob import ContainerClient, ExponentialRetry
        self.name = name
        self.url = account_url
        self.concurrency = concurrency
        credential = ({"account_name": account_name, "account_key": account_key} if account_key
                      else sas_token or None)
        self.container = ContainerClient(
            account_url, container, credential=credential,
            retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=retries),
            max_single_get_size=BLOCK, max_chunk_get_size=BLOCK, max_block_size=BLOCK,
            connection_timeout=10, read_timeout=120)

    @contextlib.contextmanager
    def _call(self, what: str):
        """Azure's errors as modelfleet's: one line naming the datastore (never the credential)."""
        from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
                                           ServiceRequestError, ServiceResponseError)
        try:
            yield
        except ClientAuthenticationError:
            raise DatastoreError(f"datastore {self.name!r}: {self.url} refused its credentials while trying to "
                                 f"{what} (check credentials.account_key or sas_token)") from None
        except ResourceNotFoundError as e:
            if getattr(e, "error_code", None) == "ContainerNotFound":
                raise DatastoreError(f"datastore {self.name!r}: container {self.container.container_name!r} "
                                     f"not found at {self.url}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as e:
            why = re.sub(r"\?\S*", "?...", str(e).splitlines()[0])[:200]  # a URL's query may hold a SAS token
            raise DatastoreError(f"datastore {self.name!r}: cannot reach {self.url} to {what}: {why}") from None
        except HttpResponseError as e:
            code = getattr(getattr(e, "error_code", None), "value", None) or e.error_code or e.reason
            if e.status_code == 403:
                raise DatastoreError(f"datastore {self.name!r}: {self.url} refused access while trying to "
                                     f"{what} ({code}; check credentials)") from None
            raise DatastoreError(f"datastore {self.name!r}: cannot {what}: {e.status_code} {code}") from None

    def _blob(self, sha256: str):
        return self.container.get_blob_client(PREFIX + check_sha256(sha256))

    def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        with self._call("create its container"), contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def exists(self, sha256: str) -> bool:
        with self._call(f"look up blob {sha256[:12]}"):
            return self._blob(sha256).exists()

    def put(self, sha256: str, source: BinaryIO) -> int:
        from azure.core.exceptions import ResourceNotFoundError
        if self.exists(sha256):
            return 0
        blob = self._blob(sha256)
        with self._call(f"upload blob {sha256[:12]}"):
            try:
                staged_ids = {b.id: b.size for b in blob.get_block_list("uncommitted")[1]}
            except ResourceNotFoundError:
                staged_ids = {}
            reader = HashingReader(source)

            def stage(block_id: str, data: bytes) -> tuple[str, int]:
                if staged_ids.get(block_id) == len(data):
                    return block_id, 0
                blob.stage_block(block_id, data, length=len(data))
                return block_id, len(data)

            ids: list[str] = []
            sent = 0
            inflight: deque = deque()

            def collect() -> None:
                nonlocal sent
                block_id, n = inflight.popleft().result()
                ids.append(block_id)
                sent += n

            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="datastore-put") as pool:
                while data := _read_full(reader, BLOCK):
                    # the stream's sha256 so far names the block: the same bytes up to here, the same id
                    block_id = f"{len(ids) + len(inflight):06d}-{reader.hash.copy().hexdigest()[:40]}"
                    inflight.append(pool.submit(stage, block_id, data))
                    del data  # held by its task only, and freed once staged
                    while len(inflight) >= self.concurrency or (inflight and inflight[0].done()):
                        collect()
                while inflight:
                    collect()
            actual = reader.hash.hexdigest()
            if actual != sha256:  # nothing committed: the staged blocks expire unseen
                raise mismatch(f"datastore {self.name!r}: upload of blob {sha256[:12]}", sha256, actual)
            blob.commit_block_list(ids)
            return sent

    def get(self, sha256: str, dest: Path) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        where = f"datastore {self.name!r}: blob {sha256[:12]}"
        with self._call(f"download blob {sha256[:12]}"):
            try:
                stream = self._blob(sha256).download_blob(max_concurrency=self.concurrency)
            except ResourceNotFoundError:
                raise NotFound(f"{where} not found") from None
            with staged(dest, sha256, where) as out:
                stream.readinto(out)  # ranges in parallel, hashed in order as they complete

    def delete(self, sha256: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        with self._call(f"delete blob {sha256[:12]}"), contextlib.suppress(ResourceNotFoundError):
            self._blob(sha256).delete_blob()

    def read_path(self, path: str, dest: Path) -> list[Path]:
        from azure.core.exceptions import ResourceNotFoundError
        path = path.strip("/")
        if not path or ".." in path.split("/"):
            raise InvalidInput(f"datastore {self.name!r}: path {path!r} must name a file or folder")
        base = path.rsplit("/", 1)[-1]
        written = []
        with self._call(f"read {path!r}"):
            single = self.container.get_blob_client(path)
            names = [path] if single.exists() else [b.name for b in self.container.list_blobs(name_starts_with=path + "/")]
            if not names:
                raise NotFound(f"datastore {self.name!r}: path {path!r} not found in container "
                               f"{self.container.container_name!r}")
            for name in names:
                rel = base if name == path else f"{base}/{name[len(path) + 1:]}"
                if ".." in rel.split("/"):
                    raise InvalidInput(f"datastore {self.name!r}: blob name {name!r} leaves its folder")
                target = Path(dest) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(target, "wb") as out:
                        self.container.get_blob_client(name).download_blob(
                            max_concurrency=self.concurrency).readinto(out)
                except ResourceNotFoundError:
                    raise NotFound(f"datastore {self.name!r}: blob {name!r} vanished while being read") from None
                written.append(target)
        return written

    # Named blobs (not content-addressed): collected data under Azure's layout (collected.py).

    def put_file(self, name: str, path: Path) -> None:
        """Upload the file `path` as blob `name`, replacing one of that name (one call: a blob is
        visible whole or not at all)."""
        with self._call(f"upload {name!r}"), open(path, "rb") as source:
            self.container.upload_blob(name, source, overwrite=True, max_concurrency=self.concurrency)

    def names(self, prefix: str) -> list[str]:
        with self._call(f"list {prefix!r}"):
            return [b.name for b in self.container.list_blobs(name_starts_with=prefix)]

    def get_file(self, name: str, dest: Path) -> None:
        """Blob `name` into the file `dest` (written next to it, renamed into place whole)."""
        from azure.core.exceptions import ResourceNotFoundError
        tmp = dest.with_name(f".{dest.name}.tmp")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._call(f"read {name!r}"), open(tmp, "wb") as out:
                try:
                    self.container.get_blob_client(name).download_blob(max_concurrency=self.concurrency).readinto(out)
                except ResourceNotFoundError:
                    raise NotFound(f"datastore {self.name!r}: blob {name!r} not found") from None
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def delete_name(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        with self._call(f"delete {name!r}"), contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(name)
