"""A private Asterisk as a child of ``callcenter run``.

``callcenter asterisk run`` renders the configuration and replaces itself with Asterisk, so the
child we start *is* Asterisk: SIGTERM stops it cleanly. Its output goes to
``<instance>/log/console.log`` rather than into ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from callcenter.asterisk.run import instance_dir, private_instance
from callcenter.config import Settings

log = logging.getLogger(__name__)


async def _wait_port(host: str, port: int, timeout: float) -> bool:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            return True


async def run_private_asterisk(settings: Settings, stop: asyncio.Event) -> None:
    """Start the private Asterisk when there should be one (see
    :func:`callcenter.asterisk.run.private_instance`), keep it until ``stop``, then stop it.
    Returns at once, saying why, when none is to be started."""
    binary, reason = private_instance(settings)
    log.info("asterisk: %s", reason)
    if binary is None:
        return
    logs = instance_dir(settings) / "log"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "console.log").open("ab") as out:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter", "asterisk", "run",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    node = settings.node("local")
    try:
        with contextlib.suppress(TimeoutError):
            if await _wait_port(node.host, node.port, 30):
                log.info("asterisk: up, AMI on %s:%d (pid %d)", node.host, node.port, child.pid)
        waiter = asyncio.create_task(child.wait())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
        if waiter in done:
            log.error("asterisk: exited with %s; see %s", child.returncode, logs / "console.log")
            return
    finally:
        if child.returncode is None:
            child.terminate()
            try:
                async with asyncio.timeout(15):
                    await child.wait()
            except TimeoutError:
                log.warning("asterisk: did not stop within 15 s; killing it")
                child.kill()
                await child.wait()
