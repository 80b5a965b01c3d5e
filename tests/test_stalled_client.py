"""A client that stops reading at the TCP level: a real socket with a small receive
buffer against a real uvicorn server.

Once the socket buffers are full, every send to that client blocks. Each send is
bounded by `send_timeout_s`: the server ends that response, and the producer and the
other readers of the stream never wait for it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest

from tests.apps.generator_app import token
from tests.support.polling import eventually
from tests.support.sse import SSE, SSEParser, read_events
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

SEND_TIMEOUT_S = 0.5
COUNT, PAD = 1500, 8000  # 12 MB: far more than the socket buffers and uvicorn hold
STALLED_LOG = "the client stopped reading"


@contextmanager
def stalled_reader(port: int, path: str) -> Iterator[socket.socket]:
    """An HTTP/1.0 GET of `path` (the body then ends when the server closes) on a
    socket with a 4 KiB receive buffer; it reads the status line, then nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.settimeout(10)
        status = b""
        while len(status) < 12 and (chunk := sock.recv(12 - len(status))):
            status += chunk
        assert status == b"HTTP/1.1 200"
        yield sock
    finally:
        sock.close()


def read_to_the_end(sock: socket.socket) -> bytes:
    """Everything left until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def events_of(raw: bytes) -> list[SSE]:
    body = raw.partition(b"\r\n\r\n")[2].decode()
    return SSEParser().feed(body)


async def test_a_client_that_stops_reading_is_ended_and_nobody_waits_for_it(
    make_uvicorn_server: Callable[..., UvicornServer],
) -> None:
    server = make_uvicorn_server(
        "tests.apps.generator_app:create_app",
        factory=True,
        env={"TEST_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S)},
        ready_path="/docs",
    )
    rid = "stall1"
    run = {"count": COUNT, "pad": PAD, "delay_ms": 1}
    async with server.client() as http, anyio.create_task_group() as group:
        everything: list[SSE] = []

        async def follow() -> None:
            everything.extend(
                await read_events(http, "POST", f"/gen/{rid}", json=run, timeout_s=60)
            )

        group.start_soon(follow)

        async def started() -> bool:
            return bool((await http.get(f"/debug/runs/{rid}")).json()["yielded"])

        await eventually(started)
        with stalled_reader(server.port, f"/gen/{rid}/stream") as sock:

            async def ended() -> bool:
                return STALLED_LOG in server.logs()

            await eventually(ended, timeout_s=30)
            with anyio.fail_after(30):
                seen = events_of(await anyio.to_thread.run_sync(read_to_the_end, sock))
    assert [e.json() for e in everything[:-1]] == [token(i, PAD) for i in range(COUNT)]
    assert everything[-1].event == "done"
    async with server.client() as http:
        record = (await http.get(f"/debug/runs/{rid}")).json()
    assert record == {"starts": 1, "yielded": COUNT, "finally": 1}
    assert 0 < len(seen) < COUNT, "the stalled response was ended before the stream's end"
    assert seen == everything[: len(seen)]
    assert server.logs().count(STALLED_LOG) == 1
    assert "Traceback" not in server.logs()
