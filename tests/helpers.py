"""Helpers for tests that talk to a real server."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    ok: int = 0
    failed: list = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.ok + len(self.failed)


class Load:
    """Continuous requests from background threads until stopped; counts every failure."""

    def __init__(self, url: str, key: str | None, body: bytes, threads: int = 4, headers: dict | None = None):
        self.url, self.body = url, body
        self.headers = {"content-type": "application/json", **(headers or {})}
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, content=self.body, headers=self.headers)
                    ok = r.status_code == 200
                    detail = (r.status_code, r.text[:200])
                except httpx.HTTPError as e:
                    ok, detail = False, repr(e)
                with self._lock:
                    if ok:
                        self.result.ok += 1
                    else:
                        self.result.failed.append(detail)

    def __enter__(self):
        """Start the threads; return once the first requests have been answered (the load is on)."""
        for t in self._threads:
            t.start()
        try:
            wait_until(lambda: self.result.answered >= len(self._threads))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def scoring_code(folder, source: str) -> dict:
    """Write `source` as folder/score.py; the code_configuration that deploys it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(source)
    return {"code": str(folder), "scoring_script": "score.py"}
