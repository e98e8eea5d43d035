"""The server's collectors: one `PayloadCollector` per deployment whose `data_collector` enables a
payload collection, all written by one writer process. As on Azure, `request` and `response` are
payload logging for every deployment; `model_inputs`, `model_outputs` are collected by the
gateway for models without code, and by score.py's `Collector` (mdc.py) for models with code.
The rows are written by a process of their own (writer.py), fed once a flush.
The controller asks for a deployment's collector when it builds the deployment's routing
snapshot, and for a replica's environment; the gateway only calls `offer`."""

from __future__ import annotations

import json
from pathlib import Path

from ..schema.monitoring import PAYLOAD_COLLECTIONS
from .mdc import REPLICA_ENV
from .payload import PayloadCollector, PayloadSink
from .writer_client import WriterProcess


class CollectionHub:
    def __init__(self, root: Path, writer: WriterProcess | None = None):
        self.root = root
        self.writer = writer or WriterProcess(root)   # started with the first collecting deployment
        self.collectors: dict[tuple[str, str], PayloadCollector] = {}

    def collector(self, rt) -> PayloadCollector | None:
        """The collector of a deployment (the controller's DeploymentRuntime), or None."""
        endpoint, deployment, dc = rt.endpoint, rt.name, rt.spec.data_collector
        key = (endpoint, deployment)
        payload = ("request", "response") if rt.spec.code is not None else PAYLOAD_COLLECTIONS
        rates = {n: r for n, r in dc.enabled().items() if n in payload} if dc is not None else {}
        if not rates:
            if key in self.collectors:
                del self.collectors[key]
                self.writer.remove(endpoint, deployment)
            return None
        c = self.collectors.get(key)
        if c is None:
            sink = PayloadSink(self.root, endpoint, deployment, dc.rolling_rate, dc.retention_days)
            c = self.collectors[key] = PayloadCollector(sink, rates, dc.request_logging.capture_headers)
            self.writer.add(sink)
        else:
            c.configure(rates, dc.request_logging.capture_headers)
            c.sink.rolling_rate, c.sink.retention_days = dc.rolling_rate, dc.retention_days
        return c

    def forget(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self.collectors if k not in live]:
            del self.collectors[key]
            self.writer.remove(*key)

    def replica_env(self, rt, spec) -> dict[str, str]:
        """A replica's environment: the deployment's, and for a score.py whose collections are
        enabled, where azureml-ai-monitoring's Collector is to post (mdc.py)."""
        dc = spec.data_collector
        custom = {n: r for n, r in dc.enabled().items() if n not in ("request", "response")} if dc else {}
        if spec.code is None or not custom:
            return spec.environment_variables
        return {**spec.environment_variables, REPLICA_ENV: json.dumps({
            "root": str(self.root), "endpoint": rt.endpoint, "deployment": rt.name, "collections": custom,
            "rolling_rate": dc.rolling_rate, "retention_days": dc.retention_days})}

    def stats(self):
        """Per deployment: rows written by collection, samples dropped by reason, and files put in
        the default datastore (uploaded, failed)."""
        for (ep, dep), c in list(self.collectors.items()):
            yield ep, dep, dict(c.sink.rows), dict(c.sink.dropped), dict(c.sink.uploads)

    def close(self) -> None:
        self.writer.stop()
