"""The AMI bridge process: the one place where its parts are built and wired.

``callcenter ami`` runs :func:`run_bridge` until SIGTERM/SIGINT; ``callcenter run`` runs it
beside the other services. Shutdown is clean: the AMI clients stop, the writer flushes what is
pending (to PostgreSQL or, failing that, the spool), the publisher says ``online: false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path

import sqlalchemy as sa

from callcenter import core
from callcenter.ami import wanted
from callcenter.ami.connection import AmiClient
from callcenter.asterisk.run import LOOPBACK_HOSTS, instance_dir
from callcenter.bridge.node import NodeBridge, QueueLogFile
from callcenter.bridge.publisher import Publisher
from callcenter.bridge.spool import Spool
from callcenter.bridge.store import CallLogWriter
from callcenter.config import NodeSettings, Settings
from callcenter.db import engine as db
from callcenter.db.models import Queue
from callcenter.recordings import paths as recording_paths
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.security.service import SecurityMonitor

log = logging.getLogger(__name__)


#: What our dialplans tell the core, by context and channel variable: defined beside the AMI
#: eventfilter (callcenter/ami/wanted.py), which asks Asterisk for the VarSets these name.
CALL_CONTEXTS = wanted.CALL_CONTEXTS
TIMEOUT_VARIABLE = wanted.TIMEOUT_VARIABLE
IVR_PATH_VARIABLE = wanted.IVR_PATH_VARIABLE


def spool_path(settings: Settings) -> Path:
    return Path(settings.bridge.spool_dir) / "calllog.spool"


def queue_log_path(settings: Settings, node: NodeSettings) -> Path | None:
    """Where ``node``'s queue_log file is: ``nodes.<name>.queue_log_path`` when set; for the
    private instance (``[nodes.local]`` on this machine, which ``callcenter run`` starts in
    ``[asterisk] directory``) its own ``log/queue_log`` without any setting; else none."""
    if node.queue_log_path:
        return Path(node.queue_log_path)
    if node.name == "local" and node.host in LOOPBACK_HOSTS:
        return instance_dir(settings) / "log" / "queue_log"
    return None


def load_core_config(settings: Settings) -> core.CoreConfig:
    """Queue wrap-up and max wait from the database (Asterisk tells neither over AMI)."""
    engine = db.make_engine(settings.database, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(Queue.name, Queue.wrapup_seconds, Queue.max_wait_seconds)
            ).all()
    finally:
        engine.dispose()
    return core.CoreConfig(
        queues={
            name: core.QueueConfig(wrapup_seconds=float(wrap), max_wait_seconds=float(wait))
            for name, wrap, wait in rows
        },
        call_contexts=CALL_CONTEXTS,
        timeout_variable=TIMEOUT_VARIABLE,
        ivr_path_variable=IVR_PATH_VARIABLE,
    )


class Bridge:
    """Every part of the bridge, built from settings; :meth:`run` runs them all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        b = settings.bridge
        self.spool = Spool(spool_path(settings), max_bytes=b.spool_max_mb * 1024 * 1024)
        self.writer = CallLogWriter(
            settings.database.url,
            self.spool,
            interval=b.flush_interval,
            connect_timeout=settings.database.connect_timeout,
        )
        self.publisher = Publisher(settings.mqtt)
        recordings_dir = recording_paths.root(settings)
        # Failed SIP logins of every node, counted per address (callcenter/security).
        self.security = SecurityMonitor(settings, self.publisher)
        self.nodes = [
            NodeBridge(
                node,
                self.writer,
                self.publisher,
                audit=b.audit_events,
                queue_log=QueueLogFile(path) if path is not None else None,
                # Call recordings: rows from the dialplan's events, completed from the files.
                recordings=RecordingKeeper(
                    node.name,
                    recordings_dir,
                    self.writer.add_recordings,
                    missing_after=settings.recording.missing_after,
                ),
                security=self.security.handle,
            )
            for node, path in ((n, queue_log_path(settings, n)) for n in settings.nodes)
        ]
        self.clients = [AmiClient(n.node) for n in self.nodes]

    async def _check_schema(self) -> None:
        def status() -> db.SchemaStatus:
            engine = db.make_engine(self.settings.database, poolclass=sa.pool.NullPool)
            try:
                return db.status(engine)
            finally:
                engine.dispose()

        try:
            st = await asyncio.to_thread(status)
        except Exception as exc:  # unreachable: the writer spools and says so
            log.warning("bridge: cannot check the database schema (%s)", exc)
            return
        if not st.up_to_date:
            log.error(
                "bridge: the database schema is at %s, this code needs %s: run "
                "`callcenter db upgrade` (until then the call log waits in the spool)",
                st.current or "nothing", st.head,
            )  # fmt: skip

    async def _refresh_config(self) -> None:
        while True:
            try:
                config = await asyncio.to_thread(load_core_config, self.settings)
            except Exception as exc:  # the database may be down: keep the last config
                log.warning("bridge: cannot load queue settings (%s); keeping the last ones", exc)
            else:
                for node in self.nodes:
                    node.set_config(config)
            await asyncio.sleep(self.settings.bridge.queue_refresh)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for node in self.nodes:
                node.tick()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down cleanly."""
        # What exists now (modules, settings, the parts) lives as long as the process: take
        # it out of the cyclic collector's full passes, which the per-event garbage of a busy
        # AMI stream would otherwise make scan it again and again.
        gc.freeze()
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(self.writer.run(), name="calllog-writer")
            publisher = tg.create_task(self.publisher.run(), name="mqtt-publisher")
            others = [
                tg.create_task(self._check_schema(), name="schema-check"),
                tg.create_task(self._refresh_config(), name="queue-settings"),
                tg.create_task(self._ticker(), name="wrapup-ticker"),
                tg.create_task(self.security.run(), name="security"),
                *(tg.create_task(n.fill_gaps(), name=f"gaps-{n.name}") for n in self.nodes),
                *(
                    tg.create_task(n.recordings.run(), name=f"recordings-{n.name}")
                    for n in self.nodes
                    if n.recordings is not None
                ),
            ]
            for client, node in zip(self.clients, self.nodes, strict=True):
                others.append(tg.create_task(client.run(node.handle), name=f"ami-{node.name}"))
            await stop.wait()
            log.info("bridge: stopping")
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            writer.cancel()  # its finally-block flushes what is pending
            self.publisher.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.gather(writer, publisher, return_exceptions=True)
            publisher.cancel()
