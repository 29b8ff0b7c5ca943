"""Prometheus metrics of the scoring service."""

from __future__ import annotations


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
            "serve_model_info", "Loaded model versions by role.", ["role", "version"], registry=self.registry
        )
        self.ready = Gauge("serve_ready", "1 when the served models match the registry.", registry=self.registry)
        self.log_dropped = Gauge("serve_prediction_log_dropped", "Log rows dropped.", registry=self.registry)
        self.log_pending = Gauge("serve_prediction_log_pending", "Log rows queued.", registry=self.registry)
