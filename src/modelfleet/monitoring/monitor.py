"""One run of a monitor: for each signal, read production and reference data, compute each
metric of each feature, and compare it with its threshold.

Production data is the signal's `production_data.input_data` (a data asset), else what the
monitored deployment collected (`model_inputs` for data drift and data quality, `model_outputs`
for prediction drift; `data_context` names another collection) over the data window: the
`lookback_window_size` that ends `lookback_window_offset` before the run, read from the
workspace's folder and, when the default datastore is a blob container, from it for the windows
the folder lacks (DataAssets.read_collection).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from . import drift
from .data_assets import DataAssets
from ..schema.monitoring import P_VALUE_METRICS, MonitorScheduleSpec, Signal, duration_seconds, split_target
from .tables import META_COLUMNS


@dataclass
class Outcome:
    window_start: dt.datetime
    window_end: dt.datetime
    results: list[dict] = field(default_factory=list)

    @property
    def breaches(self) -> list[dict]:
        return [r for r in self.results if r["passed"] is False]

    @property
    def status(self) -> str:
        return "breached" if self.breaches else "passed"


def window(signal: Signal, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    w = signal.production_data.data_window if signal.production_data else None
    size = duration_seconds(w.lookback_window_size if w else "P7D")
    offset = duration_seconds(w.lookback_window_offset if w else "P0D")
    end = now - dt.timedelta(seconds=offset)
    return end - dt.timedelta(seconds=size), end


def production(spec: MonitorScheduleSpec, signal: Signal, assets: DataAssets,
               start: dt.datetime, end: dt.datetime) -> dict[str, list]:
    pd = signal.production_data
    if pd is not None and pd.input_data is not None:
        # collected data (kept by reference) is read over the data window, as the deployment's own is
        return assets.read(assets.get(pd.input_data.path), start, end)
    endpoint, deployment = split_target(spec.create_monitor.monitoring_target.endpoint_deployment_id)
    context = (pd.data_context if pd else None) or \
        ("model_outputs" if signal.type == "prediction_drift" else "model_inputs")
    return assets.read_collection(endpoint, deployment, context, start, end)


def features(signal: Signal, ref: dict, prod: dict) -> list[str]:
    skip = set(META_COLUMNS) | {signal.reference_data.target_column_name}
    if isinstance(signal.features, list):
        return [f for f in signal.features if f in ref]
    return [c for c in ref if c not in skip and c in prod]


def run(spec: MonitorScheduleSpec, assets: DataAssets, now: dt.datetime) -> Outcome:
    outcome = None
    for name, signal in spec.create_monitor.monitoring_signals.items():
        start, end = window(signal, now)
        outcome = outcome or Outcome(start, end)
        ref = assets.read(assets.get(signal.reference_data.input_data.path))
        prod = production(spec, signal, assets, start, end)
        for feature in features(signal, ref, prod):
            outcome.results += evaluate(name, signal, feature, ref[feature], prod.get(feature, []))
    return outcome


def evaluate(signal_name: str, signal: Signal, feature: str, ref: list, prod: list) -> list[dict]:
    kind = signal.feature_type_override.get(feature) or ("numerical" if drift.is_numerical(ref) else "categorical")
    thresholds = signal.thresholds().get(kind, {})
    if not thresholds:
        return []
    if signal.type == "data_quality":
        values = drift.quality(ref, prod, kind == "numerical", thresholds)
    elif kind == "numerical":
        values = drift.numerical_drift(drift.numbers(ref), drift.numbers(prod), thresholds)
    else:
        values = drift.categorical_drift(drift.categories(ref), drift.categories(prod), thresholds)
    out = []
    for metric, threshold in thresholds.items():
        value = values.get(metric, float("nan"))
        known = not math.isnan(value)
        passed = None if not known else (value >= threshold if metric in P_VALUE_METRICS else value <= threshold)
        out.append({"signal": signal_name, "signal_type": signal.type, "feature": feature, "kind": kind,
                    "metric": metric, "value": round(value, 6) if known else None, "threshold": threshold,
                    "passed": passed, "rows": len(prod)})
    return out
