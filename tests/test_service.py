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


async def test_a_failure_inside_a_task_group_is_named_by_its_cause() -> None:
    """ "unhandled errors in a TaskGroup (1 sub-exception)" told an operator nothing."""

    async def grouped(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(asyncio.sleep(0))
            raise OSError("[Errno 98] address already in use")

    stop = asyncio.Event()
    with pytest.raises(service.PartFailed, match=r"^grouped: \[Errno 98\] address already in use$"):
        async with asyncio.timeout(5):
            await service.run_all([grouped], stop)


async def test_after_starts_a_part_once_the_event_is_set_and_never_after_stop() -> None:
    ready = asyncio.Event()
    started: list[str] = []

    async def part(stop: asyncio.Event) -> None:
        started.append("part")
        await stop.wait()

    stop = asyncio.Event()
    delayed = service.after(ready, part)
    assert delayed.__name__ == "part"
    task = asyncio.create_task(delayed(stop))
    await asyncio.sleep(0.05)
    assert started == []
    ready.set()
    await asyncio.sleep(0.05)
    assert started == ["part"]
    stop.set()
    async with asyncio.timeout(5):
        await task
    # Stopped before the event: the part is never started.
    never = service.after(asyncio.Event(), part)
    async with asyncio.timeout(5):
        await never(stop)
    assert started == ["part"]
