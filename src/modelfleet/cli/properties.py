"""az's generic `--set` / `--add` / `--remove` on a document, by property path.

    --set instance_count=2 request_settings.request_timeout_ms=3000 tags.team=risk
    --add some.list value key=value ...       (consecutive key=value pairs make one object)
    --remove tags.team                         --remove some.list 0

Paths are dotted names with `[index]` or `[key=value]` to pick list items, as in az. Values are
read as JSON when they parse (2 is a number, true a boolean, {"a": 1} an object) and kept as
strings otherwise, or always with --force-string. `--set` creates missing objects on the way.
camelCase names find their snake_case fields (`instanceCount` is `instance_count`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson

from ..domain.errors import InvalidInput

_SEGMENT = re.compile(r"\[[^\]]*\]|[^.\[\]]+")
_PATH = re.compile(r"(?:[^.\[\]]+|\[[^\]]*\])(?:\.[^.\[\]]+|\.?\[[^\]]*\])*")
_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _segments(path: str, flag: str) -> list[str]:
    if not _PATH.fullmatch(path):
        raise InvalidInput(f"{flag} {path!r}: not a property path such as a.b[0].c")
    return _SEGMENT.findall(path)


def _value(text: str, force_string: bool) -> Any:
    if force_string:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _key(obj: dict, name: str) -> str:
    if name not in obj:
        snake = _SNAKE.sub(r"_\1", name).lower()
        if snake in obj:
            return snake
    return name


def _step(obj: Any, seg: str, walked: str, flag: str, create: bool) -> Any:
    """The child `seg` of `obj` (a name, [index] or [key=value])."""
    where = walked or "the document"
    if seg.startswith("["):
        if not isinstance(obj, list):
            raise InvalidInput(f"{flag}: {where} is not a list, so {seg} does not apply")
        inner = seg[1:-1]
        if "=" in inner:
            k, _, v = inner.partition("=")
            want = _value(v, False)
            found = [x for x in obj if isinstance(x, dict) and x.get(k) == want]
            if len(found) != 1:
                raise InvalidInput(f"{flag}: {len(found)} items of {where} have {k}={v}; need exactly one")
            return found[0]
        try:
            return obj[int(inner)]
        except (ValueError, IndexError):
            raise InvalidInput(f"{flag}: index {inner} does not exist in {where} ({len(obj)} items)") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"{flag}: {where} has no properties, so {seg!r} does not apply")
    key = _key(obj, seg)
    if key not in obj or (obj[key] is None and create):
        if not create:
            raise InvalidInput(f"{flag}: {where} has no {seg!r}; it has: {', '.join(map(str, obj)) or 'nothing'}")
        obj[key] = {}
    return obj[key]


def _walk(doc: Any, segs: list[str], flag: str, create: bool) -> Any:
    obj, walked = doc, ""
    for seg in segs:
        obj = _step(obj, seg, walked, flag, create)
        walked += seg if seg.startswith("[") or not walked else f".{seg}"
    return obj


def _assign(parent: Any, seg: str, value: Any, path: str, flag: str) -> None:
    if seg.startswith("[") and "=" not in seg:
        if not isinstance(parent, list):
            raise InvalidInput(f"{flag} {path}: not a list")
        try:
            parent[int(seg[1:-1])] = value
        except (ValueError, IndexError):
            raise InvalidInput(f"{flag} {path}: index {seg[1:-1]} does not exist") from None
    elif isinstance(parent, dict):
        parent[_key(parent, seg)] = value
    else:
        raise InvalidInput(f"{flag} {path}: the parent is not an object")


def set_property(doc: dict, expression: str, force_string: bool = False) -> None:
    depth, key_chars = 0, []
    for ch in expression:  # the first '=' outside [brackets] splits key from value
        if ch == "=" and depth == 0:
            break
        depth += ch == "["
        depth -= ch == "]"
        key_chars.append(ch)
    key = "".join(key_chars)
    if len(key) == len(expression) or not key.strip():
        raise InvalidInput(f"--set {expression!r}: use KEY=VALUE (KEY a property path such as a.b.c)")
    segs = _segments(key, "--set")
    parent = _walk(doc, segs[:-1], "--set", create=True)
    _assign(parent, segs[-1], _value(expression[len(key) + 1:], force_string), key, "--set")


def add_property(doc: dict, args: list[str], force_string: bool = False) -> None:
    if len(args) < 2:
        raise InvalidInput("--add: use --add PATH.TO.LIST VALUE [key=value ...]")
    segs = _segments(args[0], "--add")
    parent = _walk(doc, segs[:-1], "--add", create=True)
    if isinstance(parent, dict) and parent.get(_key(parent, segs[-1])) is None:
        parent[_key(parent, segs[-1])] = []
    target = _walk(parent, segs[-1:], "--add", create=False)
    if not isinstance(target, list):
        raise InvalidInput(f"--add: {args[0]} is not a list (to change an object use --set {args[0]}.KEY=VALUE)")
    pending: dict = {}
    for arg in args[1:]:
        k, eq, v = arg.partition("=")
        if eq and k:
            pending[k] = v  # as in az: key=value pairs stay strings
            continue
        if pending:
            target.append(pending)
            pending = {}
        target.append(_value(arg, force_string))
    if pending:
        target.append(pending)


def remove_property(doc: dict, args: list[str]) -> None:
    if not args or len(args) > 2:
        raise InvalidInput("--remove: use --remove PATH or --remove PATH.TO.LIST INDEX")
    segs = _segments(args[0], "--remove")
    if len(args) == 2:
        target = _walk(doc, segs, "--remove", create=False)
        try:
            target.pop(int(args[1]))
        except (AttributeError, TypeError):
            raise InvalidInput(f"--remove: {args[0]} is not a list") from None
        except (ValueError, IndexError):
            raise InvalidInput(f"--remove: index {args[1]} does not exist in {args[0]}") from None
        return
    parent = _walk(doc, segs[:-1], "--remove", create=False)
    last = segs[-1]
    if last.startswith("["):
        item = _walk(parent, [last], "--remove", create=False)
        parent.remove(item)
    elif isinstance(parent, dict) and _key(parent, last) in parent:
        del parent[_key(parent, last)]
    else:
        raise InvalidInput(f"--remove: {args[0]} does not exist")


def apply(doc: dict, ops: list[tuple[str, list[str]]], force_string: bool = False) -> dict:
    """A copy of `doc` with `ops` ([("set"|"add"|"remove", args)], in command-line order) applied."""
    doc = copy.deepcopy(doc)
    for verb, args in ops:
        if verb == "set":
            if not args:
                raise InvalidInput("--set: use --set KEY=VALUE [KEY=VALUE ...]")
            for expression in args:
                set_property(doc, expression, force_string)
        elif verb == "add":
            add_property(doc, args, force_string)
        else:
            remove_property(doc, args)
    return doc
