"""Errors in the user's code (a model's methods, a score.py) as the user wants to read them:
their files named as in their code folder, not the copy in the store, modelfleet's frames left out."""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep
# code snapshots live at <workspace>/artifacts/code/<sha256>/<the user's folder>/...
_SNAPSHOT = re.compile(r"^.*[/\\]code[/\\][0-9a-f]{64}[/\\]")


def _shown(filename: str) -> str:
    """The user's own path (their folder's name and below) for a file in a code snapshot."""
    return _SNAPSHOT.sub("", filename)


def _trim(te: traceback.TracebackException) -> None:
    keep = [f for f in te.stack if not f.filename.startswith(_PACKAGE) and not f.filename.startswith("<frozen ")]
    te.stack = traceback.StackSummary.from_list(
        [traceback.FrameSummary(_shown(f.filename), f.lineno, f.name, line=f.line) for f in keep])
    if getattr(te, "filename", None):  # a SyntaxError points at its file too
        te.filename = _shown(te.filename)
    for inner in (te.__cause__, te.__context__):
        if inner is not None:
            _trim(inner)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an error in a model or score.py as the user wants to read it: their files
    named as in their code folder (not the copy in the store), modelfleet's own frames left out."""
    te = traceback.TracebackException.from_exception(exc)
    _trim(te)
    return "".join(te.format())


def describe_error(exc: BaseException) -> str:
    """One line for a client: `Type: message (at folder/score.py:12 in run)`."""
    text = f"{type(exc).__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _SNAPSHOT.match(f.filename)]
    if frames:
        f = frames[-1]
        text += f" (at {_shown(f.filename)}:{f.lineno} in {f.name})"
    return text
