"""Running a long-lived service: logging, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

Main = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_until_signalled(main: Main) -> None:
    """Run ``main(stop)``; SIGTERM or SIGINT sets ``stop``, and ``main`` must then return."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


async def run_all(parts: list[Main], stop: asyncio.Event) -> None:
    """Run several services in one process; when one fails, the others are stopped too."""
    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(part(stop))
