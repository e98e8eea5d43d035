"""What every document and body shares: the `Spec` base (Azure-only fields accepted with a
notice, any other unknown field an error naming its path), the field rules, and `validate`,
which turns pydantic's errors into one SpecError naming the field."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domain.errors import InvalidInput, SpecError
from ..domain.model_types import AZURE_MODEL_TYPES, MODEL_TYPES
from ..domain.names import ENDPOINT_RULE, NAME_RULE, check_endpoint_name, check_name, check_version, problem


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


def _mapping(v) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"must be a mapping of names to values, got {type(v).__name__}")
    return v


def _by_rule(check, rule: str, endpoint_rule: bool = False):
    """A names.py check as a pydantic validator: the value, what is wrong with it, and the rule."""
    def validate(v):
        try:
            return check(v)
        except InvalidInput:
            raise ValueError(f"must be {rule}: {v!r} {problem(v, endpoint_rule)}") from None
    return validate


_check_name = _by_rule(check_name, NAME_RULE)
_check_version = _by_rule(check_version, NAME_RULE)
# Azure's rule for deployment names is the endpoint rule.
_check_endpoint_name = _by_rule(check_endpoint_name, ENDPOINT_RULE, endpoint_rule=True)


def _model_type(v):
    """Ours, or Azure's (custom and triton models are detected from their files); any case, as in Azure."""
    if v is None:
        return None
    key = str(v).lower()
    if key in AZURE_MODEL_TYPES:
        return AZURE_MODEL_TYPES[key]
    if key not in MODEL_TYPES:
        raise ValueError(f"{v!r} is not a model type: use {', '.join(AZURE_MODEL_TYPES)} or {', '.join(MODEL_TYPES)}")
    return key


def _version(v):
    """Versions are strings; YAML's `version: 2` is a number and means "2"."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"must be a string or a number, got {type(v).__name__}")
    return _check_version(str(v))


def format_loc(loc: tuple, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "dict[any,any]", "list[str]", "InlineModel", "InlineEnvironment",
                      "function-after[_model(), str]") or str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(kind: type[Spec], data: Any, where: str = "") -> Spec:
    """Validate `data` as `kind`; the first problem becomes one SpecError naming its field path."""
    if not isinstance(data, dict):
        raise SpecError(f"{where or 'document'}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A field with alternatives (a model reference or an inline model) fails on each of them:
        # the deepest error is the one about what was actually given.
        err = max((x for x in errors if x["loc"][:1] == errors[0]["loc"][:1]), key=lambda x: len(x["loc"]))
        loc = format_loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        head = f"{where}: " if where else ""
        raise SpecError(f"{head}{loc + ': ' if loc else ''}{msg}") from None
