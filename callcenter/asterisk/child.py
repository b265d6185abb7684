"""A private Asterisk as a child of ``callcenter run``, restarted when it dies.

``callcenter asterisk run`` renders the configuration and replaces itself with Asterisk, so the
child we start *is* Asterisk: SIGTERM stops it cleanly. Its output goes to
``<instance>/log/console.log`` rather than into ours.

When the child exits while we run, it is started again after a pause that doubles with each
exit in a row (:data:`RESTART_BASE` seconds, then twice that, up to :data:`RESTART_CAP`), and
the count starts over once a child has stayed up for :data:`STABLE_AFTER` seconds. Each exit is
logged at ERROR with its status and the last line of console.log, so a configuration that
cannot start (a port taken, a render error) shows in our log and does not spin.

``ready`` is set once the first child answers on its AMI port, or when there will be none
(another Asterisk runs there, none is installed, an external node), or when the first one
failed to come up: `callcenter run` starts the parts that connect to AMI after it, so they do
not log a refused connection for each second Asterisk takes to boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from callcenter.asterisk.run import instance_dir, private_instance
from callcenter.config import Settings

log = logging.getLogger(__name__)

#: Seconds before the first restart; doubled for each exit in a row, up to RESTART_CAP.
RESTART_BASE = 1.0
RESTART_CAP = 60.0
#: A child up this long counts as healthy: the next exit restarts after RESTART_BASE again.
STABLE_AFTER = 60.0
#: Seconds a child may take to answer on its AMI port.
BOOT_TIMEOUT = 60.0
#: Seconds a child gets to stop after SIGTERM (sent again every STOP_RETRY s) before SIGKILL.
STOP_TIMEOUT = 15.0
STOP_RETRY = 2.0


def command(settings: Settings) -> list[str]:
    """The child's command line: `callcenter asterisk run` on the same settings file (the
    environment, and so any CALLCENTER_* variable, is inherited), told to stop when we die
    (:func:`callcenter.asterisk.run.die_with_parent`), so that no Asterisk is left running
    with nobody to stop it even if we are killed."""
    argv = [sys.executable, "-m", "callcenter"]
    if settings.source != "defaults":
        argv += ["--config", settings.source]
    return [*argv, "asterisk", "run", "--die-with-parent"]


def last_line(path: Path) -> str:
    """The last non-empty line of ``path`` (console.log), or ``""``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


async def _port_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _until_up(
    child: asyncio.subprocess.Process, host: str, port: int, stop: asyncio.Event
) -> bool:
    """Until the child answers on ``host:port`` (True), or exits, or ``stop`` is set, or
    BOOT_TIMEOUT passes (False)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while child.returncode is None and not stop.is_set() and time.monotonic() < deadline:
        if await _port_open(host, port):
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await child.wait()
    return False


async def _stop_child(child: asyncio.subprocess.Process) -> None:
    """SIGTERM, again every STOP_RETRY seconds (Asterisk ignores one that arrives while it
    boots), then SIGKILL after STOP_TIMEOUT."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while child.returncode is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(STOP_RETRY, max(0.0, deadline - time.monotonic()))):
                await child.wait()
    if child.returncode is None:
        log.warning("asterisk: did not stop within %.0f s; killing it", STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
    else:
        log.info("asterisk: stopped (pid %d)", child.pid)


async def run_private_asterisk(
    settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Start the private Asterisk when there should be one (see
    :func:`callcenter.asterisk.run.private_instance`), restart it when it exits, and stop it
    when ``stop`` is set. Returns at once, saying why, when none is to be started."""
    ready = ready if ready is not None else asyncio.Event()
    binary, reason = private_instance(settings)
    log.info("asterisk: %s", reason)
    if binary is None:
        ready.set()
        return
    logs = instance_dir(settings) / "log"
    console = logs / "console.log"
    node = settings.node("local")
    failures = 0
    try:
        while not stop.is_set():
            logs.mkdir(parents=True, exist_ok=True)
            with console.open("ab") as out:
                child = await asyncio.create_subprocess_exec(
                    *command(settings),
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                )  # fmt: skip
            started = time.monotonic()
            try:
                if await _until_up(child, node.host, node.port, stop):
                    log.info("asterisk: up, AMI on %s:%d (pid %d)", node.host, node.port, child.pid)
                ready.set()
                waiter = asyncio.create_task(child.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (waiter, stopper):
                    task.cancel()
                await asyncio.gather(waiter, stopper, return_exceptions=True)
            finally:
                if child.returncode is None:
                    await _stop_child(child)
            if stop.is_set():
                return
            uptime = time.monotonic() - started
            failures = 1 if uptime >= STABLE_AFTER else failures + 1
            delay = min(RESTART_CAP, RESTART_BASE * 2 ** (failures - 1))
            code = child.returncode or 0
            if code < 0:
                try:
                    how = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            else:  # it stopped by itself: its last words say why
                said = last_line(console)
                how = f"exited with {code}" + (f" ({said})" if said else "")
            log.error(
                "asterisk: %s after %.0f s; restarting in %.0f s (see %s)",
                how, uptime, delay, console,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
    finally:
        ready.set()
