"""``callcenter config``: the settings file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from callcenter import config
from callcenter.cli.context import app, handle_errors, json_option, print_json


@click.group("config")
def config_group() -> None:
    """Print an example settings file, or the settings in force."""


@config_group.command("example")
def example() -> None:
    """Print a commented example callcenter.toml with every default."""
    click.echo(config.EXAMPLE, nl=False)


def _public(value: Any) -> Any:
    if isinstance(value, config.Secret):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _public(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_public(v) for v in value]
    return value


@config_group.command("init")
@click.option(
    "--path", default=config.DEFAULT_FILE, show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--if-missing", is_flag=True, help="Do nothing, successfully, if the file exists.")
@handle_errors
def init(path: str, if_missing: bool) -> None:
    """Write a settings file with every default and freshly generated secrets."""
    target = Path(path)
    if target.exists():
        if if_missing:
            return
        raise config.ConfigError(f"{target} exists already; remove it or use another --path")
    target.write_text(config.init_file(), encoding="utf-8")
    target.chmod(0o600)
    click.echo(f"wrote {target} (secrets generated; readable by you only)")


@config_group.command("show")
@json_option
@click.pass_context
@handle_errors
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the settings in force (file, then environment); secrets show as ***."""
    settings = app(ctx).settings
    data = _public(settings)
    data["database"]["url"] = settings.database.display_url()
    if as_json:
        print_json(data)
        return
    click.echo(f"# from {settings.source} and the environment")
    for section, body in data.items():
        if section == "source":
            continue
        if section in ("nodes", "trunks"):
            for item in body:
                click.echo(f"[{section}.{item['name']}]")
                for k, v in item.items():
                    if k != "name":
                        click.echo(f"{k} = {json.dumps(v)}")
            continue
        click.echo(f"[{section}]")
        for k, v in body.items():
            click.echo(f"{k} = {json.dumps(v)}")
