"""Datastore documents: Azure ML's datastore YAML for `type: azure_blob`, plus modelfleet's
`account_url` (an emulator's or private endpoint's URL, overriding the account's).

    name: models_store
    type: azure_blob
    account_name: mystorageaccount
    container_name: models
    endpoint: core.windows.net        # default
    protocol: https                   # or wasbs
    credentials:                      # one of these, or none for anonymous (public) access
      account_key: <the key>          # stored encrypted; or {env: NAME} / {file: PATH}
      sas_token: <a SAS token>

Secrets are pydantic SecretStr: a document's repr, model_dump and `redacted` never show them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ..domain.errors import InvalidInput, SpecError

PATTERNS = {  # field: (Azure's rule for it, what to say when a value breaks it)
    "name": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,254}$"),
             "must start with a letter or digit and hold only letters, digits and underscores"),
    "account_name": (re.compile(r"^[a-z0-9]{3,24}$"),
                     "must be 3 to 24 lowercase letters and digits (Azure's storage account names)"),
    "container_name": (re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"),
                       "must be 3 to 63 lowercase letters, digits and single hyphens (Azure's container names)"),
    "endpoint": (re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}$"), "must be a DNS suffix such as core.windows.net"),
}
REDACTED = "<redacted>"
LOCAL_NAME = "workspaceartifactstore"   # the workspace's own folder, by Azure's name for a workspace's store
FIELD = re.compile(r"^(\$schema|[A-Za-z_][A-Za-z0-9_]*|\d+)$")


class Choice(BaseModel):
    """Two fields of which one may be given (`required`: one must be)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    choices: ClassVar[tuple[str, str]]
    required: ClassVar[bool]

    @model_validator(mode="after")
    def _one_of(self):
        given = [f for f in self.choices if getattr(self, f) is not None]
        if len(given) > 1 or (self.required and not given):
            a, b = self.choices
            raise ValueError(f"give exactly one of {a} or {b}" if self.required else f"give {a} or {b}, not both")
        return self


class SecretRef(Choice):
    """A secret kept outside modelfleet: read from the environment or a file when used."""
    choices, required = ("env", "file"), True
    env: str | None = None
    file: str | None = None

    def resolve(self, field: str) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise InvalidInput(f"{field}: environment variable {self.env} is not set")
            return value
        try:
            return Path(self.file).expanduser().read_text().strip()
        except OSError as e:
            raise InvalidInput(f"{field}: cannot read {self.file}: {e.strerror or e}") from None


Secret = SecretStr | SecretRef


class Credentials(Choice):
    choices, required = ("account_key", "sas_token"), False
    account_key: Secret | None = None
    sas_token: Secret | None = None

    @property
    def kind(self) -> str:
        return "account_key" if self.account_key else "sas_token" if self.sas_token else "none"

    def secret(self) -> str | None:
        """The credential's value (a reference resolved), or None for anonymous access."""
        value = self.account_key or self.sas_token
        if value is None:
            return None
        field = f"credentials.{self.kind}"
        return value.resolve(field) if isinstance(value, SecretRef) else value.get_secret_value()


class DatastoreDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    type: Literal["azure_blob"]
    description: str = ""
    tags: dict[str, str] = {}
    account_name: str
    container_name: str
    endpoint: str = "core.windows.net"
    protocol: Literal["https", "wasbs"] = "https"
    credentials: Credentials = Credentials()
    account_url: str | None = None  # modelfleet's own: overrides https://<account>.blob.<endpoint>

    @field_validator("name", "account_name", "container_name", "endpoint")
    @classmethod
    def _pattern(cls, v: str, info) -> str:
        pattern, rule = PATTERNS[info.field_name]
        if not pattern.match(v):
            raise ValueError(rule)
        return v

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", v):
            raise ValueError("must be an http:// or https:// URL without query or fragment")
        return v.rstrip("/") if v else v

    @property
    def url(self) -> str:
        """The blob service's URL: `account_url` when given, else the account's."""
        return self.account_url or f"https://{self.account_name}.blob.{self.endpoint}"


def parse_document(data: Any, where: str = "datastore") -> DatastoreDocument:
    """A validated document; the first problem is one SpecError naming its field."""
    try:
        if isinstance(data, dict):
            return DatastoreDocument.model_validate(data)
        problem = f"expected a mapping of fields, got {type(data).__name__}"
    except ValidationError as e:
        problem = _first_problem(e)
    raise SpecError(f"{where}: {problem}")


def _first_problem(e: ValidationError) -> str:
    # a secret is tried as each alternative (a string, a reference): prefer the error that says
    # what is wrong with what was given, and name only the field
    errors = e.errors()
    err = next((x for x in errors if x["type"] == "value_error"), errors[0])
    field = ".".join(str(p) for p in err["loc"] if FIELD.match(str(p)))
    msg = err["msg"].removeprefix("Value error, ")
    if field.endswith(("account_key", "sas_token")) and err["type"] != "value_error":
        msg = "must be a string, or a reference {env: NAME} or {file: PATH}"
    return f"{field}: {msg}" if field else msg


def redacted(doc: DatastoreDocument) -> dict:
    """What `show` prints: the document with each stored secret replaced by a marker (a
    reference is not a secret and is shown as it is)."""
    out = doc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"schema_"})
    creds = {}
    for field in ("account_key", "sas_token"):
        value = getattr(doc.credentials, field)
        if isinstance(value, SecretRef):
            creds[field] = value.model_dump(exclude_none=True)
        elif value is not None:
            creds[field] = REDACTED
    out["credentials"] = creds
    return out


def split_secret(doc: DatastoreDocument) -> tuple[dict, str | None]:
    """(the document with stored secrets left out, the stored secret's plain value or None): what
    the store keeps in the clear and what it encrypts."""
    public = redacted(doc)
    value = doc.credentials.account_key or doc.credentials.sas_token
    if isinstance(value, SecretStr):
        public["credentials"] = {doc.credentials.kind: {"stored": True}}
        return public, value.get_secret_value()
    return public, None


def join_secret(public: dict, secret: str | None) -> DatastoreDocument:
    """The document `split_secret` took apart."""
    data = dict(public)
    creds = dict(data.get("credentials") or {})
    for field, value in creds.items():
        if value == {"stored": True}:
            creds[field] = secret
    data["credentials"] = creds
    return parse_document(data, f"datastore {public.get('name')!r}")


def resolved(doc: DatastoreDocument) -> dict:
    """The document with its credential as a plain value (a reference read here): for a node
    that opens the datastore itself. Never printed or logged."""
    out = doc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"schema_", "credentials"})
    secret = doc.credentials.secret()
    out["credentials"] = {} if secret is None else {doc.credentials.kind: secret}
    return out
