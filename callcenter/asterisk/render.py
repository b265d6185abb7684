"""Render Asterisk's configuration from ours: settings, agents, queues and trunks in, files out.

:func:`render` is pure and deterministic: the same inputs give the same bytes (no clock, no
randomness, every list sorted), so a re-render can be compared with what is on disk and only the
modules whose files changed are reloaded (:mod:`callcenter.asterisk.reload`).

The templates are jinja2 files outside the package, in the source checkout (the project is
installed in editable mode): ``asterisk-config/<file>.conf.j2`` becomes ``<file>.conf`` and
``dialplans/<name>.conf.j2`` becomes ``dialplans/<name>.conf`` (``extensions.conf`` includes
them). Every option name in them was checked against Asterisk 22's source and the known-good
configuration of ``tests/fixtures/asterisk-traces/config/asterisk``.

Values that end up in configuration files are checked: a newline would start a new setting and a
``;`` a comment, so newlines are refused and ``;`` is escaped as ``\\;`` (Asterisk's own escape).

Agent names may be Unicode (:mod:`callcenter.names`). Asterisk's configuration files are bytes
to it, and we write UTF-8; an agent's name appears only where any text may: a comment of
pjsip.conf, the display name of the phone's caller ID (``"Renée" <1005>``: a quoted SIP display
name may be UTF-8) and the mailbox's full name in voicemail.conf (whose ``charset`` we set to
UTF-8). Every object Asterisk names (PJSIP endpoint, auth, AOR, mailbox) is named after the
extension, which is digits only. The MemberName itself is in no configuration file: agents join
queues over AMI (QueueAdd); app_queue writes it to queue_log and astdb as it is.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

import callcenter
from callcenter import names
from callcenter.ami import wanted
from callcenter.config import ConfigError, Secret, Settings
from callcenter.domain import QueueStrategy
from callcenter.recordings import policy as recording_policy
from callcenter.security import acl as security_acl

#: The FastAGI scripts the dialplans call (served by ``callcenter agi``, the IVR issue).
AGI_SCRIPTS = frozenset(
    {"ivr", "agent-login", "agent-logout", "agent-pause", "agent-unpause", "survey", "callback"}
)

#: Rendered files that hold secrets: written with mode 0640.
SECRET_FILES = frozenset({"manager.conf", "pjsip.conf"})

#: SIP and AMI listen here unless told otherwise (a private Asterisk is not a public one).
DEFAULT_BIND_ADDRESS = "127.0.0.1"

#: Queue() options for inbound calls unless the IVR sets QUEUE_OPTIONS: ``c`` continues in the
#: dialplan when the agent hangs up (QUEUESTATUS=CONTINUE, needed for the survey); ``i`` ignores
#: call forwards of agent phones (a forwarded phone must not take a queue call elsewhere).
DEFAULT_QUEUE_OPTIONS = "ci"

#: Played when the dialer cannot connect an answered call to an agent in time, unless the dialer
#: sets DIALER_ABANDON_MESSAGE (the site's own information message belongs there).
DEFAULT_ABANDON_MESSAGE = "please-try-call-later"

#: sun_path is 108 bytes on Linux, NUL included: a longer console socket path cannot be bound,
#: and then neither `asterisk -r` nor `callcenter asterisk reload` can reach the instance.
MAX_SOCKET_PATH = 107

#: Seconds the callback leg rings the customer before giving up.
CALLBACK_RING_SECONDS = 30

#: Modules Asterisk must load or refuse to start (``require``): without them there is no
#: call center. Their dependencies (the .requires of each module's AST_MODULE_INFO) are listed
#: too, as modules.conf has ``autoload = no``.
REQUIRED_MODULES: tuple[str, ...] = (
    "app_queue.so",
    "chan_pjsip.so",
    "pbx_config.so",
    "res_agi.so",
    "res_pjproject.so",
    "res_pjsip.so",
    "res_pjsip_pubsub.so",
    "res_pjsip_session.so",
    "res_rtp_asterisk.so",
    "res_sorcery_astdb.so",
    "res_sorcery_config.so",
    "res_sorcery_memory.so",
    "res_speech.so",
)

#: Modules loaded when present (``load``): a build without one still starts. One line each on
#: why it is here; nothing else is loaded (``autoload = no``).
LOADED_MODULES: Mapping[str, str] = {
    "app_amd.so": "AMD() in [outbound-campaign]",
    "app_chanspy.so": "supervisor listen/whisper/barge, originated over AMI",
    "app_dial.so": "Dial() to agents and customers",
    "app_exec.so": "ExecIf(): the dialer's auto-answer headers for PJSIP phones only",
    "app_mixmonitor.so": "MixMonitor(): call recording, MixMonitorMute over AMI",
    "app_originate.so": "Originate() of the queue-callback placeholder",
    "app_playback.so": "Playback() of messages",
    "app_senddtmf.so": "SendDTMF() and AMI PlayDTMF (simulated callers)",
    "app_stack.so": "Gosub() (also the AGI GOSUB command)",
    "app_userevent.so": "UserEvent(): the dialer learns AMD verdicts and messages",
    "app_voicemail.so": "VoiceMail(), VoiceMailMain(), VM_INFO()",
    "app_while.so": "While() in [sim-customer] (simulated customers of the dialer)",
    "bridge_builtin_features.so": "DTMF transfer features in bridges",
    "bridge_native_rtp.so": "native RTP bridging between phones",
    "bridge_simple.so": "two-party bridges",
    "bridge_softmix.so": "multi-party bridges (attended transfer, barge)",
    "cdr_csv.so": "CDR to log/cdr-csv/Master.csv",
    "cdr_custom.so": "CDR to log/cdr-custom (cdr_custom.conf)",
    "cel_custom.so": "CEL to log/cel-custom (cel_custom.conf)",
    "codec_a_mu.so": "alaw <-> ulaw",
    "codec_alaw.so": "alaw",
    "codec_g722.so": "G.722 phones",
    "codec_gsm.so": "GSM sound and music files",
    "codec_resample.so": "sample-rate conversion",
    "codec_ulaw.so": "ulaw",
    "format_gsm.so": ".gsm sound files",
    "format_pcm.so": ".ulaw/.alaw/.g722 sound files",
    "format_sln.so": ".sln sound files",
    "format_wav.so": ".wav sound files",
    "format_wav_gsm.so": ".WAV (gsm in wav) sound files",
    "func_callerid.so": "CALLERID()",
    "func_cdr.so": "CDR() in cdr_custom.conf",
    "func_channel.so": "CHANNEL()",
    "func_devstate.so": "DEVICE_STATE(): the preferred agent is rung first only when free",
    "func_logic.so": "IF()",
    "func_rand.so": "RAND(): the sample of a queue's calls that is recorded",
    "func_strings.so": "FILTER(), CSV_QUOTE(), STRFTIME() (recordings' folders by day)",
    "res_cdrel_custom.so": "the writer behind cdr_custom and cel_custom (Asterisk 22)",
    "res_musiconhold.so": "music on hold in queues",
    "res_pjsip_acl.so": "the SIP blocklist (pjsip.conf type=acl): `callcenter security`",
    "res_pjsip_authenticator_digest.so": "agents' phones authenticate",
    "res_pjsip_caller_id.so": "caller ID from trunks (P-Asserted-Identity, RPID)",
    "res_pjsip_dtmf_info.so": "phones that send DTMF as SIP INFO",
    "res_pjsip_endpoint_identifier_ip.so": "trunks identified by address",
    "res_pjsip_endpoint_identifier_user.so": "phones identified by user name",
    "res_pjsip_header_funcs.so": "PJSIP_HEADER(): the dialer's auto-answer headers to agents",
    "res_pjsip_logger.so": "`pjsip set logger on` when debugging",
    "res_pjsip_nat.so": "rewrite_contact / force_rport for phones behind NAT",
    "res_pjsip_outbound_authenticator_digest.so": "authentication towards trunks",
    "res_pjsip_outbound_registration.so": "trunks that register",
    "res_pjsip_refer.so": "transfers from phones (REFER)",
    "res_pjsip_registrar.so": "phones register",
    "res_pjsip_rfc3326.so": "Reason header: 'answered elsewhere' on ringall cancels",
    "res_pjsip_sdp_rtp.so": "audio in SIP calls",
    "res_timing_timerfd.so": "timing for music on hold and file playback",
}

_TRUNK_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_DID_RE = re.compile(r"^\+?[0-9]{2,20}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
_QUEUE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EXTENSION_RE = re.compile(r"^[0-9]{2,16}$")
_MUSIC_CLASS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CODECS = frozenset({"ulaw", "alaw", "g722", "gsm", "opus", "g729", "slin"})
_TRANSPORTS = frozenset({"udp", "tcp", "tls"})
_SOURCE_MISSING = (
    "the Asterisk templates are missing: expected {path}. They ship in the source checkout "
    "(asterisk-config/ and dialplans/ next to the callcenter package); install the project "
    "from a checkout with `pip install -e .` (`make setup` does)"
)


_NO_SECRET = Secret("")


class RenderError(ValueError):
    """The inputs cannot make a working configuration. The message is one line for operators."""


@dataclass(frozen=True, slots=True)
class AgentConf:
    """An agent's phone: one PJSIP endpoint, auth and AOR named after the extension."""

    name: str
    extension: str
    sip_secret: str
    full_name: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class QueueConf:
    """An app_queue queue; defaults are those of :class:`callcenter.db.models.Queue`."""

    name: str
    strategy: str = "rrmemory"
    service_level_seconds: int = 20
    wrapup_seconds: int = 10
    ring_seconds: int = 15
    retry_seconds: int = 5
    max_wait_seconds: int = 300
    max_callers: int = 0
    weight: int = 0
    priority: int = 0
    join_empty: bool = True
    leave_when_empty: bool = False
    announce_position: bool = True
    announce_holdtime: bool = True
    announce_frequency_seconds: int = 60
    autopause: bool = True
    autopause_after: int = 2
    music_class: str = "default"
    #: Which calls are recorded (callcenter.recordings.policy) and the sampled share.
    record_policy: str = "none"
    record_share: float = 0.0


@dataclass(frozen=True, slots=True)
class CampaignConf:
    """What the dialplan needs of a campaign: its recording policy (its calls follow it,
    not their queue's)."""

    name: str
    record_policy: str = "none"
    record_share: float = 0.0


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk to a provider.

    Calls from it are recognised by source address (``match``, default ``host``) and enter
    ``[from-trunk]``; with ``dids`` only those numbers are accepted, without any number is.
    ``register`` makes Asterisk register to the provider with ``username``/``secret``, which
    also authenticate outgoing calls. ``outbound`` trunks carry callbacks and campaigns; the first
    by name is the dialplan's ``OUTBOUND_TRUNK``.
    """

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    dids: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    username: str = ""
    secret: Secret = _NO_SECRET
    register: bool = False
    from_domain: str = ""
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    outbound: bool = True


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How and where the private Asterisk runs; the defaults suit one on this machine.

    ``directory`` is the instance's own directory (etc, run, log, spool, lib, cache below it);
    ``None`` means ``settings.asterisk.directory`` from the working directory. ``module_dir`` and
    ``data_dir`` left empty let Asterisk use its compiled-in directories, which are right for the
    binary that reads the file; :func:`callcenter.asterisk.run.installation_dirs` fills them from
    an installed binary. TLS is rendered only when both a certificate and a key are given.
    """

    directory: Path | None = None
    bind_address: str = DEFAULT_BIND_ADDRESS
    ami_permit: tuple[str, ...] = ("127.0.0.1/255.255.255.255",)
    module_dir: str = ""
    data_dir: str = ""
    tls_port: int = 5061
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: Render ``dialplans/simulate.conf.j2`` (the ``[sim-caller]``/``[sim-agent]`` contexts of
    #: ``callcenter simulate``); off in production, so no one can reach them by accident.
    simulation: bool = False


#: Dialplan templates rendered only when :attr:`RenderOptions.simulation` is set.
SIMULATION_DIALPLANS = frozenset({"simulate.conf.j2"})


# --- templates ------------------------------------------------------------------------------


def source_root() -> Path:
    """The checkout's top directory, which holds asterisk-config/ and dialplans/."""
    return Path(callcenter.__file__).resolve().parent.parent


def template_dirs(root: Path | None = None) -> tuple[Path, Path]:
    """``(asterisk-config, dialplans)``; :class:`RenderError` naming the path if one is missing."""
    top = source_root() if root is None else root
    dirs = (top / "asterisk-config", top / "dialplans")
    for path in dirs:
        if not path.is_dir() or not any(path.glob("*.j2")):
            raise RenderError(_SOURCE_MISSING.format(path=path))
    return dirs


def _environment(top: Path) -> jinja2.Environment:
    # Configuration files, not HTML: nothing to escape (values are checked by conf_value).
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(top)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["v"] = conf_value
    env.filters["yesno"] = lambda flag: "yes" if flag else "no"
    return env


# --- values ---------------------------------------------------------------------------------


def conf_value(value: object) -> str:
    """A value fit for ``key = value``: newlines refused, ``;`` escaped as ``\\;``."""
    text = str(value.reveal() if isinstance(value, Secret) else value)
    if any(c in text for c in "\r\n\0"):
        raise RenderError("a configuration value may not contain a line break")
    return text.replace(";", "\\;")


def plain_text(text: str, remove: str) -> str:
    """``text`` in NFC without the characters of ``remove``, control and invisible format
    characters (bidi overrides, zero-width spaces) or line and paragraph separators, and with
    its runs of spaces (of any kind) made one ASCII space."""
    dropped = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    kept = "".join(
        ch
        for ch in names.normalize(text)
        if ch not in remove and unicodedata.category(ch) not in dropped
    )
    return " ".join(kept.split())


def callerid(name: str, number: str) -> str:
    """``"Name" <number>`` with the characters that would break the header or the file removed.
    A name in any script stays: a quoted SIP display name may hold UTF-8 (RFC 3261)."""
    clean = plain_text(name, '"<>;\\')
    return f'"{clean}" <{number}>' if clean else f"<{number}>"


def _permit(rule: str) -> str:
    try:
        net = ipaddress.ip_network(rule.replace("/255.255.255.255", "/32"), strict=False)
    except ValueError:
        raise RenderError(f"AMI permit {rule!r} is not an address or network") from None
    if net.version != 4:
        return str(net)
    return f"{net.network_address}/{net.netmask}"


# --- validation -----------------------------------------------------------------------------


def _agents(agents: Iterable[AgentConf]) -> list[dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for agent in agents:
        if not agent.enabled:
            continue
        problem = names.agent_name_problem(agent.name)
        if problem or agent.name != names.normalize(agent.name):
            raise RenderError(
                f"agent name {agent.name!r} is not a valid agent name "
                f"({problem or 'not in Unicode NFC'})"
            )
        if not _EXTENSION_RE.match(agent.extension):
            raise RenderError(
                f"agent {agent.name}: extension {agent.extension!r} is not 2-16 digits"
            )
        if agent.extension in out:
            other = out[agent.extension]["name"]
            raise RenderError(f"agents {other} and {agent.name} share extension {agent.extension}")
        if len(agent.sip_secret) < 16:
            raise RenderError(
                f"agent {agent.name}: SIP secret missing or shorter than 16 characters"
            )
        out[agent.extension] = {
            "name": agent.name,
            "extension": agent.extension,
            "secret": conf_value(agent.sip_secret),
            "callerid": callerid(agent.full_name or agent.name, agent.extension),
            # voicemail.conf: "<password>,<full name>,<email>,...": no commas in the name.
            "mailbox_name": plain_text(agent.full_name or agent.name, ',;|"<>\\'),
        }
    return [out[ext] for ext in sorted(out)]


def _queues(queues: Iterable[QueueConf]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    strategies = {s.value for s in QueueStrategy}
    for q in queues:
        if not _QUEUE_NAME_RE.match(q.name):
            raise RenderError(f"queue name {q.name!r} is not a valid queue name")
        if q.name in out:
            raise RenderError(f"queue {q.name} is given twice")
        if q.strategy not in strategies:
            raise RenderError(f"queue {q.name}: strategy {q.strategy!r} is not an app_queue one")
        if not _MUSIC_CLASS_RE.match(q.music_class):
            raise RenderError(f"queue {q.name}: music class {q.music_class!r} is not a plain name")
        if q.ring_seconds <= 0 or q.max_wait_seconds <= 0 or q.service_level_seconds <= 0:
            raise RenderError(f"queue {q.name}: ring, max-wait and service-level must be > 0")
        announce = q.announce_position or q.announce_holdtime
        out[q.name] = {
            "name": q.name,
            "strategy": q.strategy,
            "timeout": q.ring_seconds,
            "retry": max(q.retry_seconds, 0),
            "wrapuptime": max(q.wrapup_seconds, 0),
            "servicelevel": q.service_level_seconds,
            "weight": max(q.weight, 0),
            "maxlen": max(q.max_callers, 0),
            "joinempty": q.join_empty,
            "leavewhenempty": q.leave_when_empty,
            "announce_frequency": max(q.announce_frequency_seconds, 0) if announce else 0,
            "announce_position": q.announce_position,
            "announce_holdtime": q.announce_holdtime,
            # app_queue pauses a member after ONE ring-no-answer; it has no "after N misses".
            # So queues.conf autopause is on only for autopause_after <= 1; for more, the AMI
            # bridge counts AgentRingNoAnswer and pauses with QueuePause (reason "autopause").
            "autopause": q.autopause and q.autopause_after <= 1,
            "musicclass": q.music_class,
            "max_wait": q.max_wait_seconds,
            "priority": q.priority,
        }
    return [out[name] for name in sorted(out)]


def _trunks(trunks: Iterable[Trunk], tls: bool, extensions: set[str]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in trunks:
        if not _TRUNK_NAME_RE.match(t.name):
            raise RenderError(
                f"trunk name {t.name!r} must start with a letter and hold a-z, 0-9, _ or -"
            )
        if t.name in out or t.name in extensions:
            raise RenderError(f"trunk name {t.name!r} is used twice")
        if not _HOST_RE.match(t.host):
            raise RenderError(f"trunk {t.name}: host {t.host!r} is not a host name or address")
        if not 1 <= t.port <= 65535:
            raise RenderError(f"trunk {t.name}: port {t.port} is not a UDP/TCP port")
        if t.transport not in _TRANSPORTS:
            raise RenderError(f"trunk {t.name}: transport {t.transport!r} is not udp, tcp or tls")
        if t.transport == "tls" and not tls:
            raise RenderError(f"trunk {t.name}: transport tls needs a TLS certificate and key")
        for did in t.dids:
            if not _DID_RE.match(did):
                raise RenderError(f"trunk {t.name}: DID {did!r} is not a number")
        for item in t.match:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                if not _HOST_RE.match(item):
                    raise RenderError(
                        f"trunk {t.name}: match {item!r} is not an address, network or host"
                    ) from None
        bad = sorted(set(t.codecs) - _CODECS)
        if bad or not t.codecs:
            raise RenderError(f"trunk {t.name}: unknown codec(s) {', '.join(bad) or '(none)'}")
        if t.register and not (t.username and t.secret):
            raise RenderError(f"trunk {t.name}: registration needs a username and a secret")
        out[t.name] = {
            "name": t.name,
            "host": t.host,
            "port": t.port,
            "transport": t.transport,
            "dids": sorted(set(t.dids)),
            "match": sorted(set(t.match)) or [t.host],
            "username": conf_value(t.username),
            "secret": conf_value(t.secret) if t.secret else "",
            "auth": bool(t.username and t.secret),
            "register": t.register,
            "from_domain": conf_value(t.from_domain),
            "codecs": ",".join(t.codecs),
            "outbound": t.outbound,
        }
    return [out[name] for name in sorted(out)]


def _recording(
    settings: Settings,
    options: RenderOptions,
    queues: Iterable[QueueConf],
    campaigns: Iterable[CampaignConf],
) -> dict[str, Any]:
    """The recording globals: where MixMonitor writes (absolute), in what format, the day's
    folder in the site's time zone, MixMonitor's options, and each queue's and campaign's
    policy (callcenter.recordings.policy.dialplan_globals)."""
    r = settings.recording
    if r.dir:
        directory = Path(r.dir) if Path(r.dir).is_absolute() else Path.cwd() / r.dir
    else:
        base = options.directory or Path(settings.asterisk.directory)
        directory = (base if base.is_absolute() else Path.cwd() / base) / "recordings"
    if any(c in str(directory) for c in "\r\n;,"):
        raise RenderError(f"recordings directory {str(directory)!r} holds a line break, ';' or ','")
    try:
        queue_policies = {
            q.name: recording_policy.check(q.record_policy, q.record_share) for q in queues
        }
        campaign_policies: dict[str, recording_policy.RecordPolicy] = {}
        for c in campaigns:
            if not _QUEUE_NAME_RE.match(c.name):
                raise RenderError(f"campaign name {c.name!r} is not a valid campaign name")
            campaign_policies[c.name] = recording_policy.check(c.record_policy, c.record_share)
    except recording_policy.PolicyError as exc:
        raise RenderError(str(exc)) from None
    return {
        "dir": str(directory),
        "format": r.format,
        "tz": settings.site.timezone,
        # b: only while bridged, so a file is as long as the talk; B(n): a periodic beep.
        "options": "b" + (f"B({r.beep_seconds})" if r.beep_seconds > 0 else ""),
        "demand_code": r.demand_code,
        "globals": recording_policy.dialplan_globals(queue_policies, campaign_policies),
    }


def _agi_url(settings: Settings) -> str:
    host = settings.agi.host
    # A server bound to every address is reached on the loopback from this machine.
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - compared with, not bound to
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"agi://{host}:{settings.agi.port}"


def _fallback_queue(settings: Settings) -> str:
    """``[agi] fallback_queue``, checked as a queue name (the dialplan's IVR_FALLBACK_QUEUE
    global). A queue that does not exist (any more) is no error here: [inbound-queue] checks
    QUEUE_EXISTS and plays "try later" instead."""
    name = settings.agi.fallback_queue
    if name and not _QUEUE_NAME_RE.match(name):
        raise RenderError(f"[agi] fallback_queue {name!r} is not a valid queue name")
    return name


def _ami(settings: Settings, options: RenderOptions) -> dict[str, Any]:
    try:
        node = settings.node("local")
    except ConfigError as exc:
        raise RenderError(
            f"the private Asterisk's AMI user comes from [nodes.local]: {exc}"
        ) from None
    if not node.secret:
        raise RenderError(
            "[nodes.local] secret is empty: run `callcenter config init` (or set "
            "CALLCENTER_NODES__LOCAL__SECRET) so the AMI user has a password"
        )
    # One user per reader, each sent only the events it reads (ami/wanted.py says who reads
    # what); the IVR and the dialer share the bridge's user where they have none of their own.
    readers = [("username", node.username, wanted.BRIDGE),
               ("ivr_username", node.ivr_username, wanted.IVR),
               ("dialer_username", node.dialer_username, wanted.DIALER)]  # fmt: skip
    users: list[dict[str, Any]] = []
    for key, name, reader in readers:
        if not name or (users and name == node.username):
            continue  # logs in as the bridge's user (NodeSettings.login_as)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise RenderError(f"[nodes.local] {key} {name!r} is not a plain name")
        if any(u["name"] == name for u in users):
            raise RenderError(
                f"[nodes.local] {key} {name!r} is the IVR's too: the IVR and the dialer each "
                "have their own AMI user, or share the bridge's (empty)"
            )
        users.append({"name": name, "read": reader.read, "write": reader.write,
                      "eventfilter": reader.manager_lines()})  # fmt: skip
    return {
        "bind": options.bind_address,
        "port": node.port,
        "username": node.username,
        "secret": conf_value(node.secret),
        "permit": sorted({_permit(rule) for rule in options.ami_permit}),
        "users": users,
    }


def _directories(settings: Settings, options: RenderOptions) -> dict[str, str]:
    base = options.directory or Path(settings.asterisk.directory)
    base = base if base.is_absolute() else Path.cwd() / base
    for path in (base, options.module_dir, options.data_dir):
        if any(c in str(path) for c in "\r\n;"):
            raise RenderError(f"directory {str(path)!r} holds a line break or ';'")
    socket = base / "run" / "asterisk.ctl"
    if len(str(socket).encode()) > MAX_SOCKET_PATH:
        raise RenderError(
            f"{socket} is longer than a UNIX socket path may be ({MAX_SOCKET_PATH} bytes): "
            "set [asterisk] directory to a shorter path"
        )
    return {
        "base": str(base),
        "etc": str(base / "etc"),
        "run": str(base / "run"),
        "log": str(base / "log"),
        "spool": str(base / "spool"),
        "lib": str(base / "lib"),
        "cache": str(base / "cache"),
        "module_dir": options.module_dir,
        "data_dir": options.data_dir,
    }


def _context(
    settings: Settings,
    agents: Iterable[AgentConf],
    queues: Iterable[QueueConf],
    trunks: Iterable[Trunk],
    options: RenderOptions,
    campaigns: Iterable[CampaignConf] = (),
) -> dict[str, Any]:
    try:
        ipaddress.ip_address(options.bind_address)
    except ValueError:
        raise RenderError(f"bind address {options.bind_address!r} is not an IP address") from None
    tls = bool(options.tls_cert_file and options.tls_key_file)
    if tls and options.tls_port == settings.asterisk.sip_port:
        raise RenderError("the TLS port must differ from the SIP port")
    if settings.asterisk.rtp_start % 2:
        raise RenderError(
            f"[asterisk] rtp_start = {settings.asterisk.rtp_start} must be even "
            "(RTP takes the even port, RTCP the odd one above it)"
        )
    agent_list = _agents(agents)
    queue_list = _queues(queues)
    extensions = {a["extension"] for a in agent_list}
    shared = sorted(extensions & {q["name"] for q in queue_list})
    if shared:
        raise RenderError(
            f"queue {shared[0]} and agent extension {shared[0]} would share a mailbox"
        )
    trunk_list = _trunks(trunks, tls, extensions)
    dids = sorted({did for t in trunk_list for did in t["dids"]})
    outbound = [t["name"] for t in trunk_list if t["outbound"]]
    return {
        "ami": _ami(settings, options),
        "agi": _agi_url(settings),
        "ivr_fallback_queue": _fallback_queue(settings),
        "dirs": _directories(settings, options),
        "sip": {
            "bind": options.bind_address,
            # Bound to one address, media stays there too (RTP binds the wildcard otherwise).
            "media_address": ""
            if ipaddress.ip_address(options.bind_address).is_unspecified
            else options.bind_address,
            "port": settings.asterisk.sip_port,
            "tls": (
                {
                    "port": options.tls_port,
                    "cert_file": conf_value(options.tls_cert_file),
                    "key_file": conf_value(options.tls_key_file),
                }
                if tls
                else None
            ),
        },
        "rtp": {"start": settings.asterisk.rtp_start, "end": settings.asterisk.rtp_end},
        "agents": agent_list,
        "queues": queue_list,
        "trunks": trunk_list,
        "dids": dids,
        "outbound_trunk": outbound[0] if outbound else "",
        "music_classes": sorted({q["musicclass"] for q in queue_list} - {"default"}),
        "required_modules": sorted(REQUIRED_MODULES),
        "loaded_modules": sorted(LOADED_MODULES.items()),
        "queue_options": DEFAULT_QUEUE_OPTIONS,
        "abandon_message": DEFAULT_ABANDON_MESSAGE,
        "callback_ring_seconds": CALLBACK_RING_SECONDS,
        "agi_scripts": sorted(AGI_SCRIPTS),
        "recording": _recording(settings, options, queues, campaigns),
    }


def render(
    settings: Settings,
    agents: Sequence[AgentConf],
    queues: Sequence[QueueConf],
    trunks: Sequence[Trunk] = (),
    options: RenderOptions | None = None,
    *,
    template_root: Path | None = None,
    campaigns: Sequence[CampaignConf] = (),
    blocked: Sequence[str] = (),
) -> dict[str, bytes]:
    """The complete configuration set: ``{"asterisk.conf": b"...", "dialplans/x.conf": ...}``.

    Disabled agents are left out. Raises :class:`RenderError` (one line) when the inputs cannot
    make a working set: no AMI secret for ``[nodes.local]``, duplicate extensions, a bad trunk,
    a value with a line break, or templates missing from the checkout. ``campaigns``: their
    recording policies (a campaign left out is not recorded). ``blocked``: the addresses and
    networks SIP refuses (``sip_blocks``, :func:`security_context`).
    """
    opts = options or RenderOptions()
    config_dir, dialplan_dir = template_dirs(template_root)
    env = _environment(config_dir.parent)
    ctx = _context(settings, agents, queues, trunks, opts, campaigns)
    ctx["security"] = security_context(settings, blocked)
    dialplans = sorted(
        p.name
        for p in dialplan_dir.glob("*.conf.j2")
        if opts.simulation or p.name not in SIMULATION_DIALPLANS
    )
    ctx["dialplan_files"] = [f"dialplans/{name.removesuffix('.j2')}" for name in dialplans]
    out: dict[str, str] = {}
    for template in sorted(p.name for p in config_dir.glob("*.conf.j2")):
        out[template.removesuffix(".j2")] = _render_one(env, f"{config_dir.name}/{template}", ctx)
    for template in dialplans:
        name = f"dialplans/{template.removesuffix('.j2')}"
        out[name] = _render_one(env, f"{dialplan_dir.name}/{template}", ctx)
    return {name: out[name].encode("utf-8") for name in sorted(out)}


def security_context(settings: Settings, blocked: Iterable[str]) -> dict[str, list[str]]:
    """acl.conf's ``[sip-blocklist]`` rules: ``blocked`` denied, ``[security] allow`` permitted
    after them (callcenter.security.acl)."""
    try:
        allow = security_acl.AllowList.parse(settings.security.allow)
        return security_acl.acl_context(blocked, allow)
    except security_acl.AddressError as exc:
        raise RenderError(f"SIP blocklist: {exc}") from None


def render_acl(
    settings: Settings, blocked: Iterable[str], *, template_root: Path | None = None
) -> bytes:
    """acl.conf alone, byte for byte what :func:`render` makes of the same settings and
    ``blocked`` (acl.conf.j2 reads nothing but ``security``: StrictUndefined would say so),
    for callcenter.security.blocklist, which changes only that file."""
    config_dir, _ = template_dirs(template_root)
    env = _environment(config_dir.parent)
    ctx = {"security": security_context(settings, blocked)}
    return _render_one(env, f"{config_dir.name}/acl.conf.j2", ctx).encode("utf-8")


def _render_one(env: jinja2.Environment, template: str, ctx: Mapping[str, Any]) -> str:
    header = (
        f"; Rendered by `callcenter asterisk render` from {template}.\n"
        "; Do not edit: the next render overwrites it. Change the template or the settings.\n"
    )
    try:
        body = env.get_template(template).render(ctx)
    except jinja2.TemplateError as exc:
        raise RenderError(f"{template}: {exc}") from exc
    return header + body
