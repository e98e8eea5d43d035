"""Reading YAML/JSON documents from files: safe, bounded, and errors with file:line:column."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..domain.errors import SpecError

MAX_BYTES = 8 * 1024 * 1024
MAX_ALIASES = 100
MAX_ALIAS_GROWTH = 100_000  # nodes that aliases may add once expanded


def _loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(distinct nodes, nodes once every alias is expanded), without expanding anything.

    An alias is the same node object reached twice, so sizes are memoized per node: a few
    aliases nested a few levels deep ("billion laughs") are counted, not built.
    """
    size: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.SequenceNode):
            kids = node.value
        elif isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        else:
            size[id(node)] = 1
            continue
        if children_done:
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
    return len(size), size[id(root)]


def _check_aliases(text: str, source: str) -> None:
    aliases = sum(1 for ev in yaml.parse(text, Loader=_loader()) if isinstance(ev, yaml.AliasEvent))
    if not aliases:
        return
    if aliases > MAX_ALIASES:
        raise SpecError(f"{source}: {aliases} YAML aliases; at most {MAX_ALIASES} are allowed")
    for root in yaml.compose_all(text, Loader=_loader()):
        distinct, expanded = _expanded_size(root) if root is not None else (0, 0)
        if expanded - distinct > MAX_ALIAS_GROWTH:
            raise SpecError(f"{source}: YAML aliases expand the document to {expanded} nodes from {distinct}; "
                            f"at most {MAX_ALIAS_GROWTH} more are allowed (an alias bomb?)")


def load_text(text: str, source: str) -> list:
    """Every document in `text` (multi-document YAML allowed); refuses alias bombs."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{source}: file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        _check_aliases(text, source)
        return [d for d in yaml.load_all(text, Loader=_loader()) if d is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SpecError(f"{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:
        # Its str() spans two lines; errors are one line with file:line:column.
        before = text[:e.position] if isinstance(e.position, int) else ""
        where = f"{source}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise SpecError(f"{where}: invalid YAML: unacceptable character {char}: {e.reason}") from None
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"{source}: invalid YAML: {first}") from None
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
