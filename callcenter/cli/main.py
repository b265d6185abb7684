"""The ``callcenter`` command: the composition root of the operator CLI."""

from __future__ import annotations

import click

from callcenter import __version__
from callcenter.cli.agents_cmd import agents
from callcenter.cli.agi_cmd import agi, agi_stdio, callbacks_group, ivr_group
from callcenter.cli.asterisk_cmd import asterisk
from callcenter.cli.calls_cmd import calls
from callcenter.cli.campaigns_cmd import campaigns, contacts, dnc
from callcenter.cli.config_cmd import config_group
from callcenter.cli.context import AppContext
from callcenter.cli.crm_cmd import cases, customers, dispositions
from callcenter.cli.db_cmd import db_group
from callcenter.cli.doctor_cmd import doctor
from callcenter.cli.forecast_cmd import forecast
from callcenter.cli.monitor_cmd import monitor
from callcenter.cli.qa_cmd import qa
from callcenter.cli.queues_cmd import queues
from callcenter.cli.recordings_cmd import recordings
from callcenter.cli.report_cmd import report
from callcenter.cli.security_cmd import security
from callcenter.cli.services_cmd import ami, dialer, run
from callcenter.cli.simulate_cmd import simulate
from callcenter.cli.wallboard_cmd import users, wallboard
from callcenter.cli.webhooks_cmd import tokens_group, webhooks_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    agents,
    queues,
    calls,
    report,
    doctor,
    db_group,
    config_group,
    asterisk,
    ami,
    agi,
    agi_stdio,
    ivr_group,
    callbacks_group,
    wallboard,
    users,
    monitor,
    simulate,
    campaigns,
    contacts,
    dnc,
    customers,
    dispositions,
    cases,
    dialer,
    forecast,
    qa,
    recordings,
    security,
    tokens_group,
    webhooks_group,
    run,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="callcenter")
