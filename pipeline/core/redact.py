"""Credentials never leave the process: every URL the project prints, logs or writes passes
through `redact`, and `RedactingFilter` does the same for log records.

Tracking servers, prediction-log databases and DVC remotes are named by URLs that may carry
`user:password@` or a secret in the query string; teams paste them into environment variables
that end up in error messages, reports and lineage.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# scheme://userinfo@ -- userinfo stops at the first '/', whitespace or quote, so a path with
# '@' in it after the host is left alone.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
# ?password=...&  or  ;token=...  (SQLAlchemy and libpq accept credentials as parameters)
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|token|secret|access_key|secret_key|sig|api_key)=)(?P<value>[^&;\s'\"<>]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the userinfo of every URL and every secret-looking query value masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's final message, arguments included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter() -> None:
    """Attach the filter to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
