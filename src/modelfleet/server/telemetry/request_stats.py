"""Per-deployment request statistics kept in memory by the gateway's request hook.

Two views of the same requests, both updated in a few microseconds on the event loop (no lock:
the gateway, the scrape and the stats route all run on that one thread):

- cumulative totals since the server started (by status code; duration histograms of the whole
  request, of its wait for admission and of the replica round trip; bytes), which the metrics
  module exposes in Prometheus format;
- a rolling window of the last `HISTORY_S` seconds in one-second slots (requests, 4xx, 5xx and
  a fine latency histogram), from which the dashboard, `show` and `fleet top` read req/s, p50,
  p99 and errors "over the last minute".
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

# Prometheus-style upper bounds (seconds) for the cumulative histograms.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0)
# The window's latency histogram: log-spaced bounds from 50 us to ~35 s (each 1.4x the last),
# fine enough for a p50/p99 within about 20%.
_FINE = tuple(5e-5 * 1.4 ** i for i in range(41))
HISTORY_S = 120
WINDOW_S = 60


class Histogram:
    """Counts per upper bound (the last slot: above every bound) and the sum of observations."""
    __slots__ = ("counts", "sum")

    def __init__(self, size: int = len(DURATION_BUCKETS) + 1):
        self.counts = array("Q", bytes(8 * size))
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.sum += seconds


@dataclass(eq=False)
class Totals:
    """Since the server started."""
    codes: dict[int, int] = field(default_factory=dict)
    duration: Histogram = field(default_factory=Histogram)
    queue: Histogram = field(default_factory=Histogram)
    model: Histogram = field(default_factory=Histogram)
    bytes_in: int = 0
    bytes_out: int = 0


class Window:
    """The last HISTORY_S seconds, one slot per second (slot = second % HISTORY_S)."""
    __slots__ = ("second", "count", "err4", "err5", "latency")

    def __init__(self):
        self.second = [-1] * HISTORY_S
        self.count = [0] * HISTORY_S
        self.err4 = [0] * HISTORY_S
        self.err5 = [0] * HISTORY_S
        self.latency: list[array | None] = [None] * HISTORY_S

    def add(self, second: int, status: int, seconds: float) -> None:
        i = second % HISTORY_S
        if self.second[i] != second:  # a slot from HISTORY_S seconds ago: start it afresh
            self.second[i] = second
            self.count[i] = self.err4[i] = self.err5[i] = 0
            self.latency[i] = None
        self.count[i] += 1
        if status >= 500:
            self.err5[i] += 1
        elif status >= 400:
            self.err4[i] += 1
        hist = self.latency[i]
        if hist is None:
            hist = self.latency[i] = array("I", bytes(4 * (len(_FINE) + 1)))
        hist[bisect_left(_FINE, seconds)] += 1

    def slots(self, now: int, seconds: int):
        """(second, slot index) for each of the last `seconds` seconds that saw requests."""
        for s in range(now - seconds + 1, now + 1):
            i = s % HISTORY_S
            if self.second[i] == s and self.count[i]:
                yield s, i


def percentile(hist, q: float) -> float | None:
    """The q-quantile (seconds) of a fine histogram: the geometric middle of its bucket."""
    total = sum(hist)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= rank:
            upper = _FINE[i] if i < len(_FINE) else _FINE[-1] * 1.4
            lower = _FINE[i - 1] if i > 0 else upper / 1.4
            return math.sqrt(lower * upper)
    return None


@dataclass(eq=False)
class KeyStats:
    totals: Totals = field(default_factory=Totals)
    window: Window = field(default_factory=Window)


Key = tuple[str, str]   # (endpoint, deployment); deployment "" when none was chosen (401, 404, 503)


class RequestStats:
    def __init__(self):
        self.keys: dict[Key, KeyStats] = {}

    def record(self, endpoint: str, deployment: str, status: int, now: float, total_s: float,
               queue_s: float, model_s: float, bytes_in: int, bytes_out: int) -> None:
        ks = self.keys.get((endpoint, deployment))
        if ks is None:
            ks = self.keys[(endpoint, deployment)] = KeyStats()
        t = ks.totals
        t.codes[status] = t.codes.get(status, 0) + 1
        t.duration.observe(total_s)
        if deployment:  # only requests that reached a deployment waited for one
            t.queue.observe(queue_s)
            t.model.observe(model_s)
        t.bytes_in += bytes_in
        t.bytes_out += bytes_out
        ks.window.add(int(now), status, total_s)

    def forget(self, endpoint: str, deployment: str | None = None) -> None:
        """Drop a deleted deployment's (or endpoint's) statistics."""
        for key in [k for k in self.keys if k[0] == endpoint and deployment in (None, k[1])]:
            del self.keys[key]

    # -- reading -------------------------------------------------------------------------------

    def _slots(self, keys: list[Key], second: int, seconds: int):
        """(window, second, slot index) of every slot of `keys` with requests in the last `seconds`."""
        for key in keys:
            ks = self.keys.get(key)
            if ks is not None:
                for s, i in ks.window.slots(second, seconds):
                    yield ks.window, s, i

    def summary(self, keys: list[Key], now: float, seconds: int = WINDOW_S) -> dict:
        """Request rate, latency percentiles and errors over the last `seconds`, all `keys` together."""
        count = err4 = err5 = 0
        hist = [0] * (len(_FINE) + 1)
        for w, _, i in self._slots(keys, int(now), seconds):
            count += w.count[i]
            err4 += w.err4[i]
            err5 += w.err5[i]
            for b, n in enumerate(w.latency[i]):
                if n:
                    hist[b] += n
        p50, p99 = percentile(hist, 0.5), percentile(hist, 0.99)
        return {"window_s": seconds, "requests": count, "requests_per_second": round(count / seconds, 3),
                "p50_ms": None if p50 is None else round(p50 * 1000, 3),
                "p99_ms": None if p99 is None else round(p99 * 1000, 3),
                "errors": err4 + err5, "errors_4xx": err4, "errors_5xx": err5,
                "error_rate": round((err4 + err5) / count, 4) if count else 0.0}

    def series(self, keys: list[Key], now: float, seconds: int = HISTORY_S) -> dict:
        """Per-second points for charts, oldest first: t (epoch s), rps, errors, p50/p99 (ms);
        the second under way is left out (a partial count would draw a drop at the end)."""
        seconds = min(seconds, HISTORY_S - 1)
        second = int(now) - 1
        start = second - seconds + 1
        rps, errors = [0] * seconds, [0] * seconds
        hists: list[list[int] | None] = [None] * seconds
        for w, s, i in self._slots(keys, second, seconds):
            j = s - start
            rps[j] += w.count[i]
            errors[j] += w.err4[i] + w.err5[i]
            merged = hists[j]
            if merged is None:
                hists[j] = list(w.latency[i])
            else:
                for b, n in enumerate(w.latency[i]):
                    merged[b] += n

        def ms(h, q):
            v = percentile(h, q) if h else None
            return None if v is None else round(v * 1000, 3)
        return {"t": list(range(start, second + 1)), "rps": rps, "errors": errors,
                "p50_ms": [ms(h, 0.5) for h in hists], "p99_ms": [ms(h, 0.99) for h in hists]}
