from __future__ import annotations

import logging

import pytest

from pipeline.core.redact import MASK, RedactingFilter, redact

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql+psycopg2://mlflow:{SECRET}@db.internal:5432/mlflow",
        f"http://admin:{SECRET}@127.0.0.1:5000",
        f"error: cannot reach https://ci-bot:{SECRET}@tracking.example.com/api (timeout)",
        f"sqlite:///x.db?password={SECRET}",
        f"postgresql://db/log?sslmode=require&password={SECRET}",
        f"https://bucket.example.com/blob?sv=1&sig={SECRET}",
        f"s3://{SECRET}@bucket/path",
    ],
)
def test_secrets_are_masked(text: str) -> None:
    out = redact(text)
    assert SECRET not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///mlflow.db",
        "http://127.0.0.1:5000/#/models/demo",
        "models:/demo@production-champion",
        "git@github.com:org/repo.git is a path, not a URL with userinfo",
        "reports/drift/drift.md",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_the_log_filter_masks_arguments_too() -> None:
    record = logging.LogRecord("pipeline", logging.INFO, __file__, 1, "tracking at %s", (f"http://u:{SECRET}@h",), None)
    RedactingFilter().filter(record)
    assert SECRET not in record.getMessage()
    assert "http://***@h" in record.getMessage()
