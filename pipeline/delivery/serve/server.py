"""The serving process: the listening socket, the prediction log writer and uvicorn."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.core.config import Params
from pipeline.delivery.serve.app import create_app
from pipeline.delivery.serve.inputs import load_profile
from pipeline.delivery.serve.models import ModelSource

logger = logging.getLogger(__name__)


def listening_socket(*, host: str, port: int) -> Any:
    """A bound socket with TCP_NODELAY set before listen: Linux copies it to every accepted
    connection, so small answers are never held back by Nagle's algorithm.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def guarded_protocol(*, stall_timeout_s: float) -> type[Any]:
    """The h11 protocol of uvicorn, closing a connection on which the client owes bytes while no
    request is being answered (a request head not yet complete, or a body nobody reads after an
    early answer) for stall_timeout_s since its first byte (or since the connection, if silent).

    uvicorn bounds only the idle time between requests, and its keep-alive timer stops at the
    first byte: a client trickling one header line at a time would hold a connection for ever.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        stall_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            super().connection_lost(exc)

        def _waiting_on_client(self) -> bool:
            # While the app answers a request it bounds its own reads (the body timeout).
            return (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing()

        def _watch(self) -> None:
            if not self._waiting_on_client():
                self._stop()
            elif self.stall_timer is None and self.timeout_keep_alive_task is None:
                # Armed once: trickled bytes do not push the deadline back.
                self.stall_timer = self.loop.call_later(stall_timeout_s, self._expired)

        def _stop(self) -> None:
            if self.stall_timer is not None:
                self.stall_timer.cancel()
                self.stall_timer = None

        def _expired(self) -> None:
            self.stall_timer = None
            if self._waiting_on_client():
                logger.debug("closing a connection stalled for %s s", stall_timeout_s)
                self.transport.close()

    return GuardedH11Protocol


def run(
    *,
    params: Params,
    env: str,
    host: str,
    port: int,
    source: ModelSource,
    log_url: str | None = None,
) -> None:
    """Serve until interrupted: one uvicorn worker (more workers lose TCP_NODELAY and, on two
    cores, only compete with the batcher).
    """
    import uvicorn

    from pipeline.core.predlog import LogWriter, open_store, resolve_url
    from pipeline.core.redact import redact

    url = resolve_url(configured=params.serve.log.path, override=log_url)
    log = params.serve.log
    writer = LogWriter(
        store=open_store(url), flush_rows=log.flush_rows, flush_seconds=log.flush_seconds, queue_rows=log.queue_rows
    )
    app = create_app(params=params, env=env, source=source, profile=load_profile(params=params), writer=writer)
    sock = listening_socket(host=host, port=port)
    # The log URL may carry the database password; this line ends up in service logs.
    logger.info("serving env %s on http://%s:%s, prediction log %s", env, host, sock.getsockname()[1], redact(url))
    config = uvicorn.Config(
        app,
        workers=1,
        loop="asyncio",
        http=guarded_protocol(stall_timeout_s=params.serve.read_timeout_seconds),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=params.serve.keep_alive_seconds,
    )
    uvicorn.Server(config).run(sockets=[sock])
