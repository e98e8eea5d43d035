"""The monitoring documents, with Azure ML v2's field names: a deployment's `data_collector`,
a data asset (`az ml data create -f`), a model monitor schedule (`az ml schedule create -f`);
and their time arithmetic: ISO 8601 durations (`P7D`), when a trigger fires next."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..domain.errors import InvalidInput
from ..domain.names import check_name, check_version
from .validation import Spec

ROLLING_RATES = ("minute", "hour", "day")
# What the gateway collects for a model without code (with code: request and response only, and
# score.py's Collector the rest)
PAYLOAD_COLLECTIONS = ("request", "response", "model_inputs", "model_outputs")
DEFAULT_RETENTION_DAYS = 30


def _lower(v):
    return v.lower() if isinstance(v, str) else v


class RequestLogging(Spec):
    capture_headers: list[str] = Field(default_factory=list)


class Collection(Spec):
    AZURE_ONLY = frozenset({"data", "client_id"})
    enabled: bool = False
    sampling_rate: float | None = Field(default=None, ge=0.0, le=1.0)   # None: the collector's


class DataCollector(Spec):
    """Azure's deployment `data_collector` block; `retention_days` is modelfleet's."""
    collections: dict[str, Collection] = Field(default_factory=dict)
    rolling_rate: Literal["minute", "hour", "day"] = "hour"
    sampling_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    request_logging: RequestLogging = Field(default_factory=RequestLogging)
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=3650)

    _rate = field_validator("rolling_rate", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @field_validator("collections", mode="before")
    @classmethod
    def _names(cls, v):
        if not isinstance(v, dict):
            raise ValueError("must be a mapping of collection names to settings")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", str(name)):
                raise ValueError(f"collection name {name!r} must be letters, digits, '_', '.', '-' (64 at most)")
        return {str(k).lower(): ({} if c is None else c) for k, c in v.items()}

    def enabled(self) -> dict[str, float]:
        """{collection: sampling rate} for the enabled ones."""
        return {n: (c.sampling_rate if c.sampling_rate is not None else self.sampling_rate)
                for n, c in self.collections.items() if c.enabled}


def data_collector(v) -> DataCollector | None:
    """A deployment's `data_collector` as validated settings (the hook specs.py calls)."""
    if v is None or isinstance(v, DataCollector):
        return v
    if not isinstance(v, dict):
        raise ValueError("must be a mapping with collections")
    return DataCollector.model_validate(v)


# -- data assets -----------------------------------------------------------------------------

DATA_TYPES = ("uri_file", "uri_folder", "mltable")


class DataAssetSpec(Spec):
    AZURE_ONLY = frozenset({"datastore", "properties", "stage"})
    name: str
    version: str | None = None
    type: Literal["uri_file", "uri_folder", "mltable"] = "uri_folder"
    path: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return _checked(check_name, v)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v):
        return None if v is None else _checked(check_version, str(v))

    _type = field_validator("type", mode="before")(classmethod(lambda cls, v: _lower(v)))


DATA_SUFFIXES = (".csv", ".parquet")


def check_data_layout(type_: str, given: str, paths: list[str]) -> None:
    """Refuse files that are not what a data asset's `type` says, in one line naming `given` (the
    path as the user wrote it). `paths` are the snapshot's relative paths: a file keeps its own
    name, a folder's files sit under the folder's name (files/digests.py's walk). Checked by the
    client before it uploads and by the server before it registers."""
    one_file = len(paths) == 1 and "/" not in paths[0]
    if type_ == "uri_file":
        if not (one_file and paths[0].endswith(DATA_SUFFIXES)):
            raise InvalidInput(f"path {given!r}: a uri_file is one .csv or .parquet file")
        return
    if one_file or any("/" not in p for p in paths):
        raise InvalidInput(f"path {given!r}: a {type_} is a folder")
    if type_ == "mltable" and not any(p.split("/", 1)[1] == "MLTable" for p in paths):
        raise InvalidInput(f"path {given!r}: an mltable folder holds an MLTable file")


def _checked(check, v):
    try:
        return check(v)
    except InvalidInput as e:
        raise ValueError(e.message) from None


# -- monitor schedules -----------------------------------------------------------------------

FREQUENCIES = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
NUMERICAL_METRICS = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
                     "two_sample_kolmogorov_smirnov_test")
CATEGORICAL_METRICS = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test")
QUALITY_METRICS = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
# Metrics that are p-values: a feature breaches when the value falls BELOW the threshold.
P_VALUE_METRICS = ("two_sample_kolmogorov_smirnov_test", "pearsons_chi_squared_test")
DEFAULT_DRIFT_THRESHOLDS = {"numerical": {"jensen_shannon_distance": 0.1},
                            "categorical": {"jensen_shannon_distance": 0.1}}
DEFAULT_QUALITY_THRESHOLDS = {"numerical": {"null_value_rate": 0.05, "data_type_error_rate": 0.05,
                                            "out_of_bounds_rate": 0.05},
                              "categorical": {"null_value_rate": 0.05, "data_type_error_rate": 0.05,
                                              "out_of_bounds_rate": 0.05}}


class Trigger(Spec):
    AZURE_ONLY = frozenset({"time_zone", "timezone"})
    type: Literal["recurrence", "cron"]
    frequency: Literal["minute", "hour", "day", "week", "month"] | None = None
    interval: int = Field(default=1, ge=1)
    expression: str | None = None
    schedule: dict | None = None      # Azure's recurrence pattern (hours, minutes, week_days)
    start_time: str | None = None
    end_time: str | None = None

    _type = field_validator("type", "frequency", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @model_validator(mode="after")
    def _complete(self):
        if self.type == "recurrence" and self.frequency is None:
            raise ValueError("a recurrence trigger needs frequency (minute, hour, day, week, month)")
        if self.type == "cron":
            if not self.expression:
                raise ValueError("a cron trigger needs expression")
            check_cron(self.expression)
        return self


class InputData(Spec):
    AZURE_ONLY = frozenset({"mode"})
    path: str
    type: Literal["uri_file", "uri_folder", "mltable"] | None = None


class DataWindow(Spec):
    lookback_window_size: str = "P7D"
    lookback_window_offset: str = "P0D"

    @field_validator("lookback_window_size", "lookback_window_offset")
    @classmethod
    def _duration(cls, v):
        duration_seconds(v)
        return v


class SignalData(Spec):
    AZURE_ONLY = frozenset({"pre_processing_component", "data_column_names"})
    input_data: InputData | None = None
    data_context: str | None = None
    target_column_name: str | None = None
    data_window: DataWindow = Field(default_factory=DataWindow)


class Signal(Spec):
    AZURE_ONLY = frozenset({"alert_enabled", "properties"})
    type: Literal["data_drift", "prediction_drift", "data_quality"]
    production_data: SignalData | None = None
    reference_data: SignalData | None = None
    features: list[str] | dict | str | None = None
    feature_type_override: dict[str, Literal["numerical", "categorical"]] = Field(default_factory=dict)
    metric_thresholds: dict | list | None = None

    @field_validator("metric_thresholds")
    @classmethod
    def _thresholds(cls, v):
        if v is None:
            return None
        if isinstance(v, list):   # the SDK's list form: [{applicable_feature_type, metric_name, threshold}]
            out: dict = {}
            for item in v:
                kind = str(item.get("applicable_feature_type", "numerical")).lower()
                out.setdefault(kind, {})[item["metric_name"]] = item["threshold"]
            v = out
        for kind, metrics in v.items():
            if kind not in ("numerical", "categorical"):
                raise ValueError(f"{kind!r}: use numerical or categorical")
            if not isinstance(metrics, dict):
                raise ValueError(f"{kind}: must be a mapping of metric names to thresholds")
            for name, value in metrics.items():
                if name not in NUMERICAL_METRICS + CATEGORICAL_METRICS + QUALITY_METRICS:
                    raise ValueError(f"{kind}.{name}: not a metric; use one of "
                                     f"{', '.join(dict.fromkeys(NUMERICAL_METRICS + CATEGORICAL_METRICS + QUALITY_METRICS))}")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{kind}.{name}: the threshold must be a number >= 0, got {value!r}")
        return v

    @model_validator(mode="after")
    def _kinds(self):
        allowed = QUALITY_METRICS if self.type == "data_quality" else NUMERICAL_METRICS + CATEGORICAL_METRICS
        for kind, metrics in (self.metric_thresholds or {}).items():
            for name in metrics:
                if name not in allowed or (kind == "categorical" and name in NUMERICAL_METRICS
                                           and name not in CATEGORICAL_METRICS) or \
                        (kind == "numerical" and name == "pearsons_chi_squared_test"):
                    raise ValueError(f"metric_thresholds.{kind}.{name}: not a {kind} metric of {self.type}")
        return self

    def thresholds(self) -> dict:
        if self.metric_thresholds:
            return self.metric_thresholds
        return DEFAULT_QUALITY_THRESHOLDS if self.type == "data_quality" else DEFAULT_DRIFT_THRESHOLDS


class MonitoringTarget(Spec):
    ml_task: str | None = None
    endpoint_deployment_id: str | None = None

    @field_validator("endpoint_deployment_id")
    @classmethod
    def _target(cls, v):
        if v is None:
            return None
        endpoint, deployment = split_target(v)
        return f"azureml:{endpoint}:{deployment}"


def split_target(v: str) -> tuple[str, str]:
    """`azureml:ENDPOINT:DEPLOYMENT` (Azure's short form) -> (endpoint, deployment)."""
    parts = v.removeprefix("azureml:").split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{v!r}: use azureml:ENDPOINT:DEPLOYMENT")
    return parts[0], parts[1]


class AlertNotification(Spec):
    emails: list[str] = Field(default_factory=list)      # kept; modelfleet sends no mail
    webhooks: list[str] = Field(default_factory=list)    # modelfleet's: POSTed once per run that breaches

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, v):
        for url in v:
            if not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return v

    NOTED = {"emails": "modelfleet sends no mail; use webhooks"}

    def _noted(self, at: str = "") -> list[tuple[str, str]]:
        return [(f"{at}emails", self.NOTED["emails"])] if self.emails else []


class MonitorDefinition(Spec):
    AZURE_ONLY = frozenset({"compute", "monitoring_target_id"})
    monitoring_target: MonitoringTarget = Field(default_factory=MonitoringTarget)
    monitoring_signals: dict[str, Signal]
    alert_notification: AlertNotification = Field(default_factory=AlertNotification)

    @field_validator("monitoring_signals")
    @classmethod
    def _some(cls, v):
        if not v:
            raise ValueError("at least one signal is needed")
        return v

    @model_validator(mode="after")
    def _data(self):
        for name, s in self.monitoring_signals.items():
            if s.reference_data is None or s.reference_data.input_data is None:
                raise ValueError(f"monitoring_signals.{name}.reference_data.input_data: required")
            has_production = s.production_data is not None and s.production_data.input_data is not None
            if not has_production and self.monitoring_target.endpoint_deployment_id is None:
                raise ValueError(f"monitoring_signals.{name}.production_data: required without "
                                 "monitoring_target.endpoint_deployment_id")
        return self


class MonitorScheduleSpec(Spec):
    AZURE_ONLY = frozenset({"display_name", "properties"})
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    trigger: Trigger
    create_monitor: MonitorDefinition

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return _checked(check_name, v)


# -- time ------------------------------------------------------------------------------------
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration_seconds(text: str) -> int:
    m = _DURATION.match(str(text).upper())
    if not m or text.upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P7D, PT12H or P0D")
    w, d, h, mi, s = (int(x or 0) for x in m.groups())
    return (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s


def check_cron(expression: str) -> None:
    croniter = _croniter()
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron expression (minute hour day month weekday)")


def _croniter():
    try:
        from croniter import croniter
    except ImportError:
        raise InvalidInput("cron triggers need croniter: pip install 'modelfleet[monitoring]'") from None
    return croniter


def next_run(trigger, after: dt.datetime) -> dt.datetime:
    """The first time after `after` (UTC) that the trigger fires."""
    if trigger.type == "cron":
        return _croniter()(trigger.expression, after).get_next(dt.datetime)
    start = parse_time(trigger.start_time) if trigger.start_time else None
    period = dt.timedelta(seconds=_period_s(trigger))
    if start is not None and start > after:
        return start
    base = start or after
    steps = int((after - base) / period) + 1
    return base + steps * period


def _period_s(trigger) -> int:
    return FREQUENCIES[trigger.frequency] * trigger.interval


def parse_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
