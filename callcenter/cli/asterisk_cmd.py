"""``callcenter asterisk``: render Asterisk's configuration, run a private Asterisk, reload it.

The private instance lives in ``[asterisk] directory`` (default ``var/asterisk``): ``run``
renders into its ``etc/`` and starts Asterisk in the foreground there; ``reload`` renders again
and reloads the modules whose files changed. Agents and queues come from the database; the
AMI user from ``[nodes.local]``.
"""

from __future__ import annotations

from pathlib import Path

import click

from callcenter.asterisk import files, inputs, reload, run
from callcenter.asterisk.render import RenderError, RenderOptions, Trunk, render
from callcenter.cli.context import AppContext, app, handle_errors
from callcenter.security import store as security_store


def _render_set(obj: AppContext, directory: Path, binary: Path | None) -> dict[str, bytes]:
    """The set for ``directory``, from the settings and the database."""
    with obj.session() as session:
        agents, queues = inputs.load(session)
        campaigns = inputs.campaigns(session)
        blocked = security_store.active(session)  # the SIP blocklist (callcenter security)
    module_dir, data_dir = run.installation_dirs(binary) if binary else ("", "")
    a = obj.settings.asterisk
    options = RenderOptions(
        directory=directory,
        module_dir=module_dir,
        data_dir=data_dir,
        bind_address=a.bind_address,
        ami_permit=a.ami_permit,
        tls_port=a.tls_port,
        tls_cert_file=a.tls_cert_file,
        tls_key_file=a.tls_key_file,
        simulation=a.simulation,
    )
    trunks = [
        Trunk(
            name=t.name,
            host=t.host,
            port=t.port,
            transport=t.transport,
            dids=t.dids,
            match=t.match,
            username=t.username,
            secret=t.secret,
            register=t.register,
            from_domain=t.from_domain,
            codecs=t.codecs,
            outbound=t.outbound,
        )
        for t in obj.settings.trunks
    ]
    return render(
        obj.settings, agents, queues, trunks, options, campaigns=campaigns, blocked=blocked
    )


def _binary_or_none(obj: AppContext) -> Path | None:
    try:
        return run.find_binary(obj.settings)
    except run.AsteriskNotFound:
        return None


def _errors(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("asterisk")
def asterisk() -> None:
    """Render Asterisk's configuration, run a private Asterisk, reload it."""


@asterisk.command("render")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the configuration set into (created if missing).",
)
@click.pass_context
@handle_errors
def render_cmd(ctx: click.Context, out: Path) -> None:
    """Write the complete configuration set into OUT (secrets readable by owner and group)."""
    obj = app(ctx)
    instance = run.instance_dir(obj.settings)
    try:
        rendered = _render_set(obj, instance, _binary_or_none(obj))
        files.write_set(rendered, out)
    except (RenderError, OSError) as exc:
        raise _errors(exc) from exc
    click.echo(f"wrote {len(rendered)} files to {out} (paths inside point to {instance})")


@asterisk.command("run")
@click.option(
    "--verbosity", default=3, show_default=True, type=click.IntRange(0, 10), help="-v count."
)
@click.option("--die-with-parent", is_flag=True, hidden=True)  # `callcenter run`'s child
@click.pass_context
@handle_errors
def run_cmd(ctx: click.Context, verbosity: int, die_with_parent: bool) -> None:
    """Render into the instance's etc/ and become Asterisk, in the foreground.

    Stop it with Ctrl-C or SIGTERM (Asterisk shuts down cleanly on either).
    """
    obj = app(ctx)
    directory = run.instance_dir(obj.settings)
    try:
        binary = run.find_binary(obj.settings)
        if run.is_running(directory):
            raise click.ClickException(
                f"an Asterisk already runs in {directory}; stop it with "
                f"`{binary} -C {run.config_file(directory)} -rx 'core stop now'`"
            )
        rendered = _render_set(obj, directory, binary)
        run.prepare(directory)
        files.write_set(rendered, directory / "etc")
    except (run.AsteriskNotFound, RenderError, OSError) as exc:
        raise _errors(exc) from exc
    argv = run.command_line(binary, directory, verbosity)
    click.echo(f"starting {' '.join(argv)}", err=True)
    obj.close()  # no database connection carried into Asterisk
    if die_with_parent:
        run.die_with_parent()
    run.exec_foreground(argv)


@asterisk.command("reload")
@click.pass_context
@handle_errors
def reload_cmd(ctx: click.Context) -> None:
    """Render again; write the changed files and reload their modules in the running Asterisk.

    Exits 1, writing nothing, when no Asterisk runs in the instance directory: there is
    nothing to reload, and `callcenter run` (or `callcenter asterisk run`) renders the
    configuration afresh when it starts Asterisk.
    """
    obj = app(ctx)
    directory = run.instance_dir(obj.settings)
    etc = directory / "etc"
    try:
        binary = run.find_binary(obj.settings)
        if not run.is_running(directory):
            raise click.ClickException(
                f"Asterisk is not running in {directory}: nothing reloaded, nothing written; "
                "start it with `callcenter run` (or `callcenter asterisk run`), which renders "
                "the configuration as it starts"
            )
        rendered = _render_set(obj, directory, binary)
        changed = files.changed_files(rendered, etc)
        if not changed:
            click.echo("nothing changed")
            return
        files.write_set(rendered, etc, only=changed)
    except (run.AsteriskNotFound, RenderError, OSError) as exc:
        raise _errors(exc) from exc
    click.echo(f"changed: {', '.join(changed)}")
    todo = reload.plan(changed)
    try:
        reload.reload_modules(binary, directory, todo.modules)
    except reload.ReloadError as exc:
        raise _errors(exc) from exc
    if todo.modules:
        click.echo(f"reloaded: {', '.join(todo.modules)}")
    if todo.restart_for:
        click.echo(
            f"restart Asterisk to apply {', '.join(todo.restart_for)} (these cannot be reloaded)"
        )
