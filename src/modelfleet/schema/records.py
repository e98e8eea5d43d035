"""What the workspace stores, as entities: what the store returns and what the API sends.

The store turns its rows into these at its edge; the client turns the API's JSON back into them
(`from_dict`), so a Model reads the same whichever side of the HTTP boundary holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Model:
    name: str
    version: str
    type: str
    description: str
    sha256: str
    size: int
    files: list[dict]
    tags: dict[str, str]
    labels: list[str] = field(default_factory=list)
    archived: bool = False
    created_at: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        # Shallow on purpose: dataclasses.asdict deep-copies every file list (10x slower at 10k rows).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Environment:
    name: str
    version: str
    description: str
    tags: dict[str, str]
    image: str | None
    content: dict          # EnvironmentContent.to_dict()
    sha256: str
    source: dict           # what it was read from: {"conda_file": {...}} or {"requirements": [...]}
    lock: dict | None = None   # {"python", "platform", "requirements": [...]} once resolved
    archived: bool = False
    created_at: str = ""
    extra: dict = field(default_factory=dict)  # filled in by whoever shows it (build state)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> Environment:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and k != "extra"},
                   extra={k: v for k, v in d.items() if k not in names})
