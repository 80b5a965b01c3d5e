"""A TCP proxy in the test's event loop, for cutting real connections at chosen moments.

    async with TcpProxy(server.port) as proxy:           # listens on proxy.base_url
        proxy.cut_after_bytes(700, connections=2)        # the next 2 die mid-response
        await proxy.cut()                                # abort every open connection now
        proxy.upstream_port = other.port                 # send new connections elsewhere
        proxy.hold()                                     # new connections wait...
        proxy.release()                                  # ...until released
        proxy.refuse()                                   # new connections closed at once
        proxy.freeze()                                   # open connections stop forwarding...
        proxy.thaw()                                     # ...and go on where they stopped

A cut is real: the proxy closes both sockets (with an RST towards the client when
`reset=True`), so the client sees what it would see when a load balancer or the network
drops it. A freeze is a stalled network: both ends keep their connection and see
nothing more (not even the other end closing it) until `thaw()`. `connections`
counts the connections accepted so far.
"""

from __future__ import annotations

import socket
import struct
from types import TracebackType
from typing import Self

import anyio
import anyio.lowlevel
from anyio.abc import Listener, SocketAttribute, SocketStream, TaskGroup


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:`upstream_port`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self._group: TaskGroup | None = None
        self._listener: Listener[SocketStream] | None = None
        self._open: dict[int, tuple[anyio.CancelScope, SocketStream]] = {}
        self._cut_after: int | None = None
        self._cuts_left = 0
        self._gate: anyio.Event | None = None
        self._frozen: anyio.Event | None = None
        self._refusing = False
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started: use `async with TcpProxy(...)`")
        return self._port

    async def __aenter__(self) -> Self:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self._listener = listener
        self._port = listener.extra(SocketAttribute.local_port)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(listener.serve, self._handle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._group is None:
            return None
        self._group.cancel_scope.cancel()
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            if self._listener is not None:
                await self._listener.aclose()

    def cut_after_bytes(self, size: int, *, connections: int = 1) -> None:
        """Each of the next `connections` connections is cut once it has sent the client
        `size` bytes of the response (headers included): usually in the middle of an event."""
        self._cut_after, self._cuts_left = size, connections

    async def cut(self, *, reset: bool = True) -> None:
        """Abort every open connection; `reset` sends the client an RST instead of a FIN."""
        for scope, client in list(self._open.values()):
            if reset:
                _linger_zero(client)
            scope.cancel()
        await anyio.lowlevel.checkpoint()

    def hold(self) -> None:
        """New connections are accepted but not forwarded until `release()`."""
        self._gate = anyio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def freeze(self) -> None:
        """Open connections stop forwarding in both directions until `thaw()`; what
        arrives meanwhile is held, so neither end notices (an end that closes included)."""
        self._frozen = self._frozen or anyio.Event()

    def thaw(self) -> None:
        if self._frozen is not None:
            self._frozen.set()
            self._frozen = None

    async def _wait_thawed(self) -> None:
        while self._frozen is not None:
            await self._frozen.wait()

    def refuse(self, refusing: bool = True) -> None:
        """New connections are closed as soon as they are accepted (no HTTP answer)."""
        self._refusing = refusing

    async def _handle(self, client: SocketStream) -> None:
        self.connections += 1
        number = self.connections
        limit = self._take_cut()
        async with client:
            if self._gate is not None:
                await self._gate.wait()
            if self._refusing:
                return
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
            except OSError:
                return
            async with upstream:
                with anyio.CancelScope() as scope:
                    self._open[number] = (scope, client)
                    try:
                        async with anyio.create_task_group() as group:
                            group.start_soon(self._pipe, client, upstream, None, scope)
                            group.start_soon(self._pipe, upstream, client, limit, scope)
                    finally:
                        del self._open[number]

    def _take_cut(self) -> int | None:
        if self._cuts_left <= 0:
            return None
        self._cuts_left -= 1
        return self._cut_after

    async def _pipe(
        self,
        source: SocketStream,
        sink: SocketStream,
        limit: int | None,
        scope: anyio.CancelScope,
    ) -> None:
        """Copy until either side closes (which ends the whole connection) or `limit`
        bytes; while frozen, hold what arrives (and an end of stream) until thawed."""
        sent = 0
        try:
            async for data in source:
                await self._wait_thawed()
                if limit is not None and sent + len(data) >= limit:
                    await sink.send(data[: limit - sent])
                    break
                await sink.send(data)
                sent += len(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        await self._wait_thawed()
        scope.cancel()


def _linger_zero(stream: SocketStream) -> None:
    """Make the coming close an abortive one: the peer gets an RST."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
