"""Prometheus metrics of the scoring service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Metric

    from pipeline.core.predlog import LogWriter


class Metrics:
    """One registry per app, so several apps (tests) never collide on metric names."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serve_requests",
            "Scored requests by model version, role and HTTP status.",
            ["model_version", "role", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serve_request_latency_seconds",
            "Time from request to answer, per model version.",
            ["model_version"],
            buckets=(0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.errors = Counter("serve_errors", "Refused or failed requests by kind.", ["kind"], registry=self.registry)
        self.flags = Counter(
            "serve_humility_flags", "Humility flags raised, by rule.", ["rule"], registry=self.registry
        )
        self.batch = Histogram(
            "serve_batch_rows",
            "Rows per predict_proba call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.model = Gauge(
            "serve_model_info",
            "Loaded model versions by role, and the path scoring each (onnx or sklearn).",
            ["role", "version", "serving_path"],
            registry=self.registry,
        )
        self.ready = Gauge("serve_ready", "1 when a model is loaded (what /ready answers).", registry=self.registry)
        self.current = Gauge(
            "serve_models_current", "1 when the loaded models are the ones the registry names.", registry=self.registry
        )
        self.registry_reachable = Gauge(
            "serve_registry_reachable", "1 when the last read of the registry worked.", registry=self.registry
        )
        self.registry_last_success = Gauge(
            "serve_registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry read (0 before the first).",
            registry=self.registry,
        )
        self.disconnects = Counter(
            "serve_client_disconnects",
            "Requests whose client went away before its body arrived.",
            registry=self.registry,
        )
        self.log_pending = Gauge("serve_prediction_log_pending", "Log rows queued.", registry=self.registry)

    def watch_log(self, *, writer: LogWriter) -> None:
        """Export the prediction-log writer's counters (written, dropped, reopened) on every scrape."""
        self.registry.register(_LogCounters(writer))


class _LogCounters:
    """The writer counts on its own thread; a collector reads those counts at scrape time, so
    they are Prometheus counters (rate() works) without a second copy to keep in step.
    """

    def __init__(self, writer: LogWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        stats = self.writer.snapshot()
        for name, text, value in (
            ("serve_prediction_log_written", "Prediction log rows written.", stats.written),
            ("serve_prediction_log_dropped", "Prediction log rows lost: queue full, write failed.", stats.dropped),
            ("serve_prediction_log_reopened", "Deleted or replaced log files reopened.", stats.reopened),
        ):
            yield CounterMetricFamily(name, text, value=value)
