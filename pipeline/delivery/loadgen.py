"""A small bounded HTTP/1.1 load generator for loopback tests and benchmarks: a fixed number of
POST requests over a fixed number of keep-alive connections, one request in flight on each.

Written on raw asyncio streams because a full HTTP client costs more CPU per request than the
service under test, and on two cores the client's overhead would be measured as the server's.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    requests: int
    connections: int
    seconds: float
    statuses: dict[int, int]
    failures: int
    latencies_ms: Sequence[float] = field(repr=False)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), q)) if self.latencies_ms else float("nan")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "connections": self.connections,
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "req_per_s": round(self.throughput, 1),
            "status_5xx": self.server_errors,
            "failures": self.failures,
        }


def _request(*, host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, connection kept open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


async def _connection(
    *,
    host: str,
    port: int,
    payloads: Sequence[bytes],
    tickets: itertools.count[int],
    total: int,
    latencies: list[float],
    statuses: Counter[int],
    failures: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (ticket := next(tickets)) < total:
            payload = payloads[ticket % len(payloads)]
            started = time.perf_counter()
            try:
                writer.write(payload)
                status, keep = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                failures.append(ticket)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def run_load(
    *, host: str, port: int, path: str, bodies: Sequence[bytes], requests: int, connections: int
) -> LoadResult:
    """Send exactly `requests` POSTs (bodies in turn) over `connections` connections."""
    payloads = [_request(host=host, port=port, path=path, body=b) for b in bodies]
    tickets = itertools.count()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(
                host=host,
                port=port,
                payloads=payloads,
                tickets=tickets,
                total=requests,
                latencies=latencies,
                statuses=statuses,
                failures=failures,
            )
            for _ in range(connections)
        )
    )
    seconds = time.perf_counter() - started
    return LoadResult(requests, connections, seconds, dict(statuses), len(failures), latencies)


def load(*, host: str, port: int, path: str, bodies: Sequence[bytes], requests: int, connections: int) -> LoadResult:
    return asyncio.run(
        run_load(host=host, port=port, path=path, bodies=bodies, requests=requests, connections=connections)
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ok(*, url: str, timeout: float, process: object | None = None) -> float:
    """Seconds until GET url answers 200; raises TimeoutError (or RuntimeError if the process died)."""
    import subprocess

    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if isinstance(process, subprocess.Popen) and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")
