"""The real service app in the demo's process, answering requests on its own event-loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Params

ENV = "production"
CONCURRENCY = 64
FLUSH_TIMEOUT_SECONDS = 30.0


class InProcessService:
    """The real service app on its own event-loop thread, for the lifetime of one deployment state.

    Requests go through the ASGI app (validation, routing, batching, prediction log) without a
    socket; CONCURRENCY requests are in flight at once so the batcher scores them together.
    """

    def __init__(self, *, params: Params, log_path: Path, concurrency: int = CONCURRENCY) -> None:
        from pipeline.core import predlog
        from pipeline.delivery import serve

        log = params.serve.log
        self.params = params
        self.writer = predlog.LogWriter(
            store=predlog.open_store(str(log_path)),
            flush_rows=log.flush_rows,
            flush_seconds=log.flush_seconds,
            queue_rows=log.queue_rows,
        )
        self.app = serve.create_app(
            params=params,
            env=ENV,
            source=serve.RegistrySource(params=params, env=ENV),
            profile=serve.load_profile(params=params),
            writer=self.writer,
            poll=False,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-service", daemon=True)
        self.stack = contextlib.AsyncExitStack()
        self.client: Any = None
        self.sent = 0
        self.concurrency = concurrency

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _start(self) -> None:
        import httpx

        await self.stack.enter_async_context(self.app.router.lifespan_context(self.app))
        transport = httpx.ASGITransport(app=self.app)
        self.client = await self.stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://demo")
        )

    def __enter__(self) -> InProcessService:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing the lifespan flushes and closes the prediction log.
        self._run(self.stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    async def _send(self, rows: pd.DataFrame) -> dict[int, int]:
        from pipeline.core.schema import request_features

        params = self.params
        id_column = params.base.id_column
        statuses: dict[int, int] = {}
        limit = asyncio.Semaphore(self.concurrency)

        async def one(record: Mapping[Any, Any]) -> None:
            # As a client sends it: a missing value is null (JSON has no NaN), audit-only columns
            # ride along for the log.
            body = {"association_id": str(record[id_column]), "features": request_features(record, params.data)}
            async with limit:
                response = await self.client.post("/predict", json=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        sent = [c for c in (id_column, *params.data.columns) if c in rows.columns]
        await asyncio.gather(*(one(r) for r in rows[sent].to_dict("records")))
        return statuses

    def send(self, rows: pd.DataFrame) -> dict[int, int]:
        """Send the rows; return once their answers are in the prediction log."""
        statuses = self._run(self._send(rows))
        self.sent += len(rows)
        deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
        stats = self.writer.stats
        while stats.written + stats.dropped < self.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        return statuses
