"""The ``callcenter`` command: the composition root of the operator CLI.

Its commands are imported when used (:class:`LazyGroup`, click's documented pattern): every
command module imports its part of the system, and importing them all cost each service
about a second of CPU at every start -- time a restarted bridge spent before it could
reconnect, on a machine whose cores Asterisk was using (the soak's bridge fault).
"""

from __future__ import annotations

import importlib

import click

from callcenter import __version__
from callcenter.cli.context import AppContext

#: Each command's name and where it lives (``module:attribute``).
COMMANDS: dict[str, str] = {
    "agents": "callcenter.cli.agents_cmd:agents",
    "queues": "callcenter.cli.queues_cmd:queues",
    "calls": "callcenter.cli.calls_cmd:calls",
    "report": "callcenter.cli.report_cmd:report",
    "doctor": "callcenter.cli.doctor_cmd:doctor",
    "db": "callcenter.cli.db_cmd:db_group",
    "config": "callcenter.cli.config_cmd:config_group",
    "asterisk": "callcenter.cli.asterisk_cmd:asterisk",
    "ami": "callcenter.cli.services_cmd:ami",
    "agi": "callcenter.cli.agi_cmd:agi",
    "agi-stdio": "callcenter.cli.agi_cmd:agi_stdio",
    "ivr": "callcenter.cli.agi_cmd:ivr_group",
    "callbacks": "callcenter.cli.agi_cmd:callbacks_group",
    "wallboard": "callcenter.cli.wallboard_cmd:wallboard",
    "users": "callcenter.cli.wallboard_cmd:users",
    "monitor": "callcenter.cli.monitor_cmd:monitor",
    "simulate": "callcenter.cli.simulate_cmd:simulate",
    "campaigns": "callcenter.cli.campaigns_cmd:campaigns",
    "contacts": "callcenter.cli.campaigns_cmd:contacts",
    "dnc": "callcenter.cli.campaigns_cmd:dnc",
    "customers": "callcenter.cli.crm_cmd:customers",
    "dispositions": "callcenter.cli.crm_cmd:dispositions",
    "cases": "callcenter.cli.crm_cmd:cases",
    "dialer": "callcenter.cli.services_cmd:dialer",
    "forecast": "callcenter.cli.forecast_cmd:forecast",
    "qa": "callcenter.cli.qa_cmd:qa",
    "recordings": "callcenter.cli.recordings_cmd:recordings",
    "security": "callcenter.cli.security_cmd:security",
    "tokens": "callcenter.cli.webhooks_cmd:tokens_group",
    "webhooks": "callcenter.cli.webhooks_cmd:webhooks_group",
    "run": "callcenter.cli.services_cmd:run",
}


def load_command(name: str) -> click.Command:
    """The command ``name`` of :data:`COMMANDS`, its module imported now."""
    module, _, attribute = COMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{COMMANDS[name]} is not the click command {name!r}")
    return command


class LazyGroup(click.Group):
    """A group whose :data:`COMMANDS` are imported when looked up (help lists them all, and
    so imports them all; running one imports only its own)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        held = super().get_command(ctx, cmd_name)
        if held is not None or cmd_name not in COMMANDS:
            return held
        command = load_command(cmd_name)
        self.add_command(command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="CALLCENTER_CONFIG",
    type=click.Path(dir_okay=False),
    help=(
        "Settings file (TOML); default: $CALLCENTER_CONFIG, else ./callcenter.toml when it "
        "exists, else built-in defaults."
    ),
)
@click.version_option(__version__, prog_name="callcenter")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Operate the call center: agents, queues, the call log, reports and health."""
    obj = AppContext(config_path)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def main() -> None:
    cli(prog_name="callcenter")
