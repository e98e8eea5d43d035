"""Datastores: the rows of the `datastores` table (the only SQL for them).

A row keeps a datastore document with its stored secret (an account key or SAS token given
literally) taken out and kept encrypted in `secret`, with the workspace's key (SecretBox), which
lives in a file of its own, not in the database. A secret given as a reference ({env: NAME},
{file: PATH}) is not a secret to modelfleet and stays in the document.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..datastores.documents import DatastoreDocument, join_secret, redacted, split_secret
from ..datastores.secrets import SecretBox
from ..domain.errors import AlreadyExists, NotFound
from .db import Database, utcnow
from .schema import datastores


def _not_found(name: str) -> NotFound:
    return NotFound(f"datastore {name!r} not found; see `fleet datastore list`, or create one with "
                    f"`fleet datastore create -f blob.yml`")


class DatastoreStore:
    def __init__(self, db: Database, box: SecretBox):
        self.db = db
        self.box = box

    def _values(self, doc: DatastoreDocument) -> dict:
        public, secret = split_secret(doc)
        return {"type": doc.type, "spec": public, "secret": self.box.encrypt(secret) if secret is not None else None}

    def create(self, doc: DatastoreDocument) -> dict:
        values = self._values(doc)  # encrypted before the transaction: a key problem changes nothing
        now = utcnow()
        with self.db.write() as conn:
            if conn.execute(sa.select(datastores.c.name).where(datastores.c.name == doc.name)).first():
                raise AlreadyExists(f"datastore {doc.name!r} already exists; change it with `fleet datastore update`")
            conn.execute(datastores.insert().values(name=doc.name, created_at=now, updated_at=now, **values))
        return self.show(doc.name)

    def update(self, doc: DatastoreDocument) -> dict:
        values = self._values(doc)
        with self.db.write() as conn:
            done = conn.execute(datastores.update().where(datastores.c.name == doc.name)
                                .values(updated_at=utcnow(), **values))
            if done.rowcount == 0:
                raise _not_found(doc.name)
        return self.show(doc.name)

    def _row(self, name: str):
        with self.db.read() as conn:
            row = conn.execute(sa.select(datastores).where(datastores.c.name == name)).first()
        if row is None:
            raise _not_found(name)
        return row

    def get(self, name: str) -> DatastoreDocument:
        """The whole document, its secret decrypted: for opening the datastore, never for printing."""
        row = self._row(name)
        return join_secret(row.spec, self.box.decrypt(row.secret) if row.secret is not None else None)

    def _shown(self, row) -> dict:
        doc = join_secret(row.spec, None if row.secret is None else "")  # the secret is not decrypted to show it
        return {**redacted(doc), "created_at": row.created_at, "updated_at": row.updated_at}

    def show(self, name: str) -> dict:
        """The document as `show` prints it: stored secrets redacted."""
        return self._shown(self._row(name))

    def list(self) -> list[dict]:
        with self.db.read() as conn:
            return [self._shown(r) for r in conn.execute(sa.select(datastores).order_by(datastores.c.name))]

    def delete(self, name: str) -> None:
        with self.db.write() as conn:
            if conn.execute(datastores.delete().where(datastores.c.name == name)).rowcount == 0:
                raise _not_found(name)
