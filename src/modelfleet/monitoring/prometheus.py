"""Monitoring figures at `/metrics`: rows collected and dropped per deployment and collection,
and each monitor's latest value and pass/fail per signal, feature and metric."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

SIGNAL = ("schedule", "signal", "feature", "metric")


class MonitoringCollector:
    def __init__(self, hub, monitoring):
        self.hub = hub
        self.monitoring = monitoring

    def describe(self):
        return []

    def collect(self):
        rows = CounterMetricFamily("modelfleet_collected_rows", "Rows of collected data written, by collection.",
                                   labels=["endpoint", "deployment", "collection"])
        dropped = CounterMetricFamily("modelfleet_collection_dropped", "Collected samples dropped (queue_full: the "
                                      "writer fell behind; write_failed: the disk refused; unreadable; writer_failed: a "
                                      "batch took down three writer processes).",
                                      labels=["endpoint", "deployment", "reason"])
        uploaded = CounterMetricFamily("modelfleet_collection_uploaded_files", "Collected files put in the "
                                       "workspace's default datastore (a blob container).", labels=["endpoint", "deployment"])
        failures = CounterMetricFamily("modelfleet_collection_upload_failures", "Uploads of collected files to the "
                                       "default datastore that failed (the file waits on disk and is tried again).",
                                       labels=["endpoint", "deployment"])
        for ep, dep, written, lost, uploads in self.hub.stats() if self.hub else ():
            for name, n in written.items():
                rows.add_metric([ep, dep, name], n)
            for reason, n in lost.items():
                dropped.add_metric([ep, dep, reason], n)
            if uploads:
                uploaded.add_metric([ep, dep], uploads.get("uploaded", 0))
                failures.add_metric([ep, dep], uploads.get("failed", 0))
        yield from (rows, dropped, uploaded, failures)
        value = GaugeMetricFamily("modelfleet_monitor_metric", "A monitor's latest value of a metric of a feature.",
                                  labels=list(SIGNAL))
        breached = GaugeMetricFamily("modelfleet_monitor_breached", "1 when that value breached its threshold.",
                                     labels=list(SIGNAL))
        for name, run in list(self.monitoring.latest.items()) if self.monitoring else ():
            for r in run["results"]:
                if r["value"] is None:
                    continue
                labels = [name, r["signal"], r["feature"], r["metric"]]
                value.add_metric(labels, r["value"])
                breached.add_metric(labels, 0 if r["passed"] else 1)
        yield value
        yield breached
