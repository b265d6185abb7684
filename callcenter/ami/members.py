"""Taking an agent out of app_queue on every Asterisk node, for the operator CLI.

``callcenter queues leave`` and ``callcenter agents remove`` change the directory, but an agent
who is logged in is a *dynamic* member of app_queue (``*11`` added them with QueueAdd), and
with ``persistentmembers = yes`` Asterisk keeps them in astdb across reloads and restarts: a
reload never removes them. So after the directory change the CLI asks each configured node,
over a short AMI session of its own, which members are the agent (by interface
``PJSIP/<extension>`` or by MemberName, which also finds a simulated agent's Local channel)
and sends each one a QueueRemove (the ``agent`` write class, which the bridge's AMI user has).

A node that cannot be reached is reported, never retried: the directory change stands, and the
CLI says on stderr which node may still have the member and the console command that removes
it (:func:`console_hint`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from callcenter.ami.connection import AmiClient, AmiError
from callcenter.config import NodeSettings, Settings

#: Seconds one action may take once logged in.
ACTION_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class NodeRemoval:
    """What one node did: the queues the member was removed from; ``error`` what went wrong,
    ``reached`` whether the node was asked at all."""

    node: str
    removed: tuple[str, ...] = ()
    error: str = ""
    reached: bool = True


def interface_of(extension: str) -> str:
    """An agent's app_queue interface (and state interface): their phone's PJSIP endpoint."""
    return f"PJSIP/{extension}"


async def _remove_on(
    node: NodeSettings, name: str, interface: str, queues: Collection[str] | None
) -> NodeRemoval:
    try:
        async with asyncio.timeout(node.connect_timeout + 3 * ACTION_TIMEOUT):
            session = await AmiClient(node, events="off").connect()
            try:
                status = await session.send(
                    {"Action": "QueueStatus"}, as_list=True, timeout=ACTION_TIMEOUT
                )
                found = sorted(
                    {
                        (e.get("Queue") or "", e.get("Location") or "")
                        for e in status.events
                        if e.event == "QueueMember"
                        and (e.get("Location") == interface or e.get("Name") == name)
                        and (queues is None or e.get("Queue") in queues)
                    }
                )
                removed: list[str] = []
                refused: list[str] = []
                for queue, location in found:
                    reply = await session.send(
                        {"Action": "QueueRemove", "Queue": queue, "Interface": location},
                        timeout=ACTION_TIMEOUT,
                    )
                    if reply.ok or "Not there" in reply.message:
                        removed.append(queue)
                    else:
                        refused.append(f"QueueRemove {location} from {queue}: {reply.message}")
            finally:
                await session.logoff()
    except (AmiError, TimeoutError, OSError) as exc:
        return NodeRemoval(node.name, error=str(exc) or type(exc).__name__, reached=False)
    return NodeRemoval(node.name, tuple(sorted(set(removed))), "; ".join(refused))


async def remove_member(
    settings: Settings, name: str, interface: str, queues: Collection[str] | None = None
) -> list[NodeRemoval]:
    """Remove agent ``name`` (interface ``interface``) from ``queues`` (every queue when
    ``None``) on every configured node, the nodes concurrently; one result per node."""
    return list(
        await asyncio.gather(*(_remove_on(n, name, interface, queues) for n in settings.nodes))
    )


def console_hint(settings: Settings, node: str, interface: str, queues: Sequence[str]) -> str:
    """The Asterisk console command(s) that remove ``interface`` from ``queues`` on ``node``:
    with the private instance's asterisk.conf for ``[nodes.local]`` on this machine."""
    from callcenter.asterisk import run

    prefix = "asterisk"
    target = settings.node(node)
    if node == "local" and target.host in run.LOOPBACK_HOSTS:
        try:
            binary = str(run.find_binary(settings))
        except run.AsteriskNotFound:
            binary = "asterisk"
        prefix = f"{binary} -C {run.config_file(run.instance_dir(settings))}"
    names = list(queues) or ["<queue>"]
    return "; ".join(f'{prefix} -rx "queue remove member {interface} from {q}"' for q in names)
