"""The long-running services: ``callcenter ami`` and ``callcenter run``."""

from __future__ import annotations

import asyncio

import click

from callcenter import service
from callcenter.cli.context import app, handle_errors

log_level = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


@click.command("ami")
@log_level
@click.pass_context
@handle_errors
def ami(ctx: click.Context, log_level: str) -> None:
    """Run the AMI bridge: follow every configured Asterisk node, keep the live state, write
    the call log and publish on MQTT. Stops cleanly on SIGTERM / Ctrl-C."""
    from callcenter.bridge.app import Bridge

    settings = app(ctx).settings
    service.setup_logging(log_level)
    bridge = Bridge(settings)
    service.run_until_signalled(bridge.run)


@click.command("dialer")
@log_level
@click.pass_context
@handle_errors
def dialer(ctx: click.Context, log_level: str) -> None:
    """Run the outbound dialer: work every running campaign whose lease it can take (one
    dialer per campaign), pace, dial over AMI, keep the attempt records and publish each
    campaign's live figures on MQTT. Agent state comes from the AMI bridge (run it too, or
    `callcenter run`). Stops cleanly on SIGTERM / Ctrl-C."""
    from callcenter.campaigns.dialer import Dialer

    settings = app(ctx).settings
    service.setup_logging(log_level)
    service.run_until_signalled(Dialer(settings).run)


@click.command("run")
@log_level
@click.pass_context
@handle_errors
def run(ctx: click.Context, log_level: str) -> None:
    """Run the call center until SIGTERM or Ctrl-C: a private Asterisk (when [nodes.local]
    is on this machine and Asterisk is installed; otherwise it says why not; restarted, with
    a growing pause, whenever it exits), then the AMI bridge, the IVR's FastAGI server, the
    supervisors' wallboard and the outbound dialer; and the webhooks' delivery worker."""
    from callcenter.agi.app import AgiService
    from callcenter.asterisk.child import run_private_asterisk
    from callcenter.bridge.app import Bridge
    from callcenter.campaigns.dialer import Dialer
    from callcenter.wallboard.app import Wallboard
    from callcenter.webhooks.delivery import DeliveryWorker

    settings = app(ctx).settings
    service.setup_logging(log_level)

    async def main(stop: asyncio.Event) -> None:
        # The parts that connect to AMI start once the private Asterisk answers (or there
        # will be none): no refused connection is logged for each second it takes to boot.
        ready = asyncio.Event()

        async def asterisk(stop: asyncio.Event) -> None:
            await run_private_asterisk(settings, stop, ready)

        parts: list[service.Main] = [
            asterisk,
            DeliveryWorker(settings).run,  # needs only the database: no wait for Asterisk
            *(
                service.after(ready, part)
                for part in (
                    Bridge(settings).run,
                    AgiService(settings).run,
                    Wallboard(settings).run,
                    Dialer(settings).run,
                )
            ),
        ]
        await service.run_all(parts, stop)

    service.run_until_signalled(main)
