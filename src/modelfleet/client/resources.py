"""What endpoint and deployment operations return: the server's views as dicts read as objects."""

from __future__ import annotations

import functools


class Resource(dict):
    """An endpoint or deployment as the server shows it. Its keys read as attributes too
    (`ep.scoring_uri`), and `to_dict()` gives the plain dict, as for a Model, so every list and
    get method returns objects used the same way."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return dict(self)


def resources(fn):
    """Wrap a method returning server views so they come back as Resources."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, list):
            return [Resource(x) for x in out]
        return Resource(out) if isinstance(out, dict) else out
    return wrapper


def _without_none(mapping: dict) -> dict:
    """In an update, a key set to None is one to remove (a tag, an environment variable)."""
    return {k: v for k, v in mapping.items() if v is not None}


def without_none(mapping: dict) -> dict:
    """In an update, a key set to None is one to remove (a tag, an environment variable)."""
    return {k: v for k, v in mapping.items() if v is not None}
