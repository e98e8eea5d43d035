"""Prometheus metrics of the workspace server, served at `GET /metrics`.

Names and labels follow the servers people already scrape, in Prometheus base units (seconds,
bytes) as KServe does; docs/observability.md lists each one with its Ray Serve and Triton
counterpart. Labels: `endpoint`, `deployment` (empty when a request was refused before one was
chosen), `code` (the HTTP status), `state`, `replica`.

The server is one process (replicas report through it), so there is one registry and no
multiprocess files: scraping stays fast however many replicas came and went, and series of
replicas that stopped are gone with them. Request figures live in `RequestStats`, updated by the
gateway with a few integer increments; a collector turns them into metric families at scrape
time, along with what is cheaper to read then than to track (requests in flight and queued,
replica CPU and memory).
"""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ...version import __version__
from ..control.replica_states import ReplicaCounts
from .request_stats import DURATION_BUCKETS, Histogram as Counts, RequestStats

disable_created_metrics()  # no `_created` series: half the output, and nothing reads them here

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
COLD_START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# (endpoint, deployment, in flight, queued) for every deployment taking traffic
AdmissionSource = Callable[[], Iterable[tuple[str, str, int, int]]]
# (endpoint, deployment, replica, cpu seconds or None, resident bytes or None) for live replicas
UsageSource = Callable[[], Iterable[tuple[str, str, str, float | None, int | None]]]
# (endpoint, deployment, its replicas by state) for every deployment (replica_states.py)
StateSource = Callable[[], Iterable[tuple[str, str, ReplicaCounts]]]

ED = ("endpoint", "deployment")


def _histogram(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], Counts]]):
    fam = HistogramMetricFamily(name, doc, labels=labels)
    bounds = [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
    for values, h in rows:
        cumulative, running = [], 0
        for bound, n in zip(bounds, h.counts, strict=True):
            running += n
            cumulative.append((bound, running))
        fam.add_metric(values, cumulative, h.sum)
    return fam


class _Collector:
    """Metric families computed at scrape time from the server's live state."""

    def __init__(self, m: Metrics):
        self.m = m

    def describe(self):
        return []

    def collect(self):
        m = self.m
        requests = CounterMetricFamily("modelfleet_requests", "Scoring requests answered, by HTTP status code.",
                                       labels=[*ED, "code"])
        bytes_in = CounterMetricFamily("modelfleet_request_bytes", "Bytes of scoring request bodies.", labels=ED)
        bytes_out = CounterMetricFamily("modelfleet_response_bytes", "Bytes of scoring response bodies.", labels=ED)
        items = list(m.stats.keys.items())
        for (ep, dep), ks in items:
            t = ks.totals
            for code, n in t.codes.items():
                requests.add_metric([ep, dep, str(code)], n)
            bytes_in.add_metric([ep, dep], t.bytes_in)
            bytes_out.add_metric([ep, dep], t.bytes_out)
        yield requests
        yield _histogram("modelfleet_request_duration_seconds",
                         "Time from the request's arrival at the gateway to its answer.", list(ED),
                         [([ep, dep], ks.totals.duration) for (ep, dep), ks in items])
        yield _histogram("modelfleet_request_queue_duration_seconds",
                         "Time a request waited for a free replica slot (admission queue).", list(ED),
                         [([ep, dep], ks.totals.queue) for (ep, dep), ks in items if dep])
        yield _histogram("modelfleet_request_model_duration_seconds",
                         "Replica round trip: batching wait, the model call and the socket hop.", list(ED),
                         [([ep, dep], ks.totals.model) for (ep, dep), ks in items if dep])
        yield bytes_in
        yield bytes_out
        inflight = GaugeMetricFamily("modelfleet_requests_in_flight",
                                     "Requests holding a replica slot now.", labels=ED)
        queued = GaugeMetricFamily("modelfleet_requests_queued", "Requests waiting for a replica slot now.",
                                   labels=ED)
        for ep, dep, n_in, n_queued in m.admission_source():
            inflight.add_metric([ep, dep], n_in)
            queued.add_metric([ep, dep], n_queued)
        yield inflight
        yield queued
        replicas = GaugeMetricFamily("modelfleet_replicas", "Replicas by state (the busy ones are among the ready).",
                                     labels=[*ED, "state"])
        busy = GaugeMetricFamily("modelfleet_replicas_busy", "Ready replicas answering a request now.", labels=ED)
        wanted = GaugeMetricFamily("modelfleet_replicas_wanted", "Replicas a deployment wants now (instance_count, "
                                   "or the autoscaler's count).", labels=ED)
        for ep, dep, n in sorted(m.state_source(), key=lambda row: row[:2]):
            for state, k in n.by_state().items():
                replicas.add_metric([ep, dep, state], k)
            busy.add_metric([ep, dep], n.busy)
            wanted.add_metric([ep, dep], n.wanted)
        yield replicas
        yield busy
        yield wanted
        cpu = CounterMetricFamily("modelfleet_replica_cpu_seconds", "CPU time used by a replica process.",
                                  labels=[*ED, "replica"])
        memory = GaugeMetricFamily("modelfleet_replica_memory_bytes", "Resident memory of a replica process.",
                                   labels=[*ED, "replica"])
        for ep, dep, rid, cpu_s, rss in m.usage_source():
            if cpu_s is not None:
                cpu.add_metric([ep, dep, rid], cpu_s)
            if rss is not None:
                memory.add_metric([ep, dep, rid], rss)
        yield cpu
        yield memory


class Metrics:
    def __init__(self, stats: RequestStats | None = None):
        self.stats = stats or RequestStats()
        self.registry = CollectorRegistry()
        self.admission_source: AdmissionSource = lambda: ()
        self.usage_source: UsageSource = lambda: ()
        self.state_source: StateSource = lambda: ()
        r = self.registry
        self.mirrored = Counter("modelfleet_mirrored_requests", "Copies of requests sent to a mirror deployment "
                                "(answers dropped), by the status the mirror gave.", [*ED, "code"], registry=r)
        self.batch_size = Histogram("modelfleet_batch_size", "Requests a replica scored in one model call.",
                                    ED, buckets=BATCH_BUCKETS, registry=r)
        self.restarts = Counter("modelfleet_replica_restarts", "Replicas that died while serving and were "
                                "replaced.", ED, registry=r)
        self.cold_start = Histogram("modelfleet_replica_cold_start_duration_seconds", "From the start of a "
                                    "replica to its readiness (process start and model load).", ED,
                                    buckets=COLD_START_BUCKETS, registry=r)
        self.model_load = Histogram("modelfleet_model_load_duration_seconds", "Time to load a model inside a "
                                    "replica.", ED, buckets=COLD_START_BUCKETS, registry=r)
        self.model_evictions = Counter("modelfleet_model_evictions", "Models unloaded from a replica to make "
                                       "room for another.", ED, registry=r)
        Gauge("modelfleet_build_info", "The modelfleet version serving.", ["version"],
              registry=r).labels(__version__).set(1)
        ProcessCollector(registry=r)   # the server process itself: process_cpu_seconds_total, ...
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        r.register(_Collector(self))

    # -- hooks (plain calls from the gateway and the controller) ---------------------------------

    def mirror_done(self, endpoint: str, deployment: str, status: int) -> None:
        self.mirrored.labels(endpoint, deployment, str(status)).inc()

    def batch(self, endpoint: str, deployment: str, size: int) -> None:
        self.batch_size.labels(endpoint, deployment).observe(size)

    def replica_restarted(self, endpoint: str, deployment: str) -> None:
        self.restarts.labels(endpoint, deployment).inc()

    def replica_ready(self, endpoint: str, deployment: str, cold_start_s: float, load_s: float | None) -> None:
        self.cold_start.labels(endpoint, deployment).observe(cold_start_s)
        if load_s is not None:
            self.model_load.labels(endpoint, deployment).observe(load_s)

    def model_evicted(self, endpoint: str, deployment: str) -> None:
        self.model_evictions.labels(endpoint, deployment).inc()

    def model_loaded(self, endpoint: str, deployment: str, load_s: float) -> None:
        """A model loaded again on demand after an eviction (shared multi-model workers)."""
        self.model_load.labels(endpoint, deployment).observe(load_s)

    def forget(self, endpoint: str, deployment: str) -> None:
        """A deleted deployment: its series go (names are reused, and memory must not grow)."""
        self.stats.forget(endpoint, deployment)
        for metric in (self.batch_size, self.restarts, self.cold_start, self.model_load, self.model_evictions):
            try:
                metric.remove(endpoint, deployment)
            except KeyError:
                pass
        for labels in [k for k in self.mirrored._metrics if k[:2] == (endpoint, deployment)]:
            self.mirrored.remove(*labels)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
