"""Running a long-lived service: logging, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Main = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

#: Seconds the parts get to stop on their own before they are cancelled.
STOP_GRACE = 20.0


class PartFailed(RuntimeError):
    """A part of a process ended with an error; the message names the part and the error."""


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_until_signalled(main: Main) -> None:
    """Run ``main(stop)``; SIGTERM or SIGINT sets ``stop``, and ``main`` must then return."""

    async def runner() -> None:
        # What exists now (modules, settings, the parts) lives as long as the process: out of
        # the cyclic collector's full passes, which each service's per-event garbage would
        # otherwise make scan it again and again (the bridge's run freezes its parts too).
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def _name(part: Main) -> str:
    owner = getattr(part, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(part, "__name__", "part")


def after(event: asyncio.Event, part: Main) -> Main:
    """``part``, started once ``event`` is set; never started if ``stop`` is set first.
    `callcenter run` starts the parts that connect to AMI after its private Asterisk is up."""

    async def delayed(stop: asyncio.Event) -> None:
        waits = [asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if not stop.is_set():
            await part(stop)

    delayed.__name__ = _name(part)
    return delayed


def describe(exc: BaseException) -> str:
    """An exception in one line; for a TaskGroup's group, its first leaf, since "unhandled
    errors in a TaskGroup (1 sub-exception)" tells an operator nothing."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


async def run_all(parts: list[Main], stop: asyncio.Event, grace: float = STOP_GRACE) -> None:
    """Run several services in one process until ``stop``.

    When one part fails, ``stop`` is set so that the others shut down through their own clean
    path (flush the call log, say goodbye on MQTT, stop Asterisk) rather than being cancelled
    half-way; parts still running after ``grace`` seconds are cancelled. A part that simply
    returns (e.g. no private Asterisk to start) stops nothing. Raises :class:`PartFailed` for
    the first failure.
    """
    failures: list[tuple[str, BaseException]] = []

    async def guarded(part: Main) -> None:
        try:
            await part(stop)
        except Exception as exc:
            failures.append((_name(part), exc))
            log.error("%s failed: %s; stopping the other parts", _name(part), describe(exc))
            stop.set()

    tasks = [asyncio.create_task(guarded(p), name=_name(p)) for p in parts]
    try:
        await stop.wait()
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), grace)
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if failures:
        name, exc = failures[0]
        raise PartFailed(f"{name}: {describe(exc)}") from exc
