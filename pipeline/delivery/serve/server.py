"""The serving process: the listening socket, the prediction log writer and uvicorn."""

from __future__ import annotations

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

    url = resolve_url(configured=params.serve.log.path, override=log_url)
    log = params.serve.log
    writer = LogWriter(
        store=open_store(url), flush_rows=log.flush_rows, flush_seconds=log.flush_seconds, queue_rows=log.queue_rows
    )
    app = create_app(params=params, env=env, source=source, profile=load_profile(params=params), writer=writer)
    sock = listening_socket(host=host, port=port)
    logger.info("serving env %s on http://%s:%s, prediction log %s", env, host, sock.getsockname()[1], url)
    config = uvicorn.Config(
        app,
        workers=1,
        loop="asyncio",
        http="h11",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[sock])
