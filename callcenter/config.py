"""The one settings object of every process, read from a TOML file and the environment.

Where it comes from, later wins:

1. defaults that work on a machine where PostgreSQL (127.0.0.1:5432) and Mosquitto
   (127.0.0.1:1883) run locally;
2. the TOML file named by ``--config FILE`` or ``CALLCENTER_CONFIG``, else ``./callcenter.toml``
   when it exists (``CALLCENTER_CONFIG=""`` means: no file, defaults only);
3. environment variables ``CALLCENTER_<SECTION>__<KEY>`` (two underscores between levels),
   e.g. ``CALLCENTER_DATABASE__URL``, ``CALLCENTER_MQTT__PORT`` or
   ``CALLCENTER_NODES__PBX1__SECRET`` for the node named ``pbx1``.

A bad value raises :class:`ConfigError` whose message names the key and where it came from.
Secrets are :class:`Secret` objects: their ``str``/``repr`` never show the value, so a
settings object can be logged or printed safely.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

ENV_PREFIX = "CALLCENTER_"
CONFIG_ENV = "CALLCENTER_CONFIG"
DEFAULT_FILE = "callcenter.toml"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """A setting is missing, unknown or malformed. The message names key and source."""


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or token. Shown as ``***`` everywhere except :meth:`reveal`."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One Asterisk server, reached over AMI."""

    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callcenter"
    secret: Secret = Secret("")
    # The IVR's and the dialer's own AMI users (same secret): each is sent only the events it
    # reads (callcenter/ami/wanted.py); the private Asterisk's manager.conf has them. Empty
    # (or ``username``): they log in as ``username`` and are sent what the bridge is sent.
    ivr_username: str = "callcenter-ivr"
    dialer_username: str = "callcenter-dialer"
    # Seconds between AMI Pings; a Ping unanswered within ping_timeout marks the link dead.
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    connect_timeout: float = 5.0
    # Where this node's queue_log file is, if we can read it (fills gaps after a disconnect
    # or a stop). Empty: for [nodes.local] on this machine, the private instance's
    # <[asterisk] directory>/log/queue_log (callcenter.bridge.app.queue_log_path); else none.
    queue_log_path: str = ""

    def login_as(self, username: str) -> NodeSettings:
        """This node reached as the AMI user ``username`` (``ivr_username``...); empty: as
        ``username``, the bridge's."""
        return dataclasses.replace(self, username=username) if username else self


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/callcenter"
    connect_timeout: float = 5.0

    def display_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return (
            f"DatabaseSettings(url={self.display_url()!r}, "
            f"connect_timeout={self.connect_timeout!r})"
        )


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: Secret = Secret("")
    topic_prefix: str = "callcenter"
    client_id: str = ""
    keepalive: int = 30


@dataclass(frozen=True, slots=True)
class AgiSettings:
    """The FastAGI server that Asterisk's AGI(agi://host:port/script) reaches."""

    host: str = "127.0.0.1"
    port: int = 4573
    max_sessions: int = 1000
    command_timeout: float = 60.0
    # The IVR service (callcenter.agi.options documents each one).
    node: str = ""  # the node whose AMI the feature codes and callbacks use; empty: the first
    sounds_dir: str = ""  # where prompts are checked; empty: the Asterisk installation's
    history_calls: int = 5
    history_days: int = 90
    preferred_agent_days: int = 0  # 0: never ring a returning caller's last agent first
    preferred_agent_seconds: int = 15
    screenpop_ttl: int = 3600
    callback_attempts: int = 3
    callback_retry_seconds: float = 120.0
    callback_expiry_hours: float = 12.0
    callback_dial: str = "PJSIP/{number}@{trunk}"
    # The queue a caller reaches when the IVR cannot finish (its server down, killed or cut
    # mid-call); empty: the caller hears "please try to call later" (dialplans/inbound.conf).
    fallback_queue: str = ""


@dataclass(frozen=True, slots=True)
class WallboardSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs session cookies. Empty: a random key per process (sessions end on restart).
    secret_key: Secret = Secret("")
    # Colours: SL below sl_target, waiting_alert callers or more, a longest wait of
    # longest_wait_alert seconds or more, an abandon rate above abandon_rate_alert.
    sl_target: float = 0.80
    waiting_alert: int = 5
    longest_wait_alert: float = 60.0
    abandon_rate_alert: float = 0.05
    push_interval: float = 0.1  # least seconds between pushes to browsers
    kpi_interval: float = 2.0  # least seconds between queries of today's figures
    kpi_max_age: float = 30.0  # ...and at least this often
    session_hours: float = 12.0
    tv_session_days: float = 400.0  # browsers cap cookies at 400 days
    login_attempts: int = 5  # failures per login_window, per (address, account) pair
    login_window: float = 300.0
    login_address_attempts: int = 20  # failures per login_window per address, all accounts
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For/-Proto are believed: none.
    trusted_proxies: tuple[str, ...] = ()
    # HTTPS: the certificate (chain) and its key, PEM files; both or neither.
    tls_cert: str = ""
    tls_key: str = ""
    hsts: int = 31536000  # Strict-Transport-Security max-age on HTTPS answers; 0: none
    # The reasons an agent picks from on the agent's desktop when pausing.
    pause_reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting", "coaching")
    # The campaign the agent's desktop books callbacks into (create it: campaigns add).
    callback_campaign: str = "callbacks"


@dataclass(frozen=True, slots=True)
class SiteSettings:
    name: str = "Call center"
    timezone: str = "UTC"
    # ISO 3166 region of numbers written without a country code (campaign contacts, DNC).
    region: str = "US"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class ReportingSettings:
    """Rules for the report's measures (README, "What the report's figures mean"); the board
    shows which apply."""

    # Abandons shorter than this are left out of offered, abandoned and SL (0: count them all).
    short_abandon_seconds: int = 5
    # Whether abandoned calls count as offered calls not answered in time.
    abandons_count_against_sl: bool = True


@dataclass(frozen=True, slots=True)
class AsteriskSettings:
    """The private Asterisk that `callcenter asterisk run` starts (issue 3)."""

    binary: str = ""  # empty: ASTERISK_BIN, then PATH
    directory: str = "var/asterisk"  # relative to the working directory
    sip_port: int = 5060
    rtp_start: int = 10000
    rtp_end: int = 20000
    # SIP and AMI listen here (media too unless it is 0.0.0.0).
    bind_address: str = "127.0.0.1"
    ami_permit: tuple[str, ...] = ("127.0.0.1/32",)
    tls_port: int = 5061
    tls_cert_file: str = ""  # TLS transport only when both cert and key are set
    tls_key_file: str = ""
    # Render the [sim-caller]/[sim-agent] contexts that `callcenter simulate` needs.
    simulation: bool = False


@dataclass(frozen=True, slots=True)
class TrunkSettings:
    """A SIP trunk to a provider (``[trunks.<name>]``)."""

    name: str
    host: str = ""
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    dids: tuple[str, ...] = ()  # empty: any number is accepted
    match: tuple[str, ...] = ()  # identify calls by source address; empty: host
    username: str = ""
    secret: Secret = Secret("")
    register: bool = False
    from_domain: str = ""
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    outbound: bool = True  # the first outbound trunk by name carries callbacks and campaigns


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """The AMI bridge: where the call log waits while PostgreSQL is away."""

    spool_dir: str = "var/spool"
    spool_max_mb: int = 1024
    # The call log is at most this many seconds behind Asterisk.
    flush_interval: float = 1.0
    # Keep every AMI event in call_events (the audit log). Off saves space, not correctness.
    audit_events: bool = True
    # Seconds between reloads of queue settings (wrap-up, max wait) from the database.
    queue_refresh: float = 60.0


@dataclass(frozen=True, slots=True)
class DialerSettings:
    """The outbound dialer (``callcenter dialer``, also inside ``callcenter run``)."""

    # The [nodes.*] it dials through (empty: the first node).
    node: str = ""
    # How a customer is dialled: {number} (E.164 without '+' when strip_plus) and {trunk}.
    # Tests and labs use a Local channel, e.g. "Local/{number}@test-customers".
    customer_channel: str = "PJSIP/{number}@{trunk}"
    strip_plus: bool = False
    # Seconds between pacing decisions.
    tick: float = 1.0
    # Seconds a dialer holds a campaign without renewing; another may take it after that.
    lease_seconds: float = 15.0
    # Who this dialer is in leases and attempt records (empty: host:pid).
    name: str = ""


@dataclass(frozen=True, slots=True)
class WebhooksSettings:
    """The webhook delivery worker (``callcenter webhooks run``, also inside ``callcenter run``)."""

    # Seconds one POST may take (connect, send, answer) before it counts as failed.
    timeout: float = 10.0
    # Seconds between looks at the outbox when nothing is due.
    poll_interval: float = 1.0
    # Rows claimed at a time, and POSTs at once to one receiver.
    batch: int = 100
    concurrency: int = 4
    # Retries: exponential from backoff_base seconds, doubling, capped at backoff_cap, with
    # jitter (each wait is drawn between half and all of that).
    backoff_base: float = 10.0
    backoff_cap: float = 600.0
    # An event not delivered this many hours after it happened is given up (status dead).
    max_age_hours: float = 72.0
    # Delivered and dead rows, and their delivery log, are deleted after this many days.
    keep_days: float = 30.0


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """Call recording (``[recording]``; callcenter/recordings, docs/recordings.md). Which calls
    are recorded is each queue's and campaign's policy (``queues update Q --record ...``)."""

    # Where MixMonitor writes (YYYY/MM/DD/ below it) and the web app reads. Empty: the private
    # instance's <[asterisk] directory>/recordings. Relative: from the working directory.
    dir: str = ""
    # wav (16-bit PCM, 8 kHz) or wav16 (16 kHz): what browsers play and Python's wave reads.
    format: str = "wav"
    # A beep every this many seconds while recording (MixMonitor option B); 0: none.
    beep_seconds: int = 0
    # The DTMF code, received on the agent's channel, that starts an on-demand recording: the
    # web's "Record" button sends it over AMI (PlayDTMF Receive); the agent's phone may too.
    demand_code: str = "*9"
    # Seconds after a recorded leg ended before a file that never closed is marked missing.
    missing_after: float = 120.0


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """SIP attack detection (``[security]``; callcenter/security, docs/security-sip.md): failed
    logins counted per source address by the AMI bridge."""

    # An alert when one address fails this many logins (SIP or AMI) within window seconds.
    threshold: int = 10
    window: float = 60.0
    # Also block it: the private Asterisk's SIP ACL refuses it (403) until `security unblock`.
    block: bool = False
    # Never blocked: the operator's own networks (offices, VPN, the trunks' providers).
    allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # Seconds an alert stays on the board after the address's last failure.
    alert_hold: float = 900.0
    # Addresses counted at once; past this the least recently seen are forgotten, so a flood
    # of (spoofed) addresses cannot grow the bridge's memory.
    max_tracked: int = 10_000


@dataclass(frozen=True, slots=True)
class Settings:
    nodes: tuple[NodeSettings, ...] = (NodeSettings(name="local"),)
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    agi: AgiSettings = AgiSettings()
    wallboard: WallboardSettings = WallboardSettings()
    site: SiteSettings = SiteSettings()
    reporting: ReportingSettings = ReportingSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    bridge: BridgeSettings = BridgeSettings()
    dialer: DialerSettings = DialerSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    recording: RecordingSettings = RecordingSettings()
    security: SecuritySettings = SecuritySettings()
    trunks: tuple[TrunkSettings, ...] = ()
    # The [ivr.<name>] tables, raw: callcenter.agi.ivr.load_ivrs checks them (with the sounds).
    ivr: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"

    def node(self, name: str) -> NodeSettings:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ConfigError(f"no Asterisk node named {name!r} (known: {self.node_names()})")

    def node_names(self) -> str:
        return ", ".join(n.name for n in self.nodes)


# --- loading ------------------------------------------------------------------------------

T = TypeVar("T")

_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "mqtt": MqttSettings,
    "agi": AgiSettings,
    "wallboard": WallboardSettings,
    "site": SiteSettings,
    "reporting": ReportingSettings,
    "asterisk": AsteriskSettings,
    "bridge": BridgeSettings,
    "dialer": DialerSettings,
    "webhooks": WebhooksSettings,
    "recording": RecordingSettings,
    "security": SecuritySettings,
}


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings: defaults, then the file (``path`` or ``$CALLCENTER_CONFIG``), then env.

    Raises :class:`ConfigError` naming the key and its source on any bad value, and when a
    named file does not exist or is not valid TOML.
    """
    env = os.environ if environ is None else environ
    file = find_file(path, env)
    raw: dict[str, Any] = {}
    source = "defaults"
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
        source = str(file)
    origins: dict[str, str] = {}
    _merge_env(raw, env, origins)
    return _build(raw, source, origins)


def find_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The settings file in force: ``path``; else ``$CALLCENTER_CONFIG`` (set but empty means
    no file); else ``./callcenter.toml`` when it exists; else none (defaults)."""
    if path:
        return Path(path)
    if CONFIG_ENV in env:
        return Path(env[CONFIG_ENV]) if env[CONFIG_ENV] else None
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def init_file() -> str:
    """The example settings with fresh secrets for the local AMI user and the wallboard."""
    return EXAMPLE.replace(
        "# Prefer CALLCENTER_NODES__LOCAL__SECRET in the environment to a secret in this file.\n"
        'secret = ""',
        f'secret = "{secrets.token_urlsafe(24)}"  # generated by `callcenter config init`',
    ).replace(
        'secret_key = ""          # signs session cookies; empty: random per process',
        f'secret_key = "{secrets.token_urlsafe(32)}"',
    )


def _merge_env(raw: dict[str, Any], env: Mapping[str, str], origins: dict[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in path):
            raise ConfigError(f"environment {name}: empty key part")
        target = raw
        for part in path[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"environment {name}: {part} is not a table")
            target = nxt
        target[path[-1]] = value
        origins[".".join(path)] = f"environment {name}"


def _build(raw: dict[str, Any], source: str, origins: dict[str, str]) -> Settings:
    def where(key: str) -> str:
        return origins.get(key, source)

    unknown = set(raw) - set(_SECTIONS) - {"nodes", "trunks", "ivr"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{where(key)}: unknown setting {key!r} "
            f"(sections: ivr, nodes, trunks, {', '.join(sorted(_SECTIONS))})"
        )
    kwargs: dict[str, Any] = {"source": source}
    for section, cls in _SECTIONS.items():
        if section in raw:
            kwargs[section] = _section(cls, raw[section], section, where)
    if "nodes" in raw:
        kwargs["nodes"] = _named(NodeSettings, "nodes", raw["nodes"], where, required=True)
    if "trunks" in raw:
        kwargs["trunks"] = _named(TrunkSettings, "trunks", raw["trunks"], where, required=False)
    if "ivr" in raw:
        if not isinstance(raw["ivr"], dict):
            raise ConfigError(f"{where('ivr')}: [ivr] must hold tables of IVRs, e.g. [ivr.main]")
        kwargs["ivr"] = raw["ivr"]
    settings = Settings(**kwargs)
    _validate(settings, where)
    return settings


def _named(
    cls: type[T], section: str, value: Any, where: Callable[[str], str], *, required: bool
) -> tuple[T, ...]:
    """``[<section>.<name>]`` tables (nodes, trunks) as settings objects with a ``name``."""
    example = "pbx1" if section == "nodes" else "provider"
    if not isinstance(value, dict) or (required and not value):
        raise ConfigError(
            f"{where(section)}: {section} must be a table of named {section}, "
            f"e.g. [{section}.{example}]"
        )
    items = []
    for name, body in value.items():
        key = f"{section}.{name}"
        if not NAME_RE.match(name):
            raise ConfigError(
                f"{where(key)}: name {name!r} in [{section}] must be lower-case letters, "
                "digits, - or _"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{where(key)}: {key} must be a table")
        items.append(_section(cls, {**body, "name": name}, key, where))
    return tuple(items)


def _section(cls: type[T], value: Any, prefix: str, where: Callable[[str], str]) -> T:
    if not isinstance(value, dict):
        raise ConfigError(f"{where(prefix)}: [{prefix}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        full = f"{prefix}.{key}"
        if key not in fields:
            known = ", ".join(sorted(k for k in fields if k != "name"))
            raise ConfigError(f"{where(full)}: unknown setting {full!r} (known: {known})")
        kwargs[key] = _coerce(fields[key].type, item, full, where(full))
    return cls(**kwargs)


def _coerce(kind: Any, value: Any, key: str, origin: str) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    bad = f"{origin}: {key} = {value!r} is not "
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(bad + "a string")
        return value
    if kind == "tuple[str, ...]":
        if isinstance(value, str):  # from the environment: comma-separated
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(bad + "a list of strings")
    if kind == "Secret":
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: {key} must be a string")
        return Secret(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(bad + "a boolean (true/false)")
    if kind == "int":
        if isinstance(value, bool):
            raise ConfigError(bad + "a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(bad + "a whole number")
    if kind == "float":
        if isinstance(value, bool):
            raise ConfigError(bad + "a number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(bad + "a number")
    raise ConfigError(f"{origin}: {key}: unsupported setting type {kind}")  # pragma: no cover


def _port(value: int, key: str, where: Callable[[str], str]) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{where(key)}: {key} = {value} is not a TCP port (1-65535)")


def _positive(value: float, key: str, where: Callable[[str], str]) -> None:
    if value <= 0:
        raise ConfigError(f"{where(key)}: {key} = {value} must be greater than 0")


def _validate(s: Settings, where: Callable[[str], str]) -> None:
    for node in s.nodes:
        p = f"nodes.{node.name}"
        _port(node.port, f"{p}.port", where)
        for attr in ("ping_interval", "ping_timeout", "connect_timeout"):
            _positive(getattr(node, attr), f"{p}.{attr}", where)
        if not node.host:
            raise ConfigError(f"{where(p + '.host')}: {p}.host must not be empty")
    _port(s.mqtt.port, "mqtt.port", where)
    _port(s.agi.port, "agi.port", where)
    _port(s.wallboard.port, "wallboard.port", where)
    _port(s.asterisk.sip_port, "asterisk.sip_port", where)
    _positive(s.agi.max_sessions, "agi.max_sessions", where)
    _positive(s.agi.command_timeout, "agi.command_timeout", where)
    if s.agi.node and s.agi.node not in {n.name for n in s.nodes}:
        raise ConfigError(f"{where('agi.node')}: agi.node = {s.agi.node!r} names no node")
    for key in ("history_calls", "screenpop_ttl", "callback_attempts", "callback_expiry_hours"):
        _positive(getattr(s.agi, key), f"agi.{key}", where)
    _positive(s.database.connect_timeout, "database.connect_timeout", where)
    w = s.wallboard
    if not 0 < w.sl_target <= 1:
        raise ConfigError(f"{where('wallboard.sl_target')}: wallboard.sl_target must be in (0, 1]")
    if not 0 <= w.abandon_rate_alert <= 1:
        raise ConfigError(
            f"{where('wallboard.abandon_rate_alert')}: wallboard.abandon_rate_alert must be "
            "in [0, 1]"
        )
    for key in ("push_interval", "kpi_interval", "kpi_max_age", "session_hours",
                "tv_session_days", "login_window", "longest_wait_alert", "waiting_alert",
                "login_attempts", "login_address_attempts"):  # fmt: skip
        _positive(getattr(w, key), f"wallboard.{key}", where)
    _wallboard_web(w, where)
    _positive(s.bridge.spool_max_mb, "bridge.spool_max_mb", where)
    _positive(s.bridge.flush_interval, "bridge.flush_interval", where)
    _positive(s.bridge.queue_refresh, "bridge.queue_refresh", where)
    _positive(s.dialer.tick, "dialer.tick", where)
    if s.dialer.lease_seconds < 3 * s.dialer.tick:
        raise ConfigError(
            f"{where('dialer.lease_seconds')}: dialer.lease_seconds must be at least 3 ticks"
        )
    if "{number}" not in s.dialer.customer_channel:
        raise ConfigError(
            f"{where('dialer.customer_channel')}: dialer.customer_channel must contain {{number}}"
        )
    if s.dialer.node and s.dialer.node not in {n.name for n in s.nodes}:
        raise ConfigError(f"{where('dialer.node')}: dialer.node names no [nodes.*]")
    wh = s.webhooks
    for key in ("timeout", "poll_interval", "batch", "concurrency", "backoff_base",
                "backoff_cap", "max_age_hours", "keep_days"):  # fmt: skip
        _positive(getattr(wh, key), f"webhooks.{key}", where)
    if wh.backoff_cap < wh.backoff_base:
        raise ConfigError(
            f"{where('webhooks.backoff_cap')}: webhooks.backoff_cap must be at least backoff_base"
        )
    if wh.keep_days * 24 < wh.max_age_hours:
        raise ConfigError(
            f"{where('webhooks.keep_days')}: webhooks.keep_days must cover max_age_hours"
        )
    _recording(s.recording, where)
    _security(s.security, where)
    if not s.asterisk.rtp_start < s.asterisk.rtp_end:
        raise ConfigError(f"{where('asterisk.rtp_start')}: asterisk.rtp_start must be < rtp_end")
    if s.asterisk.rtp_start % 2:
        # RTP uses even ports (RTCP the odd one above); Asterisk would round it and warn.
        raise ConfigError(f"{where('asterisk.rtp_start')}: asterisk.rtp_start must be even")
    _port(s.asterisk.tls_port, "asterisk.tls_port", where)
    for trunk in s.trunks:
        key = f"trunks.{trunk.name}"
        if not trunk.host:
            raise ConfigError(f"{where(key + '.host')}: {key}.host must name the provider")
        _port(trunk.port, f"{key}.port", where)
        if trunk.transport not in ("udp", "tcp", "tls"):
            raise ConfigError(
                f"{where(key + '.transport')}: {key}.transport = {trunk.transport!r} is not "
                "udp, tcp or tls"
            )
    if s.reporting.short_abandon_seconds < 0:
        raise ConfigError(
            f"{where('reporting.short_abandon_seconds')}: "
            "reporting.short_abandon_seconds must be 0 or more"
        )
    url = s.database.url
    if not url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise ConfigError(
            f"{where('database.url')}: database.url = {mask_url(url)!r} must be a PostgreSQL "
            "URL such as postgresql+psycopg://user@127.0.0.1:5432/callcenter"
        )
    try:
        zoneinfo.ZoneInfo(s.site.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where('site.timezone')}: site.timezone = {s.site.timezone!r} is not a time zone "
            "name such as Europe/Madrid or America/New_York"
        ) from None
    import phonenumbers  # here, not at the top: only the settings' check needs it

    if s.site.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"{where('site.region')}: site.region = {s.site.region!r} is not a region "
            "(ISO 3166) such as US, GB or ES"
        )
    if not NAME_RE.match(s.mqtt.topic_prefix.replace("/", "-")):
        raise ConfigError(f"{where('mqtt.topic_prefix')}: mqtt.topic_prefix must be a plain name")


def _recording(r: RecordingSettings, where: Callable[[str], str]) -> None:
    """``[recording]``: a format Asterisk writes and browsers play, a DTMF code, sane times."""
    if r.format not in ("wav", "wav16"):
        raise ConfigError(
            f"{where('recording.format')}: recording.format = {r.format!r} is not wav or wav16"
        )
    if r.beep_seconds < 0:
        raise ConfigError(
            f"{where('recording.beep_seconds')}: recording.beep_seconds must be 0 (no beep) or more"
        )
    if not re.fullmatch(r"[0-9*#A-D]{1,8}", r.demand_code):
        raise ConfigError(
            f"{where('recording.demand_code')}: recording.demand_code = {r.demand_code!r} "
            "must be 1-8 DTMF digits (0-9 * # A-D)"
        )
    _positive(r.missing_after, "recording.missing_after", where)
    if any(c in r.dir for c in "\r\n;,"):
        raise ConfigError(
            f"{where('recording.dir')}: recording.dir may hold no line break, ';' or ','"
        )


def _security(sec: SecuritySettings, where: Callable[[str], str]) -> None:
    """``[security]``: a threshold and window that can be met, a readable allow-list."""
    if not 1 <= sec.threshold <= 1000:
        raise ConfigError(
            f"{where('security.threshold')}: security.threshold = {sec.threshold} must be "
            "1-1000 failed logins (within security.window seconds)"
        )
    _positive(sec.window, "security.window", where)
    _positive(sec.alert_hold, "security.alert_hold", where)
    if sec.max_tracked < 100:
        raise ConfigError(
            f"{where('security.max_tracked')}: security.max_tracked = {sec.max_tracked} must "
            "be at least 100 addresses"
        )
    for entry in sec.allow:
        host, slash, bits = entry.strip().partition("/")
        host = host.removeprefix("[").removesuffix("]").split("%", 1)[0]
        try:
            ipaddress.ip_network(f"{host}{slash}{bits}", strict=False)
        except ValueError:
            raise ConfigError(
                f"{where('security.allow')}: security.allow: {entry!r} is not an IP address "
                'or network (e.g. "192.168.1.0/24" or "2001:db8::/48")'
            ) from None


def _wallboard_web(w: WallboardSettings, where: Callable[[str], str]) -> None:
    """The wallboard's proxies, TLS files and HSTS (callcenter/wallboard/auth.py, app.py)."""
    for entry in w.trusted_proxies:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{where('wallboard.trusted_proxies')}: wallboard.trusted_proxies: {entry!r} is "
                'not an IP address or network (e.g. "127.0.0.1" or "10.0.0.0/24")'
            ) from None
    if bool(w.tls_cert) != bool(w.tls_key):
        given, missing = ("tls_cert", "tls_key") if w.tls_cert else ("tls_key", "tls_cert")
        raise ConfigError(
            f"{where('wallboard.' + given)}: wallboard.{given} is set but wallboard.{missing} "
            "is not: tls_cert and tls_key go together (PEM files) to serve HTTPS, or neither"
        )
    if w.hsts < 0:
        raise ConfigError(
            f"{where('wallboard.hsts')}: wallboard.hsts = {w.hsts} must be 0 (no header) or "
            "the seconds browsers keep to HTTPS, e.g. 31536000"
        )


def sqlalchemy_url(url: str) -> str:
    """Make any PostgreSQL URL use the psycopg 3 driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


EXAMPLE = """\
# callcenter.toml: the settings of every callcenter process.
# Every key may be left out; the value shown is the default. Any key can also be set in the
# environment as CALLCENTER_<SECTION>__<KEY>, e.g. CALLCENTER_DATABASE__URL or
# CALLCENTER_NODES__PBX1__SECRET. Point the processes at this file with --config FILE or
# CALLCENTER_CONFIG=FILE.

[site]
name = "Call center"
# IANA time zone of the call center: "today" in reports and business hours use it.
timezone = "UTC"
# Region (ISO 3166, e.g. US, GB, ES) of phone numbers written without a country code, in
# campaign contact files and the do-not-call list.
region = "US"

# One table per Asterisk server, reached over AMI (manager.conf). Names: a-z 0-9 - _.
[nodes.local]
host = "127.0.0.1"
port = 5038
username = "callcenter"
# Prefer CALLCENTER_NODES__LOCAL__SECRET in the environment to a secret in this file.
secret = ""
ivr_username = "callcenter-ivr"        # the IVR's own AMI user (same secret), sent only the
dialer_username = "callcenter-dialer"  # events it reads; the dialer's; "": as username
ping_interval = 10.0     # seconds between AMI Pings
ping_timeout = 5.0       # a Ping unanswered for this long means the link is dead
connect_timeout = 5.0
queue_log_path = ""      # Asterisk's queue_log file, if readable: fills gaps after a disconnect
                         # or a stop; empty: for [nodes.local] on this machine, the private
                         # instance's (<[asterisk] directory>/log/queue_log)

[database]
url = "postgresql+psycopg://postgres@127.0.0.1:5432/callcenter"
connect_timeout = 5.0

[mqtt]
host = "127.0.0.1"
port = 1883
username = ""
password = ""
topic_prefix = "callcenter"
client_id = ""           # empty: callcenter-<process>-<host>
keepalive = 30

[agi]
# The FastAGI server; dialplans call AGI(agi://host:port/<script>).
host = "127.0.0.1"
port = 4573
max_sessions = 1000
command_timeout = 60.0
node = ""                # the node whose AMI feature codes and callbacks use; empty: the first
sounds_dir = ""          # where IVR prompts are checked; empty: the Asterisk installation's
history_calls = 5        # caller history: how many past calls, from how many days back
history_days = 90
preferred_agent_days = 0      # >0: a returning caller rings their last agent first (bypasses
                              # Queue(), so such calls are not in the queue's figures)
preferred_agent_seconds = 15
screenpop_ttl = 3600     # seconds the broker keeps a screen-pop
callback_attempts = 3    # dials of the customer before a callback fails
callback_retry_seconds = 120.0
callback_expiry_hours = 12.0
callback_dial = "PJSIP/{number}@{trunk}"   # {trunk}: the first outbound trunk

# IVRs: one [ivr.<name>] table each, checked by `callcenter ivr check` (see
# callcenter/agi/ivr.py for every key). The ivr script's arg 1 (the DID) picks one by `dids`.
# [ivr.main]
# start = "welcome"
# dids = ["100"]
# [ivr.main.nodes.welcome]
# prompt = "hello-world"
# choices = { "1" = "sales" }
# [ivr.main.nodes.sales]
# target = "queue"
# queue = "sales"

[wallboard]
host = "127.0.0.1"
port = 8080
secret_key = ""          # signs session cookies; empty: random per process
# Colours on the board: SL under sl_target, waiting_alert callers or more, a longest wait of
# longest_wait_alert seconds or more, an abandon rate above abandon_rate_alert.
sl_target = 0.8
waiting_alert = 5
longest_wait_alert = 60.0
abandon_rate_alert = 0.05
push_interval = 0.1      # least seconds between pushes to browsers
kpi_interval = 2.0       # least seconds between queries of today's figures
kpi_max_age = 30.0       # ...and at least this often
session_hours = 12.0
tv_session_days = 400.0  # read-only TV screens stay logged in this long
login_attempts = 5       # failed logins per login_window, per (address, account) pair
login_window = 300.0
login_address_attempts = 20   # failed logins per login_window from one address, all accounts
trusted_proxies = []     # reverse proxies whose X-Forwarded-For/-Proto count, e.g. ["127.0.0.1"]
tls_cert = ""            # HTTPS: certificate chain (PEM) and its key; both or neither
tls_key = ""
hsts = 31536000          # Strict-Transport-Security max-age over HTTPS; 0: no header
pause_reasons = ["break", "lunch", "training", "meeting", "coaching"]   # the agent's desktop
callback_campaign = "callbacks"   # where the agent's desktop books callbacks (a campaign)

[reporting]
# Abandons shorter than this many seconds are left out of offered, abandoned and SL.
short_abandon_seconds = 5
# Count abandoned calls against the service level (as calls not answered in time).
abandons_count_against_sl = true

[bridge]
spool_dir = "var/spool"  # where the call log waits while PostgreSQL is away
spool_max_mb = 1024      # past this the bridge stops reading AMI until the database is back
flush_interval = 1.0     # the call log is at most this many seconds behind
audit_events = true      # keep every AMI event in call_events
queue_refresh = 60.0     # seconds between reloads of queue settings from the database

[dialer]
node = ""                # the [nodes.*] it dials through; empty: the first
customer_channel = "PJSIP/{number}@{trunk}"   # how a customer is dialled
strip_plus = false       # dial 15551230000 instead of +15551230000
tick = 1.0               # seconds between pacing decisions
lease_seconds = 15.0     # a campaign whose dialer stops renewing is free after this
name = ""                # this dialer in leases and attempt records; empty: host:pid

[webhooks]
# Delivery of events to the CRM (`callcenter webhooks add URL --events ...`).
timeout = 10.0           # seconds one POST may take
poll_interval = 1.0      # seconds between looks at the outbox when nothing is due
batch = 100              # rows claimed at a time
concurrency = 4          # POSTs at once to one receiver
backoff_base = 10.0      # first retry after 5-10 s, then doubling...
backoff_cap = 600.0      # ...up to 5-10 minutes between tries
max_age_hours = 72.0     # an event not delivered by then is given up (dead)
keep_days = 30.0         # delivered and dead rows and their log are deleted after this

[recording]
# Call recording (docs/recordings.md); which calls: `callcenter queues update Q --record ...`.
dir = ""                 # where the files go (YYYY/MM/DD/ below); empty:
                         # <[asterisk] directory>/recordings
format = "wav"           # wav (8 kHz) | wav16 (16 kHz)
beep_seconds = 0         # a beep every N seconds while recording; 0: none
demand_code = "*9"       # DTMF that starts an on-demand recording (the web sends it over AMI)
missing_after = 120.0    # seconds after a call a file that never closed is marked missing

[security]
# SIP attack detection (docs/security-sip.md): failed logins counted per source address.
threshold = 10           # an alert when one address fails this many logins...
window = 60.0            # ...within this many seconds
block = false            # also block it in the private Asterisk's SIP ACL (403 from then on)
allow = ["127.0.0.1/32", "::1/128"]   # never blocked: add your offices, VPN and trunks
alert_hold = 900.0       # seconds an alert stays on the board after the last failure
max_tracked = 10000      # addresses counted at once (memory stays bounded under a flood)

[asterisk]
# The private Asterisk that `callcenter asterisk run` starts.
binary = ""              # empty: $ASTERISK_BIN, then PATH
directory = "var/asterisk"
sip_port = 5060
rtp_start = 10000         # even
rtp_end = 20000
bind_address = "127.0.0.1"   # SIP and AMI listen here: 127.0.0.1 is this machine only; for
                             # LAN phones, its LAN address or "0.0.0.0", then restart
                             # `callcenter run` (README, Connecting phones)
ami_permit = ["127.0.0.1/32"]
tls_port = 5061
tls_cert_file = ""        # TLS transport only when both cert and key are set
tls_key_file = ""
simulation = false       # render the contexts of `callcenter simulate` (make demo sets it)

# SIP trunks to providers, one table each (none by default). Calls from a trunk enter the
# IVR; the first outbound trunk by name carries callbacks and campaigns.
# [trunks.provider]
# host = "sip.example.net"
# port = 5060
# transport = "udp"        # udp | tcp | tls
# dids = ["+34910000000"]  # empty: any number is accepted
# match = ["203.0.113.0/24"]  # identify by source address; empty: host
# username = ""
# secret = ""              # better: CALLCENTER_TRUNKS__PROVIDER__SECRET
# register = false
# from_domain = ""
# codecs = ["ulaw", "alaw"]
# outbound = true
"""
