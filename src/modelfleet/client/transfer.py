"""Files to and from the server: a folder uploaded as a tar stream named by its sha256 (the server
keeps it only if it hashes the same), and a model's files downloaded one by one, each checked
against its sha256 before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import uuid
from pathlib import Path
from typing import Iterator

from ..files.digests import CHUNK, content_digest, walk
from ..domain.errors import IntegrityError, InvalidInput, NotFound, StorageError

BLOCK = tarfile.BLOCKSIZE
URI_SCHEMES = ("azureml://", "https://", "http://", "wasbs://", "wasb://", "abfss://")   # read by the server


def is_uri(path: str | Path) -> bool:
    """A datastore URI, which the server reads; anything else is a local path the client uploads."""
    return isinstance(path, str) and path.lower().startswith(URI_SCHEMES)


def tar_stream(src: Path) -> Iterator[bytes]:
    """`src` (a file or a folder) as an uncompressed tar, chunk by chunk: the upload is never
    held in memory or written to disk first."""
    for path, rel in walk(src):
        info = tarfile.TarInfo(rel)
        info.size = path.stat().st_size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                sent += len(chunk)
                yield chunk
        if sent != info.size:
            raise InvalidInput(f"{path} changed while it was uploaded")
        if sent % BLOCK:
            yield b"\0" * (BLOCK - sent % BLOCK)
    yield b"\0" * (2 * BLOCK)


def upload(conn, kind: str, src: str | Path) -> tuple[str, list[dict]]:
    """Send `src` to the server's artifact store unless it holds that content already; its
    (sha256, files) as `content_digest` gives them."""
    src = Path(src).expanduser()
    sha256, files = content_digest(src)
    try:
        conn.request("GET", f"/api/artifacts/{kind}/{sha256}")
    except NotFound:
        conn.request("PUT", f"/api/artifacts/{kind}/{sha256}", content=tar_stream(src),
                     headers={"content-type": "application/x-tar"}, timeout=None)
    return sha256, files


def download(conn, model: dict, dest: Path) -> Path:
    """Every file of `model` (a model's dict) under `dest`, each checked against its sha256."""
    for f in model["files"]:
        target = dest / f["path"]
        if Path(f["path"]).is_absolute() or ".." in Path(f["path"]).parts:
            raise IntegrityError(f"model {model['name']}:{model['version']}: file path {f['path']!r} leaves the folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            h = hashlib.sha256()
            try:
                with conn.stream("GET", f"/api/models/{model['name']}/versions/{model['version']}/files/{f['path']}",
                                 timeout=None) as r, open(tmp, "wb") as out:
                    for chunk in r.iter_bytes(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != f["sha256"]:
                    raise IntegrityError(f"sha256 mismatch for {f['path']} of {model['name']}:{model['version']}: "
                                         f"expected {f['sha256'][:12]}, received {h.hexdigest()[:12]}")
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as e:
            raise StorageError(f"cannot write {target}: {e.strerror or e}") from e
    return dest
