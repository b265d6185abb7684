"""``callcenter security``: the addresses that failed too many SIP logins, and their blocks.

The bridge writes ``sip_blocks`` (callcenter/security); these commands read it and change it.
A block or an unblock is applied to the private Asterisk at once: acl.conf is rendered again
from the table and reloaded (``module reload acl``, over the console socket). With no
Asterisk running there, the table is changed all the same and the next start applies it.
"""

from __future__ import annotations

import time
from typing import Any

import click

from callcenter.cli.context import (
    AppContext,
    app,
    handle_errors,
    json_option,
    print_json,
    print_table,
)
from callcenter.db.models_security import SipBlock
from callcenter.security import blocklist, store
from callcenter.security.acl import AddressError, AllowList, block_key, checked_block, parse_network


@click.group("security")
def security() -> None:
    """SIP attack detection: addresses with too many failed logins, blocks and unblocks."""


def _row(row: SipBlock) -> dict[str, Any]:
    return {
        "address": row.address, "status": store.status(row), "failures": row.failures,
        "first_seen": row.first_seen, "last_seen": row.last_seen, "blocked_at": row.blocked_at,
        "unblocked_at": row.unblocked_at, "node": row.node, "reason": row.reason,
    }  # fmt: skip


@security.command("list")
@click.option(
    "--all", "everything", is_flag=True,
    help="Every address seen: also those unblocked, and alerts that were never blocked.",
)  # fmt: skip
@json_option
@click.pass_context
@handle_errors
def list_(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """The addresses blocked now (the most recently seen first), with the failed logins
    counted, when, from which node, and why."""
    a = app(ctx)
    with a.session() as s:
        rows = [_row(r) for r in store.rows(s, everything=everything)]
    if as_json:
        print_json(rows)
        return
    tz = a.settings.site.tz
    what = "addresses seen" if everything else "addresses blocked"
    print_table(
        f"{len(rows)} {what} (callcenter security unblock ADDRESS lifts a block)",
        ["address", "status", "failures", "first seen", "last seen", "blocked", "unblocked",
         "node", "reason"],
        [[r["address"], r["status"], r["failures"],
          *(r[k].astimezone(tz) if r[k] else None
            for k in ("first_seen", "last_seen", "blocked_at", "unblocked_at")),
          r["node"] or None, r["reason"] or None] for r in rows],
    )  # fmt: skip


def _apply(a: AppContext) -> None:
    """Render the blocklist from the table into the private Asterisk and reload it."""
    with a.session() as s:
        blocked = store.active(s)
    try:
        result = blocklist.apply(a.settings, blocked)
    except blocklist.BlocklistError as exc:
        raise click.ClickException(
            f"the table is changed, but the private Asterisk could not be: {exc}; "
            "`callcenter asterisk reload` tries again"
        ) from exc
    click.echo(result.detail)


@security.command("block")
@click.argument("address")
@click.option("--reason", default="", help="Why (kept in the table, shown by `list`).")
@click.pass_context
@handle_errors
def block_cmd(ctx: click.Context, address: str, reason: str) -> None:
    """Block ADDRESS (an IP address, or a network such as 203.0.113.0/24) in the private
    Asterisk's SIP ACL: every SIP request from it gets 403. Addresses in [security] allow
    cannot be blocked."""
    a = app(ctx)
    try:
        key = checked_block(address)
        allow = AllowList.parse(a.settings.security.allow)
    except AddressError as exc:
        raise click.ClickException(str(exc)) from exc
    inside = allow.overlaps(parse_network(key))
    if inside is not None:
        raise click.ClickException(
            f"{key} is in [security] allow ({inside}): the operator's own networks are never "
            "blocked; take it out of the allow-list first"
        )
    with a.session() as s:
        done = store.block(s, key, reason or "blocked by an operator", now=time.time())
    if done.already:
        click.echo(f"{key} is blocked already")
    else:
        click.echo(f"blocked {key}")
    _apply(a)


@security.command("unblock")
@click.argument("address")
@click.pass_context
@handle_errors
def unblock_cmd(ctx: click.Context, address: str) -> None:
    """Lift the block of ADDRESS (as `list` shows it). The bridge counts its failed logins
    from nothing again: a scanner that comes back is blocked again."""
    a = app(ctx)
    try:
        key = block_key(parse_network(address))
    except AddressError as exc:
        raise click.ClickException(str(exc)) from exc
    with a.session() as s:
        if not store.unblock(s, key, now=time.time()):
            raise click.ClickException(
                f"{key} is not blocked (`callcenter security list` shows what is)"
            )
    click.echo(f"unblocked {key}")
    _apply(a)
