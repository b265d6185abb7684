"""Running several services in one process: a failing part stops the others cleanly."""

from __future__ import annotations

import asyncio

import pytest

from callcenter import service


async def test_a_failing_part_stops_the_others_through_stop() -> None:
    stopped_cleanly: list[str] = []

    async def steady(stop: asyncio.Event) -> None:
        await stop.wait()  # a part that only ends when told, as the bridge does
        stopped_cleanly.append("steady")

    async def broken(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        raise OSError("address already in use")

    async def done_at_once(stop: asyncio.Event) -> None:
        return  # e.g. no private Asterisk to start: stops nothing

    stop = asyncio.Event()
    with pytest.raises(service.PartFailed, match="broken: address already in use"):
        async with asyncio.timeout(5):
            await service.run_all([steady, broken, done_at_once], stop)
    assert stopped_cleanly == ["steady"]


async def test_a_part_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    async def stubborn(stop: asyncio.Event) -> None:
        await asyncio.sleep(3600)

    stop = asyncio.Event()
    stop.set()
    async with asyncio.timeout(5):
        await service.run_all([stubborn], stop, grace=0.1)
