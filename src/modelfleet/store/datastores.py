"""Datastores: the rows of the `datastores` table (the only SQL for them).

A row keeps a datastore document with its stored secret (an account key or SAS token given
literally) taken out and kept encrypted in `secret`, with the workspace's key (SecretBox), which
lives in a file of its own, not in the database. A secret given as a reference ({env: NAME},
{file: PATH}) is not a secret to modelfleet and stays in the document.

One datastore may be the workspace's default (`is_default`, Azure's word, kept beside the
document in the row's spec): model and code uploads go to it. None is: the local folder is.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..datastores.documents import LOCAL_NAME, DatastoreDocument, join_secret, redacted, split_secret
from ..datastores.secrets import SecretBox
from ..domain.errors import AlreadyExists, Conflict, NotFound
from .db import Database, utcnow
from .schema import datastores


IS_DEFAULT = "is_default"


def _document(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != IS_DEFAULT}


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

    def create(self, doc: DatastoreDocument, default: bool = False) -> dict:
        values = self._values(doc)  # encrypted before the transaction: a key problem changes nothing
        now = utcnow()
        with self.db.write() as conn:
            if conn.execute(sa.select(datastores.c.name).where(datastores.c.name == doc.name)).first():
                raise AlreadyExists(f"datastore {doc.name!r} already exists; change it with `fleet datastore update`")
            conn.execute(datastores.insert().values(name=doc.name, created_at=now, updated_at=now, **values))
            if default:
                self._make_default(conn, doc.name)
        return self.show(doc.name)

    def update(self, doc: DatastoreDocument, default: bool = False) -> dict:
        values = self._values(doc)
        with self.db.write() as conn:
            row = conn.execute(sa.select(datastores.c.spec).where(datastores.c.name == doc.name)).first()
            if row is None:
                raise _not_found(doc.name)
            values["spec"] = {**values["spec"], IS_DEFAULT: bool(row.spec.get(IS_DEFAULT))}  # an update keeps it
            conn.execute(datastores.update().where(datastores.c.name == doc.name).values(updated_at=utcnow(), **values))
            if default:
                self._make_default(conn, doc.name)
        return self.show(doc.name)

    def set_default(self, name: str | None) -> None:
        """Make `name` the workspace's default datastore; None: the local folder again."""
        with self.db.write() as conn:
            self._make_default(conn, name)

    @staticmethod
    def _make_default(conn, name: str | None) -> None:
        rows = conn.execute(sa.select(datastores.c.name, datastores.c.spec)).all()
        if name is not None and name not in {r.name for r in rows}:
            raise _not_found(name)
        for r in rows:
            if bool(r.spec.get(IS_DEFAULT)) != (r.name == name):
                conn.execute(datastores.update().where(datastores.c.name == r.name)
                             .values(spec={**r.spec, IS_DEFAULT: r.name == name}))

    def default(self) -> DatastoreDocument | None:
        """The default datastore's whole document (its secret decrypted), or None: the local folder."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(datastores.c.name, datastores.c.spec)).all()
        name = next((r.name for r in rows if r.spec.get(IS_DEFAULT)), None)
        return None if name is None else self.get(name)

    def find(self, account: str, container: str) -> str | None:
        """The datastore registered for a blob account and container (an account URL's), or None."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(datastores.c.name, datastores.c.spec).order_by(datastores.c.name)).all()
        return next((r.name for r in rows if r.spec.get("account_name") == account
                     and r.spec.get("container_name") == container), None)

    def _row(self, name: str):
        with self.db.read() as conn:
            row = conn.execute(sa.select(datastores).where(datastores.c.name == name)).first()
        if row is None:
            raise _not_found(name)
        return row

    def get(self, name: str) -> DatastoreDocument:
        """The whole document, its secret decrypted: for opening the datastore, never for printing."""
        row = self._row(name)
        return join_secret(_document(row.spec), self.box.decrypt(row.secret) if row.secret is not None else None)

    def _shown(self, row) -> dict:
        doc = join_secret(_document(row.spec), None if row.secret is None else "")  # shown without decrypting
        return {**redacted(doc), "is_default": bool(row.spec.get(IS_DEFAULT)), "created_at": row.created_at,
                "updated_at": row.updated_at}

    def show(self, name: str) -> dict:
        """The document as `show` prints it: stored secrets redacted."""
        return self._shown(self._row(name))

    def list(self) -> list[dict]:
        with self.db.read() as conn:
            return [self._shown(r) for r in conn.execute(sa.select(datastores).order_by(datastores.c.name))]

    def delete(self, name: str) -> None:
        """Remove a datastore; refused for the default (its blobs hold the workspace's uploads)."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(datastores.c.spec).where(datastores.c.name == name)).first()
            if row is None:
                raise _not_found(name)
            if row.spec.get(IS_DEFAULT):
                raise Conflict(f"datastore {name!r} is the workspace's default: make another the default first "
                               f"(`fleet datastore set-default --name {LOCAL_NAME}` for the local folder)")
            conn.execute(datastores.delete().where(datastores.c.name == name))
