"""Reading YAML/JSON documents from files: safe, bounded, and errors with file:line:column."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import SpecError

MAX_BYTES = 8 * 1024 * 1024
MAX_ALIASES = 100


def _loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_text(text: str, source: str) -> list:
    """Every document in `text` (multi-document YAML allowed); refuses alias bombs."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{source}: file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        aliases = sum(1 for ev in yaml.parse(text, Loader=_loader()) if isinstance(ev, yaml.AliasEvent))
        if aliases > MAX_ALIASES:
            raise SpecError(f"{source}: {aliases} YAML aliases; at most {MAX_ALIASES} are allowed")
        return [d for d in yaml.load_all(text, Loader=_loader()) if d is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SpecError(f"{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: invalid YAML: {e}") from None
    except RecursionError:
        raise SpecError(f"{source}: document is nested too deeply") from None


def load_file(path: str | Path) -> list:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(f"{path}: file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"file {str(path)!r} not found") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a file") from None
    return load_text(text, str(path))


def load_one(path: str | Path) -> dict:
    docs = load_file(path)
    if len(docs) != 1:
        raise SpecError(f"{path}: expected one document, found {len(docs)}")
    if not isinstance(docs[0], dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(docs[0]).__name__}")
    return docs[0]
