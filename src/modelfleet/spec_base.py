"""The base of every document model: Azure files work unchanged (`$schema` accepted, Azure-only
fields kept with a notice), any other unknown field is an error naming its path. specs.py
re-exports it; documents of their own modules (monitoring_specs.py) build on it too."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Spec(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_: str | None = Field(default=None, alias="$schema", exclude=True)
    AZURE_ONLY: ClassVar[frozenset[str]] = frozenset()
    NOTED: ClassVar[dict[str, str]] = {}   # declared fields that are kept and shown but act on nothing here: why

    @model_validator(mode="after")
    def _no_unknown_fields(self):
        unknown = [k for k in (self.model_extra or {}) if k not in self.AZURE_ONLY]
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        return self

    def notices(self, where: str = "") -> list[str]:
        """One line per ignored Azure field, nested ones named by their path."""
        prefix = f"{where}: " if where else ""
        return [f"{prefix}field {path!r} has no meaning on modelfleet; ignored" for path in self._ignored()] + \
            [f"{prefix}field {path!r} is kept but not used: {why}" for path, why in self._noted()]

    def _ignored(self, at: str = "") -> list[str]:
        out = [f"{at}{k}" for k in (self.model_extra or {})]
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Spec):
                out += value._ignored(f"{at}{name}.")
        return out

    def _noted(self, at: str = "") -> list[tuple[str, str]]:
        out = [(f"{at}{k}", why) for k, why in self.NOTED.items() if getattr(self, k, None) is not None]
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Spec):
                out += value._noted(f"{at}{name}.")
        return out

    def data(self) -> dict:
        """The fields modelfleet uses, without `$schema` and ignored Azure fields at any depth
        (so that editing one never changes a spec's hash)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "schema_" or value is None:
                continue
            out[name] = value.data() if isinstance(value, Spec) else _plain(value)
        return out


def _plain(value):
    if isinstance(value, Spec):
        return value.data()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
