"""The IVR service's own settings, read from :class:`callcenter.config.Settings`.

``[agi]`` holds the server (host, port, max_sessions, command_timeout); the keys below extend
it. Until ``AgiSettings`` declares them, their defaults apply (see the report of issue 5 for the
lines to add to ``callcenter/config.py``); ``[ivr.<name>]`` tables hold the IVR definitions
(:mod:`callcenter.agi.ivr`), carried raw as ``Settings.ivr``.

- ``node`` (default: the first node): the Asterisk node this server serves: its AMI for
  feature codes and callbacks, and the ``node`` column of what it writes.
- ``sounds_dir`` (default: Asterisk's): where prompts are checked at load
  (``<dir>/<lang>/<name>.<ext>``).
- ``history_calls`` (5), ``history_days`` (90): how many past calls the caller history shows,
  and how far back it looks.
- ``preferred_agent_days`` (0): a caller's last agent within this many days rings first (0:
  never); ``preferred_agent_seconds`` (15): for how long, before the queue.
- ``screenpop_ttl`` (3600): seconds the broker keeps a screen-pop (MQTT 5 message expiry).
- ``callback_attempts`` (3): times a customer is dialled before the callback fails;
  ``callback_retry_seconds`` (120): pause before the placeholder is queued again after a failed
  dial; ``callback_expiry_hours`` (12): a callback still waiting after this long fails.
- ``callback_dial`` (``PJSIP/{number}@{trunk}``): how the customer is dialled (``{trunk}``: the
  dialplan's global OUTBOUND_TRUNK).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.config import ConfigError, NodeSettings, Settings

DEFAULT_SOUNDS_DIRS = ("/var/lib/asterisk/sounds", "/usr/share/asterisk/sounds")


@dataclass(frozen=True, slots=True)
class AgiOptions:
    node: str = ""
    sounds_dir: str = ""
    history_calls: int = 5
    history_days: int = 90
    preferred_agent_days: int = 0
    preferred_agent_seconds: int = 15
    screenpop_ttl: int = 3600
    callback_attempts: int = 3
    callback_retry_seconds: float = 120.0
    callback_expiry_hours: float = 12.0
    callback_dial: str = "PJSIP/{number}@{trunk}"

    @classmethod
    def from_settings(cls, settings: Settings) -> AgiOptions:
        """Every field that ``settings.agi`` has (by name) overrides the default."""
        have = {f.name: getattr(settings.agi, f.name) for f in dataclasses.fields(settings.agi)}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in have:
                kwargs[f.name] = have[f.name]
        options = cls(**kwargs)
        node_settings(settings, options)  # fail early on an unknown node name
        return options


def node_settings(settings: Settings, options: AgiOptions) -> NodeSettings:
    """The node this server serves: ``agi.node``, else the first configured node."""
    if options.node:
        return settings.node(options.node)
    if not settings.nodes:
        raise ConfigError("no Asterisk node is configured ([nodes.<name>])")
    return settings.nodes[0]


def sounds_dir(settings: Settings, options: AgiOptions) -> Path | None:
    """Where Asterisk's sounds are: ``agi.sounds_dir``; else the installation of the
    configured Asterisk binary (``<prefix>/var/lib/asterisk/sounds``); else the usual system
    places. None when there is none on this machine (prompts are then not checked)."""
    if options.sounds_dir:
        return Path(options.sounds_dir)
    try:
        from callcenter.asterisk.run import AsteriskNotFound, find_binary, installation_dirs
    except ImportError:  # pragma: no cover - the Asterisk package is part of the project
        return None
    try:
        _, data_dir = installation_dirs(find_binary(settings))
    except AsteriskNotFound:
        data_dir = ""
    if data_dir and (Path(data_dir) / "sounds").is_dir():
        return Path(data_dir) / "sounds"
    for candidate in DEFAULT_SOUNDS_DIRS:
        if Path(candidate).is_dir():
            return Path(candidate)
    return None
