"""Model versions and uploaded snapshots in the control API: what `fleet.models` and code
snapshots need, so that a client never opens the workspace's files.

    PUT  /api/artifacts/{kind}/{sha256}     a tar of one folder (or file), stored only if it hashes to sha256
    GET  /api/artifacts/{kind}/{sha256}     is it stored (and where, on the server)
    POST /api/artifacts/{kind}              {"path": a datastore URI}: read by the server into a snapshot
    GET  /api/models[?name=&include_archived=]
    POST /api/models/{name}/versions        register a snapshot uploaded before, or a datastore path
    GET|PATCH|DELETE /api/models/{name}/versions/{version}
    PUT  /api/models/{name}/versions/{version}/archived
    GET  /api/models/{name}/versions/{version}/files/{path}   one file, streamed (sha256 in a header)
    POST /api/models/{name}/versions/{version}/verify         every file checked; the snapshot's path
    GET|PUT /api/models/{name}/labels/{label}
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ...datastores import is_datastore_uri
from ...domain.errors import InvalidInput, NotFound, StorageError
from ...domain.names import ModelRef

KINDS = ("models", "code", "data")
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)


SHA256 = Field(pattern=SHA256_PATTERN)


class FileEntry(BaseModel):
    path: str
    size: int = Field(ge=0)
    sha256: str = SHA256


class ModelBody(BaseModel):
    """A snapshot uploaded before (`sha256` and `files`), or a datastore URI (`path`) the server reads."""
    version: str | None = None
    description: str = ""
    tags: dict[str, str | None] = Field(default_factory=dict)
    type: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    files: list[FileEntry] | None = None
    path: str | None = None
    exist_ok: bool = False
    reuse_same_content: bool = False


class DatastorePath(BaseModel):
    path: str


class ModelChanges(BaseModel):
    description: str | None = None
    tags: dict[str, str | None] | None = None
    remove_tags: list[str] | None = None


class Archived(BaseModel):
    archived: bool


class LabelBody(BaseModel):
    version: str


def _check_artifact(kind: str, sha256: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"artifact kind {kind!r}: use {' or '.join(KINDS)}")
    if not _SHA256.match(sha256):
        raise InvalidInput(f"sha256 {sha256[:80]!r}: 64 lowercase hex digits")


def add_routes(app: FastAPI, registry, artifacts, deps: list) -> None:
    @app.get("/api/artifacts/{kind}/{sha256}", dependencies=deps)
    async def artifact(kind: str, sha256: str) -> dict:
        _check_artifact(kind, sha256)
        path = artifacts.snapshot_dir(kind, sha256)
        if not await asyncio.to_thread(path.is_dir):
            raise NotFound(f"artifact {kind}/{sha256} is not in the workspace store")
        return {"kind": kind, "sha256": sha256, "path": str(path)}

    @app.put("/api/artifacts/{kind}/{sha256}", dependencies=deps)
    async def upload(kind: str, sha256: str, request: Request) -> dict:
        """The request body streams to a file under the store's tmp/, then is unpacked and hashed
        in a worker thread: the event loop the gateway shares never waits on the disk for long."""
        _check_artifact(kind, sha256)
        spool = artifacts.tmp / f"upload-{uuid.uuid4().hex}.tar"
        try:
            try:
                await asyncio.to_thread(artifacts.tmp.mkdir, parents=True, exist_ok=True)
                f = await asyncio.to_thread(open, spool, "wb")
                try:
                    async for chunk in request.stream():
                        await asyncio.to_thread(f.write, chunk)
                finally:
                    await asyncio.to_thread(f.close)
            except OSError as e:
                raise StorageError(f"cannot store an upload in {artifacts.root}: {e.strerror or e}") from None
            snap = await asyncio.to_thread(artifacts.receive, kind, sha256, spool)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(spool)
        return {"kind": kind, "sha256": snap.sha256, "size": snap.size, "files": snap.files}

    @app.post("/api/artifacts/{kind}", dependencies=deps)
    async def read_datastore_path(kind: str, body: DatastorePath) -> dict:
        """The files a datastore URI names, read by the server and stored as a snapshot (then in
        the default datastore too): code that lives in a datastore, as Azure's `code:` takes it."""
        if kind not in KINDS:
            raise NotFound(f"artifact kind {kind!r}: use {' or '.join(KINDS)}")
        if not is_datastore_uri(body.path) or registry.datastores is None:
            raise InvalidInput(f"path {body.path!r}: give an azureml://datastores/... or blob storage URI")
        snap = await asyncio.to_thread(registry.datastores.read, body.path, kind)
        root = snap.files[0]["path"].split("/", 1)[0]
        if kind == "code" and any("/" not in f["path"] for f in snap.files):
            raise InvalidInput(f"code {body.path!r}: names a file; give the folder holding the scoring script")
        await asyncio.to_thread(registry.datastores.commit, kind, snap.sha256, snap.files)
        return {"kind": kind, "sha256": snap.sha256, "root": root, "size": snap.size, "files": snap.files}

    @app.get("/api/models", dependencies=deps)
    async def list_models(name: str | None = None, include_archived: bool = False) -> list[dict]:
        return [m.to_dict() for m in await asyncio.to_thread(registry.list, name, include_archived)]

    @app.post("/api/models/{name}/versions", dependencies=deps)
    async def register(name: str, body: ModelBody) -> dict:
        kw = dict(description=body.description, tags=body.tags, type=body.type, exist_ok=body.exist_ok,
                  reuse_same_content=body.reuse_same_content)
        if body.path is not None:
            if not is_datastore_uri(body.path):   # the server reads no path of its own machine for a client
                raise InvalidInput(f"path {body.path!r}: give an azureml://datastores/... or blob storage URI "
                                   f"(local files are uploaded by the client)")
            m = await asyncio.to_thread(registry.register, name, body.path, body.version, **kw)
        elif body.sha256 is None or body.files is None:
            raise InvalidInput("give sha256 and files (an uploaded snapshot) or path (a datastore URI)")
        else:
            m = await asyncio.to_thread(registry.register_snapshot, name, body.version, body.sha256,
                                        [f.model_dump() for f in body.files], **kw)
        return m.to_dict()

    @app.get("/api/models/{name}/versions/{version}", dependencies=deps)
    async def get_version(name: str, version: str) -> dict:
        return (await asyncio.to_thread(registry.get, ModelRef(name, version=version))).to_dict()

    @app.get("/api/models/{name}/labels/{label}", dependencies=deps)
    async def get_labelled(name: str, label: str) -> dict:
        return (await asyncio.to_thread(registry.get, ModelRef(name, label=label))).to_dict()

    @app.patch("/api/models/{name}/versions/{version}", dependencies=deps)
    async def update(name: str, version: str, body: ModelChanges) -> dict:
        return (await asyncio.to_thread(registry.update, name, version, description=body.description,
                                        tags=body.tags, remove_tags=body.remove_tags)).to_dict()

    @app.put("/api/models/{name}/versions/{version}/archived", dependencies=deps)
    async def archive(name: str, version: str, body: Archived) -> dict:
        return (await asyncio.to_thread(registry.set_archived, name, version, body.archived)).to_dict()

    @app.put("/api/models/{name}/labels/{label}", dependencies=deps)
    async def label(name: str, label: str, body: LabelBody) -> dict:
        return (await asyncio.to_thread(registry.label, name, body.version, label)).to_dict()

    @app.delete("/api/models/{name}/versions/{version}", dependencies=deps)
    async def delete(name: str, version: str) -> dict:
        await asyncio.to_thread(registry.delete, name, version)
        return {"deleted": f"{name}:{version}"}

    @app.post("/api/models/{name}/versions/{version}/verify", dependencies=deps)
    async def verify(name: str, version: str) -> dict:
        model = await asyncio.to_thread(registry.get, ModelRef(name, version=version))
        return {"model": model.ref, "path": str(await asyncio.to_thread(registry.path_of, model))}

    @app.get("/api/models/{name}/versions/{version}/files/{path:path}", dependencies=deps)
    async def download(name: str, version: str, path: str) -> FileResponse:
        """One file of a version, as stored; the client checks it against the sha256 it was
        registered with (also sent as a header) before keeping it."""
        model = await asyncio.to_thread(registry.get, ModelRef(name, version=version))
        entry = next((f for f in model.files if f["path"] == path), None)
        if entry is None:
            raise NotFound(f"model {model.ref} has no file {path!r}")
        folder = await asyncio.to_thread(registry.path_of, model, False)
        return FileResponse(folder / entry["path"], media_type="application/octet-stream",
                            headers={"x-sha256": entry["sha256"]})
