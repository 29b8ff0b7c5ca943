"""POST /feedback: labels that arrive after the prediction, by association id.

Body: one object or a list of `{"association_id": "...", "label": <a target value>,
"observed_at": "<ISO 8601>"?}`. The whole batch is checked first (any problem: 422, nothing
stored), then written in one short transaction on a thread of its own: the event loop never
waits on the database, and the predict path (whose rows go through the log writer's queue)
never waits on a label. The answer counts what was stored and says which ids matched a logged
prediction; an unmatched label is stored all the same (its prediction may still sit in the
writer's queue, or come from another replica).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request, Response

from pipeline.core.config import Params
from pipeline.core.predlog.labels import (
    FEEDBACK_SOURCE,
    LabelRecord,
    LabelWrite,
    binary_label,
    id_problem,
    label_problem,
    parse_time,
    raw_text,
    time_problem,
)
from pipeline.core.predlog.records import PredictionLogError
from pipeline.core.redact import redact
from pipeline.delivery.serve.http import json_response, receive_json

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from pipeline.core.predlog import LogWriter

logger = logging.getLogger(__name__)

FIELDS = ("association_id", "label", "observed_at")
ERR_EMPTY = "empty request body: send {association_id, label} or a list of them"
ERR_NO_LABELS = "an empty list: send at least one {association_id, label}"
ERR_BATCH = "{n} labels in one request; at most {limit} (params labels.max_batch)"
ERR_NO_LOG = "this service has no prediction log: labels have nowhere to go"
ERR_NOT_OBJECT = "must be an object with association_id and label"


class LabelStore(Protocol):
    def write_labels(self, records: Sequence[LabelRecord], *, duplicates: str, received_at: float) -> LabelWrite: ...

    def close(self) -> None: ...


def _problem(where: str, field: str | None, message: str, kind: str = "value_error") -> dict[str, str]:
    name = ".".join(p for p in (where, field) if p)
    return {"field": name or "(body)", "message": message, "type": kind}


def parse_labels(
    items: Sequence[Any], *, single: bool, params: Params, now: float
) -> tuple[list[LabelRecord], list[dict[str, str]]]:
    """Records from the decoded body, or every field error (in /predict's shape: field, message,
    type; a list's items are named by index, `0.label`).
    """
    records: list[LabelRecord] = []
    problems: list[dict[str, str]] = []
    for n, item in enumerate(items):
        record, found = _item(item, where="" if single else str(n), params=params, now=now)
        problems += found
        if record is not None:
            records.append(record)
    return records, problems


def _item(item: Any, *, where: str, params: Params, now: float) -> tuple[LabelRecord | None, list[dict[str, str]]]:
    if not isinstance(item, dict):
        return None, [_problem(where, None, ERR_NOT_OBJECT, "model_type")]
    problems = [_problem(where, str(k), "unknown field", "extra_forbidden") for k in item if k not in FIELDS]
    problems += [_problem(where, k, "field required", "missing") for k in FIELDS[:2] if k not in item]
    association_id, raw = item.get("association_id"), item.get("label")
    if "association_id" in item:
        why = id_problem(association_id, max_chars=params.serve.max_association_id_chars)
        if why is not None:
            problems.append(_problem(where, "association_id", why))
    label = binary_label(raw, base=params.base)
    if "label" in item and label is None:
        problems.append(_problem(where, "label", label_problem(raw, base=params.base)))
    observed_at = now
    if item.get("observed_at") is not None:
        try:
            observed_at = parse_time(item["observed_at"])
            why = time_problem(observed_at, now=now, retention_days=params.serve.log.retention_days)
        except ValueError as exc:
            why = str(exc)
        if why is not None:
            problems.append(_problem(where, "observed_at", why))
    if problems or label is None:
        return None, problems
    return LabelRecord(str(association_id), label, raw_text(raw), observed_at, FEEDBACK_SOURCE), []


def answer(outcome: LabelWrite, *, duplicates: str) -> dict[str, Any]:
    return {
        "received": outcome.rows,
        "inserted": outcome.inserted,
        "unchanged": outcome.unchanged,
        "refused": [
            {
                "association_id": r.association_id,
                "label": r.label,
                "stored_label": r.stored_label,
                "stored_source": r.stored_source,
            }
            for r in outcome.refused
        ],
        "duplicates": duplicates,
        "matched": list(outcome.matched),
        "unmatched": list(outcome.unmatched),
    }


class Feedback:
    """The /feedback endpoint's state: the log's store (the writer's) and the one thread that
    writes labels to it, so concurrent requests queue here instead of on the database lock.
    """

    def __init__(self, *, params: Params, writer: LogWriter | None, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter

        self.params = params
        store = None if writer is None else writer.store
        self.store: LabelStore | None = store if hasattr(store, "write_labels") else None  # type: ignore[assignment]
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")
        self.errors = Counter(
            "serve_feedback_errors", "Refused /feedback requests by kind.", ["kind"], registry=registry
        )
        self.labels = Counter(
            "serve_feedback_labels",
            "Labels received on /feedback by outcome (inserted, unchanged, refused) and match (matched, unmatched ids).",
            ["outcome"],
            registry=registry,
        )

    async def handle(self, request: Request) -> Response:
        params = self.params
        body = await receive_json(request, serve=params.serve, refused=lambda kind: self.errors.labels(kind).inc())
        if isinstance(body, Response):
            return body
        if not body.strip():
            return self._refuse("empty", ERR_EMPTY, 400)
        try:
            payload = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            return self._refuse("malformed", f"malformed JSON: {exc}", 400)
        single = not isinstance(payload, list)
        items = [payload] if single else payload
        if not items:
            return self._refuse("invalid", ERR_NO_LABELS, 422)
        if len(items) > params.labels.max_batch:
            return self._refuse("too_many", ERR_BATCH.format(n=len(items), limit=params.labels.max_batch), 413)
        now = time.time()
        records, problems = parse_labels(items, single=single, params=params, now=now)
        if problems:
            self.errors.labels("invalid").inc()
            detail = f"invalid input: {len(problems)} field error(s)"
            return json_response({"detail": detail, "errors": problems}, 422)
        if self.store is None:
            return self._refuse("no_log", ERR_NO_LOG, 503)
        duplicates = params.labels.duplicates
        write = partial(self.store.write_labels, records, duplicates=duplicates, received_at=now)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self.executor, write)
        except PredictionLogError as exc:
            # The database is down or locked: the sender should retry, which is safe (idempotent).
            return self._refuse("store", redact(str(exc)), 503)
        for name, count in (
            ("inserted", outcome.inserted),
            ("unchanged", outcome.unchanged),
            ("refused", len(outcome.refused)),
            ("matched", len(outcome.matched)),
            ("unmatched", len(outcome.unmatched)),
        ):
            self.labels.labels(name).inc(count)
        return json_response(answer(outcome, duplicates=duplicates))

    def _refuse(self, kind: str, detail: str, status: int) -> Response:
        self.errors.labels(kind).inc()
        return json_response({"detail": detail}, status)

    def close(self) -> None:
        """Close this thread's connection to the store (the writer closes its own), then the thread."""
        if self.store is not None:
            try:
                self.executor.submit(self.store.close).result(timeout=30)
            except Exception as exc:  # closing must not hide the service's own shutdown
                logger.warning("feedback: closing the label store failed: %s", redact(str(exc)))
        self.executor.shutdown(wait=False, cancel_futures=True)
