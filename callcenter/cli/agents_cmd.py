"""``callcenter agents``: the people who answer calls."""

from __future__ import annotations

import dataclasses

import click

from callcenter import directory
from callcenter.cli.context import (
    app,
    handle_errors,
    json_option,
    print_json,
    print_record,
    print_table,
)
from callcenter.cli.membership import remove_from_asterisk


@click.group("agents")
def agents() -> None:
    """Add, list, show, change and remove agents."""


@agents.command("add")
@click.argument("name")
@click.option("--extension", "-e", required=True, help="Their phone's PJSIP endpoint / extension.")
@click.option("--pin", required=True, help="4-12 digits, for logging in from the phone.")
@click.option("--full-name", default="", help="Shown on the wallboard.")
@click.option("--skills", default="", help="Comma-separated skills, e.g. spanish,billing.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="QUEUE[:PENALTY]",
    help="Join a queue (repeatable); a penalty ranks them (lower rings first).",
)
@json_option
@click.pass_context
@handle_errors
def add(
    ctx: click.Context,
    name: str,
    extension: str,
    pin: str,
    full_name: str,
    skills: str,
    queues: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add agent NAME (also their queue member name and login name)."""
    memberships = [_queue_penalty(q) for q in queues]
    with app(ctx).session() as s:
        agent = directory.add_agent(
            s, name=name, extension=extension, pin=pin, full_name=full_name, skills=skills
        )
        for queue, penalty in memberships:
            directory.join_queue(s, queue, name, penalty)
        s.refresh(agent)
        view = directory.AgentView.of(agent)
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        click.echo(f"agent {view.name} added (extension {extension})")


def _queue_penalty(text: str) -> tuple[str, int]:
    queue, _, penalty = text.partition(":")
    if penalty and not penalty.isdigit():
        raise directory.DirectoryError(f"--queue {text!r}: the penalty must be a whole number")
    return queue, int(penalty or 0)


@agents.command("list")
@json_option
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """List every agent."""
    with app(ctx).session() as s:
        views = [directory.AgentView.of(a) for a in directory.list_agents(s)]
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(
        f"{len(views)} agents",
        ["name", "full name", "extension", "skills", "queues (penalty)", "enabled"],
        [[v.name, v.full_name, v.extension, v.skills, v.queues, v.enabled] for v in views],
    )


@agents.command("show")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one agent."""
    with app(ctx).session() as s:
        view = directory.AgentView.of(directory.get_agent(s, name))
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        print_record(f"agent {name}", dataclasses.asdict(view))


@agents.command("update")
@click.argument("name")
@click.option("--extension", "-e")
@click.option("--pin")
@click.option("--full-name")
@click.option("--skills", help="Replaces the skills: comma-separated, empty to clear.")
@click.option("--enable/--disable", "enabled", default=None)
@click.option("--new-sip-secret", is_flag=True, help="Generate a new secret for their phone.")
@json_option
@click.pass_context
@handle_errors
def update(
    ctx: click.Context,
    name: str,
    extension: str | None,
    pin: str | None,
    full_name: str | None,
    skills: str | None,
    enabled: bool | None,
    new_sip_secret: bool,
    as_json: bool,
) -> None:
    """Change agent NAME; options not given stay as they are."""
    with app(ctx).session() as s:
        agent = directory.update_agent(
            s,
            name,
            extension=extension,
            pin=pin,
            full_name=full_name,
            skills=skills,
            enabled=enabled,
            new_sip_secret_=new_sip_secret,
        )
        view = directory.AgentView.of(agent)
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        click.echo(f"agent {name} updated")


@agents.command("password")
@click.argument("name")
@click.option("--password", help="The password (at least 10 characters); asked for if not given.")
@click.pass_context
@handle_errors
def password(ctx: click.Context, name: str, password: str | None) -> None:
    """Set the password agent NAME logs in to the agent's desktop (/agent) with. Prefer the
    prompt to --password (it stays out of shell history)."""
    from callcenter.wallboard import accounts

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with app(ctx).session() as s:
        accounts.set_agent_password(s, name, password)
    click.echo(f"agent {name} can now log in at /agent")


@agents.command("phone")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def phone(ctx: click.Context, name: str, as_json: bool) -> None:
    """What agent NAME's phone or softphone needs to register: server, port, transport, user
    name and password (their SIP secret, shown only here), codecs, and the feature codes."""
    from callcenter import phones

    obj = app(ctx)
    with obj.session() as s:
        view = phones.phone_settings(obj.settings, directory.get_agent(s, name))
    if as_json:
        print_json(view)
        return
    transports = ", ".join(f"{t['transport'].upper()} {t['port']}" for t in view["transports"])
    print_record(
        f"phone of agent {view['agent']}",
        {
            "server (registrar and proxy)": view["server"],
            "port": view["port"],
            "transport": transports,
            "user name": view["username"],
            "auth user name": view["auth_username"],
            "password (SIP secret)": view["password"],
            "codecs": view["codecs"],
            "DTMF": view["dtmf"],
            "media (RTP) ports": view["media_ports"],
        },
    )
    print_table("feature codes", ["dial", "to"], list(view["feature_codes"].items()))
    for note in view["notes"]:
        click.echo(f"Note: {note}")


@agents.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def remove(ctx: click.Context, name: str) -> None:
    """Remove agent NAME and their queue memberships (their call history stays).

    If NAME is logged in, each Asterisk node gets a QueueRemove over AMI for every queue that
    has them (a reload would not remove them). A node that cannot be reached is a warning on
    stderr with the console command that removes them there; the directory change stands.
    """
    obj = app(ctx)
    with obj.session() as s:
        agent = directory.get_agent(s, name)
        name, extension = agent.name, agent.extension
        queues = sorted(m.queue.name for m in agent.memberships)
        directory.remove_agent(s, name)
    click.echo(f"agent {name} removed")
    remove_from_asterisk(obj.settings, name, extension, None, known_queues=queues)
