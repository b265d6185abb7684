"""Two private Asterisks followed by one bridge (issue 16): one killed mid-load does not disturb
the other's figures, and is followed again once it is back.

Nodes ``alpha`` and ``bravo``: each its own directory, SIP, AMI, AGI and RTP ports, queue_log
and Asterisk ``systemname`` (so their uniqueids differ: ``alpha-<epoch>.<n>``), its own IVR
service (as each machine would run one) and two agents with SIPp phones; one bridge with
``[nodes.alpha]`` and ``[nodes.bravo]``. SIPp callers go IVR → queue → agent on both. While
alpha has a call connected, it is killed (SIGKILL: a crash, so no ABANDON or COMPLETE lines
for its calls in progress, no Shutdown event), and bravo's callers keep coming. Then:

- every bravo call is in the call log exactly as bravo's queue_log has it (outcome, agent,
  wait, talk), and on MQTT closed with that outcome; none is ``lost``;
- bravo's AMI link never dropped; its retained queue and agent snapshots kept being published
  after the kill and agree with bravo's own QueueStatus; its status says connected;
- alpha's retained status says disconnected while it is down;
- alpha, started again in the same directory, is reconnected and resynchronised: every alpha
  call is closed, those queue_log finished before the kill as it has them, and the calls
  made after the restart are logged as its queue_log has them.

Skipped, with the reason, without Asterisk (and its sounds) or SIPp.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.agi.app import AgiService, build_services
from callcenter.agi.ivr import load_ivrs
from callcenter.ami.connection import AmiClient, Backoff
from callcenter.asterisk import run
from callcenter.bridge.app import Bridge
from callcenter.core.queue_log import QueueLogEntry, parse_queue_log
from tests.e2e.conftest import (
    IVRS,
    Pbx,
    Phones,
    Sipp,
    Stack,
    require_sounds,
    seed_directory,
    sipp_binary,
    start_pbx,
    truncate,
    wait_exit,
)
from tests.test_asterisk_live import asterisk_binary, stop, wait_booted
from tests.test_bridge import Expected, MqttWatcher, assert_matches
from tests.test_bridge import expected_from_queue_log as expected_from

pytestmark = pytest.mark.asterisk

#: The nodes (bridge node name = Asterisk systemname) and the agents with phones on each.
AGENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "alpha": (("alice", "1001"), ("bob", "1002")),
    "bravo": (("carol", "1003"), ("dave", "1004")),
}
IVR_PATH = "main:welcome[1]>sales"
#: Agents ring 0.5 s, talk 5 s and wrap up 2 s; with 3 callers at once on 2 agents the third
#: waits (up to the queue's max wait, 10 s: tests/e2e/conftest.py QUEUE, then it times out).
#: Whatever the outcome, queue_log says it and the call log must agree.
RING_MS, TALK_MS, PATIENCE_MS = 500, 5000, 40000


@pytest.fixture(scope="module")
def pbxs(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[dict[str, Pbx]]:
    """Asterisk ``alpha`` and ``bravo`` side by side, each with its own agents, by node name."""
    binary = asterisk_binary()
    sipp = sipp_binary()
    require_sounds(binary)
    started: dict[str, Pbx] = {}
    try:
        with contextlib.ExitStack() as instances:
            for name, agents in AGENTS.items():
                where = tmp_path_factory.mktemp(name)
                started[name] = instances.enter_context(
                    start_pbx(where, engine, binary, sipp, agents, systemname=name)
                )
            try:
                yield started
            finally:
                # An instance the test started again is pbx.proc, not the process that
                # start_pbx started (and stops).
                for pbx in started.values():
                    stop(pbx.binary, pbx.directory, pbx.proc)
    except RuntimeError as exc:
        pytest.fail(str(exc))


# --- the two-node site ----------------------------------------------------------------------


def node_settings(name: str, pbx: Pbx) -> config.NodeSettings:
    """``[nodes.<name>]`` for ``pbx``: its AMI port and secret, its queue_log file."""
    return dataclasses.replace(
        pbx.settings.node("local"), name=name, queue_log_path=str(pbx.queue_log)
    )


@dataclasses.dataclass
class Site:
    """One bridge following every node, an IVR service per node, SIPp phones per node."""

    settings: config.Settings
    engine: Engine
    bridge: Bridge
    mqtt: MqttWatcher
    nodes: dict[str, Stack]
    tmp: Path

    def topic(self, node: str, *rest: str) -> str:
        return "/".join((self.settings.mqtt.topic_prefix, node, *rest))

    def node(self, name: str) -> int:
        """The index of ``name`` in the bridge's nodes (and clients)."""
        return next(i for i, n in enumerate(self.bridge.nodes) if n.name == name)

    def new_phones(self, name: str, tag: str) -> Phones:
        """Stop ``name``'s SIPp processes; new ones start in their own directory."""
        st = self.nodes[name]
        st.phones.close()
        where = self.tmp / f"{name}-{tag}"
        where.mkdir()
        st.phones = Phones(st.pbx, where)
        return st.phones


@contextlib.asynccontextmanager
async def site(pbxs: Mapping[str, Pbx], engine: Engine, tmp: Path) -> AsyncIterator[Site]:
    """The bridge (``[nodes.alpha]``, ``[nodes.bravo]``), an IVR service per node, an MQTT
    watcher on the test's own prefix, on a database seeded with every node's agents."""
    truncate(engine)
    every = [agent for name in pbxs for agent in AGENTS[name]]
    seed_directory(engine, {k: v for p in pbxs.values() for k, v in p.secrets.items()}, every)
    tag = secrets.token_hex(4)
    base = next(iter(pbxs.values())).settings
    mqtt = dataclasses.replace(base.mqtt, topic_prefix=f"cce2e-{tag}", client_id=f"cce2e-{tag}")
    s = dataclasses.replace(
        base,
        nodes=tuple(node_settings(name, pbx) for name, pbx in pbxs.items()),
        mqtt=mqtt,
        bridge=dataclasses.replace(base.bridge, spool_dir=str(tmp / "spool"), flush_interval=0.2),
    )
    bridge = Bridge(s)
    # Reconnect attempts at most 2 s apart (the default backoff grows to 30 s): the test
    # keeps a node down for a minute and must stay short.
    bridge.clients = [AmiClient(n.node, backoff=Backoff(cap=2.0)) for n in bridge.nodes]
    agis = []
    for name, pbx in pbxs.items():
        # Each node's IVR service as its machine would run it: its own FastAGI port, AMI
        # link and MQTT client id (one id for two clients: the broker keeps dropping one).
        own = dataclasses.replace(
            pbx.settings,
            nodes=(node_settings(name, pbx),),
            mqtt=dataclasses.replace(mqtt, client_id=f"cce2e-{tag}-{name}"),
            agi=dataclasses.replace(pbx.settings.agi, host="127.0.0.1", node=name),
        )
        ivrs = load_ivrs(IVRS, "UTC", sounds_dir=pbx.sounds)
        agis.append(AgiService(own, services=build_services(own, ivrs=ivrs)))
    stop_event = asyncio.Event()
    watcher = MqttWatcher(mqtt.topic_prefix)
    stacks = {}
    for name, pbx in pbxs.items():
        (tmp / name).mkdir()
        stacks[name] = Stack(pbx, s, engine, bridge, watcher, Phones(pbx, tmp / name))
    tasks = [
        asyncio.create_task(bridge.run(stop_event), name="e2e-bridge"),
        *(asyncio.create_task(a.run(stop_event), name=f"e2e-agi-{i}") for i, a in enumerate(agis)),
    ]
    watch = asyncio.create_task(watcher.run())
    st = Site(s, engine, bridge, watcher, stacks, tmp)
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10)
        async with asyncio.timeout(30):
            while not all(n.counters.resyncs >= 1 for n in bridge.nodes):
                await asyncio.sleep(0.05)
        yield st
    finally:
        for node in stacks.values():
            node.phones.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await node.logout_all()
        stop_event.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        with contextlib.suppress(Exception):
            await watcher.clear_retained()


# --- what Asterisk recorded, what we logged ---------------------------------------------------


async def until(check: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    """Poll ``check`` until it holds; after ``timeout`` seconds fail, saying ``why()``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {why()}")
        await asyncio.sleep(0.2)


def log_size(pbx: Pbx) -> int:
    return pbx.queue_log.stat().st_size if pbx.queue_log.exists() else 0


def entries(pbx: Pbx, start: int, end: int | None = None) -> list[QueueLogEntry]:
    """queue_log's lines between byte offsets ``start`` and ``end`` (default: its end)."""
    data = pbx.queue_log.read_bytes()[start:end]
    return list(parse_queue_log(data.decode("utf-8", "replace")))


def text(lines: list[QueueLogEntry]) -> str:
    return "\n".join(f"{e.time:.0f} {e.event} {e.callid} {e.agent} {e.data}" for e in lines)


def joined(lines: list[QueueLogEntry]) -> set[str]:
    return {e.callid for e in lines if e.event == "ENTERQUEUE"}


def in_talk(lines: list[QueueLogEntry]) -> set[str]:
    """Calls connected to an agent and not ended yet."""
    return {e.callid for e in lines if e.event == "CONNECT"} - set(expected_from(lines))


def node_calls(engine: Engine, node: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM calls WHERE node = :n"), {"n": node})
        return {r["uniqueid"]: dict(r) for r in rows.mappings()}


def open_calls(engine: Engine, node: str) -> list[str]:
    return sorted(u for u, row in node_calls(engine, node).items() if row["outcome"] is None)


async def logged_as_queue_log(st: Site, node: str, start: int) -> dict[str, Expected]:
    """Wait until every call that joined the queue in ``node``'s queue_log after byte
    ``start`` has ended there and in our call log; then compare each field by field, and
    with its last MQTT event. Returns what queue_log says of them."""
    pbx = st.nodes[node].pbx

    def done() -> bool:
        lines = entries(pbx, start)
        calls = joined(lines)
        rows = node_calls(st.engine, node)
        return (
            bool(calls)
            and len(expected_from(lines)) == len(calls)
            and all(rows.get(u, {}).get("outcome") is not None for u in calls)
        )

    def why() -> str:
        return f"{node}: open in the call log {open_calls(st.engine, node)}, queue_log:\n" + text(
            entries(pbx, start)
        )

    await until(done, 60, why)
    await asyncio.sleep(1.0)  # the bridge's last flush
    lines = entries(pbx, start)
    expected = expected_from(lines)
    assert set(expected) == joined(lines), why()
    rows = {u: r for u, r in node_calls(st.engine, node).items() if u in expected}
    assert_matches(rows, expected)
    for uid, row in rows.items():
        assert row["ivr_path"] == IVR_PATH, (uid, row["ivr_path"])
    last = st.mqtt.last
    for uid, exp in expected.items():
        topic = st.topic(node, "calls", uid)
        await until(
            functools.partial(lambda t: last.get(t, {}).get("closed") is True, topic),
            10,
            functools.partial(lambda t: f"{t}: {last.get(t)}", topic),
        )
        assert last[topic]["outcome"] == exp.outcome, (topic, last[topic], exp)
    return expected


# --- the node's live state ------------------------------------------------------------------


async def agents_ready(st: Site, node: str, phones: Phones) -> None:
    """The node's agent phones registered and answering, the agents logged in (anew: members
    a restart kept from astdb are removed first), both available on the queue's snapshot."""
    stack = st.nodes[node]
    agents = AGENTS[node]
    await asyncio.gather(
        *(phones.phone(n, ext, "answer", ring_ms=RING_MS, talk_ms=TALK_MS) for n, ext in agents)
    )
    await stack.logout_all()
    await stack.login(*(n for n, _ in agents))
    topic = st.topic(node, "queues", "sales")
    await until(
        lambda: st.mqtt.last.get(topic, {}).get("available") == len(agents),
        20,
        lambda: f"{topic}: {st.mqtt.last.get(topic)}",
    )


async def snapshots_agree_with_asterisk(st: Site, node: str) -> None:
    """Once the node is quiet (nobody waiting, every agent available after the wrap-up), the
    broker's retained queue and agent snapshots of ``node`` are what its QueueStatus says."""
    queue_topic = st.topic(node, "queues", "sales")
    names = sorted(n for n, _ in AGENTS[node])

    def quiet() -> bool:
        q = st.mqtt.last.get(queue_topic, {})
        return q.get("waiting") == 0 and q.get("available") == len(names)

    await until(quiet, 20, lambda: f"{queue_topic}: {st.mqtt.last.get(queue_topic)}")
    ami = await st.nodes[node].pbx.ami()
    try:
        listed = await ami.send_list(Action="QueueStatus", Queue="sales")
    finally:
        await ami.close()
    params = next(e for e in listed if e.get("Event") == "QueueParams")
    members = {e["Name"]: e for e in listed if e.get("Event") == "QueueMember"}
    held = await st.mqtt.retained()
    queue = held[queue_topic]
    assert sorted(members) == names, members
    assert queue["waiting"] == int(params["Calls"]), (queue, params)
    assert queue["logged_in"] == len(members), (queue, members)
    for name, member in members.items():
        agent = held[st.topic(node, "agents", name)]
        mine = agent["queues"]["sales"]
        assert agent["state"] == "available", agent
        assert mine["status"] == int(member["Status"]), (agent, member)
        assert mine["paused"] == (member["Paused"] == "1"), (agent, member)
        assert mine["in_call"] == (member["InCall"] == "1"), (agent, member)


def spawn(pbx: Pbx) -> None:
    """Asterisk again in its directory (same configuration, astdb and queue_log), as
    ``pbx.proc`` (which the fixture stops)."""
    with (pbx.directory / "stdout.log").open("ab") as log:
        pbx.proc = subprocess.Popen(
            run.command_line(pbx.binary, pbx.directory), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


async def start_again(pbx: Pbx) -> None:
    """:func:`spawn`, then wait until it is fully booted."""
    spawn(pbx)
    await wait_booted(pbx.ami_port, "callcenter", pbx.settings.node("local").secret.reveal())


# --- the test -------------------------------------------------------------------------------


async def test_a_node_killed_mid_load_leaves_the_other_undisturbed(
    pbxs: dict[str, Pbx], engine: Engine, tmp_path: Path
) -> None:
    alpha, bravo = pbxs["alpha"], pbxs["bravo"]
    async with site(pbxs, engine, tmp_path) as st:
        start = {name: log_size(pbx) for name, pbx in pbxs.items()}
        await asyncio.gather(*(agents_ready(st, n, st.nodes[n].phones) for n in pbxs))
        callers: dict[str, Sipp] = {
            "alpha": st.nodes["alpha"].phones.callers(6, patience_ms=PATIENCE_MS, limit=3),
            "bravo": st.nodes["bravo"].phones.callers(9, patience_ms=PATIENCE_MS, limit=3),
        }

        # Mid-load: alpha has finished a call and has one connected to an agent.
        def mid_load() -> bool:
            lines = entries(alpha, start["alpha"])
            return bool(expected_from(lines)) and bool(in_talk(lines))

        await until(mid_load, 45, lambda: "alpha:\n" + text(entries(alpha, start["alpha"])))
        bravo_queue = st.topic("bravo", "queues", "sales")
        published = st.mqtt.count.get(bravo_queue, 0)
        alpha.proc.kill()
        alpha.proc.wait(10)
        killed_at, killed = time.time(), log_size(alpha)
        st.nodes["alpha"].phones.close()
        alpha_status = st.topic("alpha", "status")
        await until(
            lambda: st.mqtt.last.get(alpha_status, {}).get("connected") is False,
            10,
            lambda: f"{alpha_status}: {st.mqtt.last.get(alpha_status)}",
        )

        # bravo: its calls, before, across and after the kill, are logged as queue_log has
        # them; none lost, none missing, none more.
        await wait_exit(callers["bravo"], 120)
        expected = await logged_as_queue_log(st, "bravo", start["bravo"])
        lines = entries(bravo, start["bravo"])
        assert any(e.event == "ENTERQUEUE" and e.time > killed_at for e in lines), text(lines)
        assert set(node_calls(engine, "bravo")) == set(expected), text(lines)
        bravo_node = st.bridge.nodes[st.node("bravo")]
        assert bravo_node.counters.connects == 1, bravo_node.counters
        # ... and its live state kept being published, and agrees with Asterisk.
        assert st.mqtt.count.get(bravo_queue, 0) > published
        await snapshots_agree_with_asterisk(st, "bravo")
        held = await st.mqtt.retained()
        assert held[st.topic("bravo", "status")]["connected"] is True
        assert held[alpha_status]["connected"] is False, held[alpha_status]

        # alpha again: reconnected, resynchronised, its calls closed and corrected.
        alpha_node = st.bridge.nodes[st.node("alpha")]
        resyncs, again = alpha_node.counters.resyncs, log_size(alpha)
        await start_again(alpha)
        await until(
            lambda: alpha_node.counters.resyncs > resyncs,
            30,
            lambda: f"alpha not resynchronised: {alpha_node.counters}",
        )
        # The status goes out through the publisher's linger (50 ms), so it may trail the
        # resynchronisation that a local Asterisk answers in less.
        await until(
            lambda: st.mqtt.last.get(alpha_status, {}).get("connected") is True,
            5,
            lambda: f"{alpha_status}: {st.mqtt.last.get(alpha_status)}",
        )
        await until(lambda: not open_calls(engine, "alpha"), 15, lambda: "alpha: open calls")
        before = expected_from(entries(alpha, start["alpha"], killed))
        rows = node_calls(engine, "alpha")
        assert_matches({u: r for u, r in rows.items() if u in before}, before)
        # ... and its calls after the restart are logged too.
        await agents_ready(st, "alpha", st.new_phones("alpha", "again"))
        caller = st.nodes["alpha"].phones.callers(3, patience_ms=PATIENCE_MS, limit=2)
        await wait_exit(caller, 90)
        await logged_as_queue_log(st, "alpha", again)
        await snapshots_agree_with_asterisk(st, "alpha")
