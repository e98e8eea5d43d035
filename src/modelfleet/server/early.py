"""What the server process does before it imports its own modules: launch the zygote of its
interpreter (backends/local/zygote_client.py), whose imports (numpy, scikit-learn: ~1 s) then run
beside the server's (~0.8 s) instead of after them, so that replicas restored at a start, or the
first deployment made after it, wait for neither in turn. The LocalBackend takes it over; a server
that fails to start takes it down with it (the zygote dies with its parent)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def launch_zygote(argv: list[str]) -> None:
    """`argv`: the server's arguments; only --workspace-path is read (process.py checks them all)."""
    if "--workspace-path" not in argv[:-1]:
        return
    logs_dir = Path(argv[argv.index("--workspace-path") + 1]) / "logs"
    if not logs_dir.is_dir():   # made by the launcher; a start without it fails or makes it itself
        return
    from ..backends.local.reaping import become_subreaper
    from ..backends.local.zygote_client import launch_early
    subreaper = os.getpid() if become_subreaper() else 0
    with contextlib.suppress(OSError):   # the backend launches one itself when it first needs it
        launch_early(logs_dir / "zygote.log", subreaper)
