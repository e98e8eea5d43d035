"""Names and model references: the rules, checked in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

NAME_RULE = "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ENDPOINT_RULE = "3-32 letters, digits or '-', starting with a letter, not ending with '-'"
_ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")

WORKSPACE_RULE = "3-33 letters, digits, '-' or '_', starting with a letter or digit"   # Azure's
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")

VERSION_RULE = "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"


_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LETTERS = frozenset(c for c in _ALNUM if not c.isdigit())


def problem(value, endpoint_rule: bool = False) -> str:
    """What is wrong with `value` under the name rule (or the endpoint rule), in a few words."""
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not text"
    low, high = (3, 32) if endpoint_rule else (1, 64)
    allowed = _ALNUM | ({"-"} if endpoint_rule else {"-", "_", "."})
    if not value:
        return "is empty"
    if len(value) < low or len(value) > high:
        return f"is {len(value)} characters long ({low} to {high} allowed)"
    if value[0] not in (_LETTERS if endpoint_rule else _ALNUM):
        return f"starts with {value[0]!r} (the first character must be a {'letter' if endpoint_rule else 'letter or digit'})"
    bad = next(((i, c) for i, c in enumerate(value) if c not in allowed), None)
    if bad is not None:
        return f"has {bad[1]!r} at position {bad[0] + 1}"
    if endpoint_rule and value.endswith("-"):
        return "ends with '-'"
    return "does not follow the rule"


def check_name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(f"invalid {what} {value!r}: it {problem(value)}; use {NAME_RULE}")
    return value


def check_version(value: str) -> str:
    value = str(value)
    if not _NAME.fullmatch(value):
        raise InvalidInput(f"invalid version {value!r}: it {problem(value)}; use {VERSION_RULE}")
    return value


def check_endpoint_name(value: str, what: str = "endpoint name") -> str:
    if not isinstance(value, str) or not _ENDPOINT.fullmatch(value):
        raise InvalidInput(f"invalid {what} {value!r}: it {problem(value, True)}; use {ENDPOINT_RULE}")
    return value


@dataclass(frozen=True)
class ModelRef:
    """`name:version`, `name@label`, bare `name` (= @latest); `azureml:` prefix accepted. Models
    and environments are referred to alike (`what` names which one in errors)."""

    name: str
    version: str | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str, what: str = "model") -> "ModelRef":
        raw = str(text).strip()
        if raw.startswith("azureml:"):
            raw = raw[len("azureml:"):]
        if "@" in raw:
            name, label = raw.split("@", 1)
            return cls(check_name(name, f"{what} name"), label=check_name(label, "label"))
        if ":" in raw:
            name, version = raw.split(":", 1)
            return cls(check_name(name, f"{what} name"), version=check_version(version))
        return cls(check_name(raw, f"{what} name"))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.label or 'latest'}"


def check_workspace_name(value: str) -> str:
    """A workspace made over the API: Azure's rule for workspace names."""
    if not isinstance(value, str) or not _WORKSPACE.fullmatch(value):
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in "-_"))), None) \
            if isinstance(value, str) else None
        why = (f"has {bad!r}" if bad is not None else f"is {len(value)} characters long"
               if isinstance(value, str) and not 3 <= len(value) <= 33 else "does not start with a letter or digit")
        raise InvalidInput(f"invalid workspace name {value!r}: it {why}; use {WORKSPACE_RULE}")
    return value
