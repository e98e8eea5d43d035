"""The datastore interface: all that callers see of where a workspace's bytes live.

A datastore holds content-addressed blobs, each named by the sha256 of its bytes, and can read
any path a user points at (`azureml://datastores/<ds>/paths/<p>`). An implementation (the
local folder, an Azure Blob container; S3 later) keeps three promises:

- `put` streams (never holds a whole blob in memory), checks the bytes against the sha256
  they are named by, and makes the blob visible only when complete and correct;
- `get` streams into a file next to `dest`, checks the sha256, and renames it into place only
  when it matches: a mismatch raises IntegrityError and leaves nothing behind;
- an unreachable store or refused credentials are a DatastoreError naming the datastore.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from ..domain.errors import IntegrityError, InvalidInput

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise InvalidInput(f"blob name {sha256!r} is not a sha256 (64 lowercase hex digits)")
    return sha256


def mismatch(where: str, expected: str, actual: str) -> IntegrityError:
    return IntegrityError(f"{where}: sha256 mismatch, expected {expected[:12]}, found {actual[:12]} "
                          f"(the bytes were changed or damaged; refused)")


@runtime_checkable
class Datastore(Protocol):
    name: str

    def put(self, sha256: str, source: BinaryIO) -> int:
        """Store the bytes read from `source` as blob `sha256`; the bytes sent (0 when it was
        stored already, fewer than its size when an interrupted put is resumed)."""

    def get(self, sha256: str, dest: Path) -> None:
        """Write blob `sha256` to the file `dest`, checked (NotFound when it is absent)."""

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove blob `sha256` (a no-op when it is absent)."""

    def read_path(self, path: str, dest: Path) -> list[Path]:
        """Copy the file or folder at `path` (relative to the datastore) into the folder `dest`,
        keeping its last name as Azure ML does; the files written."""


class HashingReader:
    """Reads `source` in blocks while hashing what went by (so a stream is hashed once, as sent)."""

    def __init__(self, source: BinaryIO):
        self.source = source
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data
