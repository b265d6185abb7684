"""Bringing Asterisk in line after ``queues leave`` and ``agents remove``.

The directory change is made (and committed) first; then each configured node is asked over
AMI to drop the agent's dynamic members (:mod:`callcenter.ami.members`). What Asterisk did
goes to stdout; a node that could not be asked is a ``Warning:`` on stderr naming the node,
the reason and the console command that removes the member there. The exit status stays 0:
the directory change, which is what the command is for, was made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import click

from callcenter.ami import members
from callcenter.config import Settings

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, in a thread of its own when this thread already runs a loop
    (a command invoked from asynchronous code, as some tests do)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def remove_from_asterisk(
    settings: Settings,
    name: str,
    extension: str,
    queues: Sequence[str] | None,
    *,
    known_queues: Sequence[str] = (),
) -> None:
    """Take agent ``name`` out of ``queues`` (every queue when ``None``) on every node and say
    what happened. ``known_queues``: the queues the directory had them in, for the hint."""
    interface = members.interface_of(extension)
    results = run_coroutine(members.remove_member(settings, name, interface, queues))
    hint_queues = list(queues if queues is not None else known_queues)
    for result in results:
        if result.removed:
            click.echo(
                f"Asterisk node {result.node}: {name} removed from queue "
                f"{', '.join(result.removed)}"
            )
        if result.error:
            where = ", ".join(hint_queues) if hint_queues else "its queues"
            what = "was not reached" if not result.reached else "refused"
            click.echo(
                f"Warning: Asterisk node {result.node} {what} ({result.error}), so it may "
                f"still have agent {name} as a member of {where} "
                "(astdb keeps members across reloads and restarts); once it runs, remove them "
                f"there: {members.console_hint(settings, result.node, interface, hint_queues)}",
                err=True,
            )
