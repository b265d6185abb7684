"""A small, complete set of render inputs that needs no database: for linting the dialplans
(scripts/lint_dialplans.py) and for tests. Every feature of the templates is exercised: an
enabled and a disabled agent, queues with default and non-default values (one with a dash in
its name and its own music class), a registering trunk with DIDs and one identified by address.
"""

from __future__ import annotations

from collections.abc import Mapping

from callcenter import config
from callcenter.asterisk.render import AgentConf, QueueConf, Trunk
from callcenter.config import Secret

SAMPLE_AMI_SECRET = "sample-ami-secret-not-for-production"  # noqa: S105 - a sample

AGENTS: tuple[AgentConf, ...] = (
    AgentConf("alice", "1001", "alice-sip-secret-0123456789abcdef", "Alice Doe"),
    AgentConf("bob", "1002", "bob-sip-secret-0123456789abcdefgh", 'Bob; "The Builder"'),
    AgentConf("carol", "1003", "carol-sip-secret-0123456789abcdef", "Carol", enabled=False),
)

QUEUES: tuple[QueueConf, ...] = (
    QueueConf("sales"),
    QueueConf(
        "support-east",
        strategy="leastrecent",
        service_level_seconds=30,
        wrapup_seconds=15,
        ring_seconds=20,
        retry_seconds=3,
        max_wait_seconds=600,
        max_callers=25,
        weight=2,
        priority=1,
        join_empty=False,
        leave_when_empty=True,
        announce_position=False,
        announce_holdtime=False,
        announce_frequency_seconds=90,
        autopause=True,
        autopause_after=1,
        music_class="calm",
    ),
)

TRUNKS: tuple[Trunk, ...] = (
    Trunk(
        "provider",
        "sip.provider.example",
        dids=("5551000", "+34910000000"),
        match=("192.0.2.0/24",),
        username="acct1",
        secret=Secret("trunk;secret"),
        register=True,
    ),
    Trunk("backup", "198.51.100.7", transport="tcp", outbound=False),
)


def settings(environ: Mapping[str, str] | None = None) -> config.Settings:
    """Defaults (no settings file) with an AMI secret, plus ``environ`` overrides."""
    env = {
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_NODES__LOCAL__SECRET": SAMPLE_AMI_SECRET,
        **(environ or {}),
    }
    return config.load(environ=env)
