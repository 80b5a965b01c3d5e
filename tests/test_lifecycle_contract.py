"""What a stream's life promises on both backends, where the suite used to look away
(issue 9, "Tests the suite lacks"): how long a finished stream stays readable, and
that a cancel really stops a generator that is not writing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pytest

from fastapi_streamhub import SessionNotFoundError, StreamHub
from fastapi_streamhub._runner import drive
from tests.support.polling import eventually
from tests.support.streams import assert_exact, collect, stalled

pytestmark = pytest.mark.anyio

ENDS: dict[str, Callable[[StreamHub, Any], Any]] = {
    "done": lambda hub, producer: producer.close(),
    "error": lambda hub, producer: producer.fail("The model gave up."),
    "cancelled": lambda hub, producer: hub.cancel(producer.key),
}


class Renewals:
    """Tells when the hub's lease renewals run (the backend's own call, timed)."""

    def __init__(self, hub: StreamHub, monkeypatch: pytest.MonkeyPatch) -> None:
        self._renew = hub.backend.refresh_many
        self._done = anyio.Event()
        monkeypatch.setattr(hub.backend, "refresh_many", self._timed)

    async def _timed(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._renew(*args, **kwargs)
        self._done.set()
        self._done = anyio.Event()
        return result

    async def next(self) -> None:
        with anyio.fail_after(5):
            await self._done.wait()


async def readable(hub: StreamHub, key: str, terminal: str) -> bool:
    """True if the whole stream can be read; False once it is gone."""
    try:
        events = await collect(hub, key)
    except SessionNotFoundError:
        assert await hub.status(key) is None
        return False
    assert_exact(events, ["kept"], terminal)
    return True


async def gone(hub: StreamHub, key: str, terminal: str) -> bool:
    return not await readable(hub, key, terminal)


@pytest.mark.slow
async def test_a_finished_stream_is_kept_for_retention_after_its_end(
    make_hub: Callable[..., StreamHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stream runs for longer than `retention_s` (its lease renewals keep it), then
    ends just before a renewal was due, so its last renewal is well before its end.
    It stays readable for `retention_s` counted from its end, then it is gone."""
    retention = 2.0
    options = {"lease_ttl_s": retention, "retention_s": retention, "start_timeout_s": retention}
    async with make_hub(**options) as hub:
        renewals = Renewals(hub, monkeypatch)
        producers = {end: (await hub.register(f"kept:{end}"))[0] for end in ENDS}
        for producer in producers.values():
            await producer.publish("kept")
            await producer.flush()
        await anyio.sleep(retention * 1.2)  # a run longer than the retention
        for end in ENDS:
            status = await hub.status(f"kept:{end}")
            assert status is not None and status.status == "active"
        await renewals.next()
        await anyio.sleep(hub.config.renew_every_s * 0.8)  # the last renewal is that old
        ended = anyio.current_time()  # every key's expiry is set after this instant
        for end, producer in producers.items():
            await ENDS[end](hub, producer)
        await anyio.sleep_until(ended + retention - hub.config.renew_every_s * 0.4)
        for end in ENDS:
            found = await readable(hub, f"kept:{end}", end)
            if anyio.current_time() < ended + retention:
                assert found, f"the {end!r} stream was gone before retention_s after its end"
        for end in ENDS:
            await eventually(partial(gone, hub, f"kept:{end}", end), timeout_s=retention + 2)


async def test_cancel_stops_a_stalled_generator_and_runs_its_finally(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(lease_ttl_s=60.0) as hub:
        await cancel_a_stalled_generator(hub, hub)


async def test_cancel_from_another_instance_stops_a_stalled_generator(redis_url: str) -> None:
    options: dict[str, Any] = {"lease_ttl_s": 60.0, "shutdown_grace_s": 0.1}
    async with (
        StreamHub.from_url(redis_url, **options) as a,
        StreamHub.from_url(redis_url, **options) as b,
    ):
        await cancel_a_stalled_generator(a, b)


async def cancel_a_stalled_generator(producing: StreamHub, cancelling: StreamHub) -> None:
    """No write of its own can be refused and its lease outlives the test, so only the
    cancel can stop it; `stopped` comes after its `finally`, within the wait."""
    producer, _ = await producing.register("stalled")
    started, cleaned_up = anyio.Event(), anyio.Event()
    producing.spawn(producer, lambda: drive(producer, stalled(started, cleaned_up)))
    with anyio.fail_after(5):
        await started.wait()
    result = await cancelling.cancel("stalled", wait=1)
    assert result is not None and result.cancelled
    assert result.stopped
    assert cleaned_up.is_set(), "`stopped` was answered before the generator's finally ran"
    assert await producer.wait() == "cancelled"
    assert [e.event for e in await collect(cancelling, "stalled")] == [None, "cancelled"]
