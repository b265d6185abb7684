"""The IVR service: the one place where its parts are built from settings and wired.

``callcenter agi`` runs :meth:`AgiService.run` until SIGTERM/SIGINT; ``callcenter run`` runs it
beside the bridge (it is a :data:`callcenter.service.Main`). Its parts: the FastAGI server, one
AMI link to the node it serves, the callback service, and the screen-pop publisher. Shutdown:
the server stops accepting and gives running calls a grace period, the callback service and the
AMI link stop, pending screen-pops are flushed (bounded), the database pool is closed.

``callcenter agi-stdio`` uses :func:`run_stdio`: the same services for one call in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import IO, Any

from callcenter.agi import stdio
from callcenter.agi.callback import CallbackService
from callcenter.agi.flows import Services, build_scripts
from callcenter.agi.ivr import Ivr, load_ivrs
from callcenter.agi.options import AgiOptions, node_settings, sounds_dir
from callcenter.agi.screenpop import ScreenPopPublisher
from callcenter.agi.server import AgiServer
from callcenter.ami import wanted
from callcenter.ami.connection import AmiClient
from callcenter.ami.link import AmiLink
from callcenter.config import Settings
from callcenter.db import engine as db

log = logging.getLogger(__name__)

#: Scripts that send AMI actions: only these make a stdio process connect to AMI.
AMI_SCRIPTS = frozenset({"agent-login", "agent-logout", "agent-pause", "agent-unpause", "callback"})
FLUSH_TIMEOUT = 5.0


def raw_ivrs(settings: Settings) -> Mapping[str, Any]:
    """The ``[ivr]`` table of the settings (``Settings.ivr``, kept raw by config.py)."""
    raw = getattr(settings, "ivr", None)
    return raw if isinstance(raw, Mapping) else {}


def load_settings_ivrs(settings: Settings, options: AgiOptions | None = None) -> dict[str, Ivr]:
    """Every IVR of the settings, checked (prompts against the sounds directory)."""
    opts = options or AgiOptions.from_settings(settings)
    return load_ivrs(raw_ivrs(settings), settings.site.tz, sounds_dir=sounds_dir(settings, opts))


def build_services(settings: Settings, *, ivrs: Mapping[str, Ivr] | None = None) -> Services:
    options = AgiOptions.from_settings(settings)
    node = node_settings(settings, options)
    engine = db.make_engine(settings.database)
    # Its callbacks read four events (classes agent and call): its own AMI user, where there
    # is one, is sent only those (ami/wanted.py IVR); the bridge's is sent every Queue*...
    login = node.login_as(node.ivr_username)
    ami = AmiLink(login, AmiClient(login, events=wanted.IVR_EVENT_CLASSES))
    return Services(
        node=node.name,
        options=options,
        ivrs=ivrs if ivrs is not None else load_settings_ivrs(settings, options),
        engine=engine,
        ami=ami,
        callbacks=CallbackService(engine, ami, node.name, options),
        screenpop=ScreenPopPublisher(settings.mqtt, ttl=options.screenpop_ttl),
    )


class AgiService:
    """Every part of the IVR service; :meth:`run` runs them until ``stop``."""

    def __init__(self, settings: Settings, *, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services or build_services(settings)
        a = settings.agi
        self.server = AgiServer(
            build_scripts(self.services),
            host=a.host,
            port=a.port,
            max_sessions=a.max_sessions,
            command_timeout=a.command_timeout,
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.services
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(s.ami.run(stop), name="agi-ami")
                tg.create_task(s.callbacks.run(stop), name="agi-callbacks")
                tg.create_task(self.server.serve(stop), name="agi-server")
                publisher = (
                    tg.create_task(s.screenpop.run(), name="agi-screenpop")
                    if s.screenpop is not None
                    else None
                )
                await stop.wait()
                log.info("agi: stopping")
                if s.screenpop is not None and publisher is not None:
                    s.screenpop.stop()
                    try:
                        async with asyncio.timeout(FLUSH_TIMEOUT):
                            await asyncio.shield(publisher)
                    except TimeoutError:
                        publisher.cancel()
        finally:
            s.engine.dispose()


async def run_stdio(
    settings: Settings,
    script_name: str,
    args: list[str],
    stdin: IO[str],
    stdout: IO[str],
    *,
    services: Services | None = None,
) -> int:
    """One call over stdio AGI; the exit status."""
    agi = stdio.open_agi(stdin, stdout)  # reads the environment; installs pyst2's SIGHUP handler
    env = stdio.environment(agi, script_name, args)
    try:
        s = services or build_services(settings)
    except Exception:
        stdio.send_failure(agi)  # the dialplan's fallback runs at once; the error is ours to log
        raise
    scripts = build_scripts(s)
    script = scripts.get(script_name)
    if script is None:
        log.error(
            "agi-stdio: unknown script %r (known: %s)", script_name, ", ".join(sorted(scripts))
        )
        stdio.send_failure(agi)
        return 2
    stop = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    if script_name in AMI_SCRIPTS:
        background.append(asyncio.create_task(s.ami.run(stop), name="agi-ami"))
    publisher = (
        asyncio.create_task(s.screenpop.run(), name="agi-screenpop")
        if s.screenpop is not None and script_name == "ivr"
        else None
    )
    try:
        return await stdio.run_script(
            agi, script, env, command_timeout=settings.agi.command_timeout
        )
    finally:
        stop.set()
        if publisher is not None and s.screenpop is not None:
            s.screenpop.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_TIMEOUT if s.screenpop.pending else 0.5):
                    await asyncio.shield(publisher)
            publisher.cancel()
            background.append(publisher)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        s.engine.dispose()
