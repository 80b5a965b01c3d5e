"""Faults a test injects into its own `redis-server`, and the facts it reads back.

Every fault here is the server's own behaviour, reached the way production reaches
it: memory full under `noeviction`, a primary demoted to a replica, a connection
killed, a message published, a user without a permission. The admin connections
are fresh `redis.asyncio` clients, closed after each call, so a killed or paused
connection of the hub never affects them.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import anyio

from fastapi_streamhub._events import terminal_data
from fastapi_streamhub._keys import KeySpace
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer


async def command(server: RedisServer, *args: Any, **client_options: Any) -> Any:
    """Run one command on `server` over a fresh connection."""
    async with server.client(**client_options) as admin:
        return await admin.execute_command(*args)  # type: ignore[no-untyped-call]


async def info(server: RedisServer, section: str) -> dict[str, Any]:
    async with server.client() as admin:
        fields: dict[str, Any] = await admin.info(section)
        return fields


async def error_count(server: RedisServer, code: str) -> int:
    """How many error replies with this code (`OOM`, `READONLY`) the server has sent,
    those a script caught with `pcall` included."""
    stat = (await info(server, "errorstats")).get(f"errorstat_{code}")
    return 0 if stat is None else int(stat["count"])


async def wait_for_errors(server: RedisServer, code: str, more_than: int) -> int:
    """Wait until the server has refused more than `more_than` commands with `code`."""
    count = more_than

    async def refused() -> bool:
        nonlocal count
        count = await error_count(server, code)
        return count > more_than

    await eventually(refused)
    return count


# -- memory --------------------------------------------------------------------------


async def fill_memory(server: RedisServer, *, filler_key: str = "test:filler") -> None:
    """Reach `maxmemory` under `noeviction`: every write that could grow memory is
    refused with `OOM` until `free_memory`."""
    used = int((await info(server, "memory"))["used_memory"])
    await command(server, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    await command(server, "CONFIG", "SET", "maxmemory", str(used + 512 * 1024))
    await command(server, "SETRANGE", filler_key, str(2 * 1024 * 1024), "x")
    assert int((await info(server, "memory"))["used_memory"]) > used + 512 * 1024


async def free_memory(server: RedisServer, *, filler_key: str = "test:filler") -> None:
    """Lift the limit `fill_memory` reached: the filler goes, the limit too."""
    await command(server, "DEL", filler_key)
    await command(server, "CONFIG", "SET", "maxmemory", "0")


# -- replication ---------------------------------------------------------------------

PRIMARY_ARGS = ("--repl-diskless-sync-delay", "0")
"""For a server that replicas will sync from: at once, not after the default 5 s."""


async def replicate(replica: RedisServer, primary_port: int) -> None:
    """Make `replica` a replica of 127.0.0.1:`primary_port` and wait until it is linked."""
    await command(replica, "REPLICAOF", "127.0.0.1", str(primary_port))

    async def linked() -> bool:
        return (await info(replica, "replication")).get("master_link_status") == "up"

    await eventually(linked)


async def wait_in_sync(primary: RedisServer, replica: RedisServer) -> None:
    """Wait until `replica` has processed everything `primary` has written so far."""
    target = int((await info(primary, "replication"))["master_repl_offset"])

    async def caught_up() -> bool:
        return int((await info(replica, "replication"))["slave_repl_offset"]) >= target

    await eventually(caught_up)


async def demote(primary: RedisServer, to: RedisServer) -> None:
    """`primary` becomes a read-only replica of `to`, which replicates it: the switch a
    managed service makes behind a DNS name. Writes are paused on `primary` while `to`
    catches up and takes over, so nothing written is lost; afterwards every write
    sent to `primary` is refused with `READONLY`."""
    await command(primary, "CLIENT", "PAUSE", "10000", "WRITE")
    try:
        await wait_in_sync(primary, to)
        await command(to, "REPLICAOF", "NO", "ONE")
        await command(primary, "REPLICAOF", "127.0.0.1", str(to.port))
    finally:
        await command(primary, "CLIENT", "UNPAUSE")


async def promote(server: RedisServer) -> None:
    """`server` is a primary again, with the data it holds."""
    await command(server, "REPLICAOF", "NO", "ONE")


# -- clients -------------------------------------------------------------------------


async def pubsub_client_ids(server: RedisServer) -> set[str]:
    """The ids of the connections in Pub/Sub mode."""
    listing: str = await command(server, "CLIENT", "LIST", "TYPE", "pubsub")
    return {field.removeprefix("id=") for field in listing.split() if field.startswith("id=")}


async def channels(server: RedisServer, pattern: str = "*") -> set[str]:
    """The channels some connection is subscribed to."""
    return set(await command(server, "PUBSUB", "CHANNELS", pattern))


async def add_user(server: RedisServer, name: str, password: str, *rules: str) -> str:
    """Create an ACL user with `rules` (after `on` and the password); its URL."""
    await command(server, "ACL", "SETUSER", name, "reset", "on", f">{password}", *rules)
    return f"redis://{name}:{password}@127.0.0.1:{server.port}/0"


async def publish_each(server: RedisServer, names: Iterable[str], *payloads: bytes) -> int:
    """Publish every payload on every channel; how many deliveries Redis made."""
    delivered = 0
    async with server.client(decode_responses=False) as admin:
        for name in names:
            for payload in payloads:
                delivered += int(await admin.publish(name, payload))
    return delivered


async def freeze(server: RedisServer, seconds: float) -> None:
    """SIGSTOP the server for `seconds` (the fault itself, not a wait), then SIGCONT."""
    await anyio.to_thread.run_sync(server.pause)
    try:
        await anyio.sleep(seconds)
    finally:
        await anyio.to_thread.run_sync(server.resume)


# -- what the server ran -------------------------------------------------------------


async def log_every_command(server: RedisServer) -> None:
    """From now on the slow log keeps every command (with its argument count)."""
    await command(server, "CONFIG", "SET", "slowlog-max-len", "1000000")
    await command(server, "CONFIG", "SET", "slowlog-log-slower-than", "0")
    await command(server, "SLOWLOG", "RESET")


async def script_calls(server: RedisServer, sha: str) -> list[int]:
    """The argument count of each `EVALSHA sha` since `log_every_command`, oldest first.

    The slow log keeps 31 arguments of a long command and, last, how many it left out."""
    entries = await command(server, "SLOWLOG", "GET", "-1")
    counts = []
    for entry in reversed(entries):
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry[3]]
        if len(args) > 1 and args[0].upper() == "EVALSHA" and args[1] == sha:
            more = args[-1].removeprefix("... (").removesuffix(" more arguments)")
            counts.append(len(args) - 1 + int(more) if more.isdigit() else len(args))
    return counts


async def cancel_unheard(server: RedisServer, user: str, key: str) -> int:
    """Cancel stream `key` as `hub.cancel` does (its script), in one transaction with
    `CLIENT KILL TYPE pubsub USER user`: that user's instances lose their Pub/Sub
    connection just before the cancel is published, so they cannot hear it. How many
    connections were killed."""
    names = KeySpace()
    keys = [names.state(key), names.events(key), names.event_channel(key)]
    keys.append(names.control_channel(key))
    script = resources.files("fastapi_streamhub.backends").joinpath("lua/finish.lua")
    data = terminal_data(reason="cancelled")
    async with server.client() as admin, admin.pipeline(transaction=True) as pipe:
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "USER", user)
        pipe.eval(script.read_text("utf-8"), 4, *keys, "", "cancelled", data, 60_000, 0)
        killed, row = await pipe.execute()
    assert row[0] == 1, f"{key} was not running: {row}"
    return int(killed)


async def subscribed_channels(server: RedisServer) -> set[str]:
    """Every channel named by a SUBSCRIBE the server ran since `log_every_command`."""
    entries = await command(server, "SLOWLOG", "GET", "-1")
    names: set[str] = set()
    for entry in entries:
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry[3]]
        if args and args[0].upper() == "SUBSCRIBE":
            names.update(args[1:])
    return names


async def scripts_run_by_user(server: RedisServer) -> dict[str, list[str]]:
    """The sha of each `EVALSHA` each ACL user's connections sent since
    `log_every_command` (connections still open: the slow log names a connection by
    its address)."""
    users: dict[str, str] = {}
    for line in (await command(server, "CLIENT", "LIST")).splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        users[fields["addr"]] = fields["user"]
    run: dict[str, list[str]] = {}
    for entry in await command(server, "SLOWLOG", "GET", "-1"):
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry[3]]
        if len(args) > 1 and args[0].upper() == "EVALSHA":
            run.setdefault(users.get(entry[4], "?"), []).append(args[1])
    return run


async def command_calls(admin: Any) -> dict[str, int]:
    """Calls per command so far (`INFO commandstats`, commands scripts ran included), on
    an admin client opened before the span measured."""
    stats = await admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
