"""``make demo``: the call center with simulated traffic, beside the operator's installation
and never in it.

``python -m callcenter.simulate.demo`` (what ``make demo`` runs) reads the operator's settings
(``$CALLCENTER_CONFIG``, else ``callcenter.toml``, else the defaults; the environment's
``CALLCENTER_*`` keys too) only to find the PostgreSQL server, the MQTT broker and the
Asterisk binary, and runs everything else in places of its own:

================  ====================================  =======================================
                  the operator's                        the demo's
================  ====================================  =======================================
database          ``<name>`` (``[database] url``)       ``<name>_demo`` on the same server,
                                                        created and migrated here
Asterisk          ``[asterisk] directory``              ``<directory>-demo``: its own etc, log,
                  (``var/asterisk``)                    astdb... on its own AMI, SIP and RTP
                                                        ports
MQTT              ``[mqtt] topic_prefix``               ``<prefix>-demo``, its own client ids;
                                                        its retained topics are cleared when
                                                        the demo stops
IVR (FastAGI),    their ports                           their ports + 100 (``--*-port``)
wallboard
settings, logs,   ``callcenter.toml``, ``var/spool``    ``var/demo/`` (callcenter.toml, logs,
spool                                                   spool)
================  ====================================  =======================================

So the demo can even run while ``make run`` does, and leaves nothing of the operator's
changed: not their database (no agents, queues, users or calls), not their Asterisk's astdb
(the simulated agents are members of the demo's own queues), not their retained MQTT
topics. Trunks are left out (the demo must not register with a provider), and so are the
operator's IVRs (their queues are not in the demo's database): the demo has its own,
:data:`DEMO_IVR`.

Steps: write ``var/demo/callcenter.toml`` (mode 0600: it holds a fresh AMI secret); ``callcenter
db upgrade`` on the demo database; through the CLI, queues ``sales`` and ``support``, the
simulated agents ``sim01``... (extensions 9001...) as members of both, and a ``demo``
supervisor with a fresh password; ``callcenter run`` (private Asterisk + bridge + IVR +
wallboard), then once AMI answers ``callcenter simulate``. Every child runs in a session of its
own (a Ctrl-C reaches only this process), with only the demo's settings in its environment.
Ctrl-C (or SIGTERM) stops the simulation first (its agents log out), then the services, then
clears the demo's retained MQTT topics. Every wait has a time-out; children are stopped in
``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter import config

DEMO_DIR = Path("var/demo")
DEMO_AGENTS = 6
DEMO_USER = "demo"
DEMO_QUEUES = ("sales", "support")
AMI_WAIT = 60.0
#: The demo's ports are the operator's plus this, unless given.
PORT_OFFSET = 100
#: Simulated agents and callers are Local channels: this RTP range is only a fence.
DEMO_RTP = (30000, 30998)
#: Seconds the simulation has to log its agents out, and the services to stop.
SIM_STOP = 20.0
RUN_STOP = 40.0

DEMO_IVR: dict[str, Any] = {
    "demo": {
        "start": "welcome",
        "dids": ["100"],
        "nodes": {
            "welcome": {"prompt": "hello-world", "choices": {"1": "sales", "2": "support"}},
            "sales": {"target": "queue", "queue": "sales"},
            "support": {"target": "queue", "queue": "support"},
        },
    }
}

#: The load: about 8 calls a minute for 6 agents with ~45 s talks keeps the board busy
#: without a queue that only grows; some callers give up, some agents pause.
SIMULATE_ARGS = (
    "--mix", "1:60,2:40", "--patience", "exp:90", "--handle", "lognormal:45,20",
    "--agents", str(DEMO_AGENTS), "--pause-chance", "0.15", "--pause", "uniform:15-45",
)  # fmt: skip


class DemoError(RuntimeError):
    """The demo cannot start; the message is one line for the operator."""


def cli() -> list[str]:
    """The ``callcenter`` command of this interpreter."""
    return [sys.executable, "-m", "callcenter"]


def _run(args: Sequence[str], env: Mapping[str, str], check: bool = True) -> str:
    proc = subprocess.run(
        [*cli(), *args], env=dict(env), capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise DemoError(f"`callcenter {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


# --- the demo's own places ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ports:
    ami: int
    sip: int
    agi: int
    wallboard: int

    @classmethod
    def beside(cls, base: config.Settings, **given: int | None) -> Ports:
        ports = {
            "ami": base.node("local").port if _has_local(base) else 5038,
            "sip": base.asterisk.sip_port,
            "agi": base.agi.port,
            "wallboard": base.wallboard.port,
        }
        return cls(**{k: given.get(k) or v + PORT_OFFSET for k, v in ports.items()})


def _has_local(settings: config.Settings) -> bool:
    return any(n.name == "local" for n in settings.nodes)


def demo_database_url(url: str) -> str:
    """The operator's database URL with ``_demo`` after the database name."""
    from sqlalchemy.engine import make_url

    parsed = make_url(config.sqlalchemy_url(url))
    name = parsed.database or "callcenter"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,57}", name):
        raise DemoError(f"cannot derive a demo database from the database name {name!r}")
    return parsed.set(database=f"{name}_demo").render_as_string(hide_password=False)


def demo_directory(directory: str) -> str:
    return str(Path(directory.rstrip("/")).with_name(Path(directory.rstrip("/")).name + "-demo"))


def demo_settings(base: config.Settings, ports: Ports) -> dict[str, Any]:
    """The demo's complete settings (as TOML tables), from the operator's: only the servers
    (PostgreSQL, MQTT broker), the Asterisk binary, the site and the reporting rules are
    taken over; every place the demo writes to is its own."""
    host = socket.gethostname()
    m = base.mqtt
    a = base.asterisk
    return {
        "site": {"name": f"{base.site.name} (demo)", "timezone": base.site.timezone},
        "nodes": {
            "local": {
                "host": "127.0.0.1",
                "port": ports.ami,
                "username": "callcenter",
                "secret": secrets.token_urlsafe(24),
            }
        },
        "database": {
            "url": demo_database_url(base.database.url),
            "connect_timeout": base.database.connect_timeout,
        },
        "mqtt": {
            "host": m.host,
            "port": m.port,
            "username": m.username,
            "password": m.password.reveal(),
            "topic_prefix": f"{m.topic_prefix}-demo",
            "client_id": f"{m.client_id or 'callcenter'}-demo-{host}",
            "keepalive": m.keepalive,
        },
        "agi": {"host": "127.0.0.1", "port": ports.agi, "sounds_dir": base.agi.sounds_dir},
        "wallboard": {
            "host": base.wallboard.host,
            "port": ports.wallboard,
            "secret_key": secrets.token_urlsafe(32),
        },
        "reporting": {
            "short_abandon_seconds": base.reporting.short_abandon_seconds,
            "abandons_count_against_sl": base.reporting.abandons_count_against_sl,
        },
        "bridge": {"spool_dir": str(DEMO_DIR / "spool")},
        "asterisk": {
            "binary": a.binary,
            "directory": demo_directory(a.directory),
            "sip_port": ports.sip,
            "tls_port": ports.sip + 1,
            "rtp_start": DEMO_RTP[0],
            "rtp_end": DEMO_RTP[1],
            "bind_address": "127.0.0.1",
            "simulation": True,
        },
        "ivr": DEMO_IVR,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"no TOML for {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def to_toml(tables: Mapping[str, Any], path: tuple[str, ...] = ()) -> str:
    """``tables`` as TOML: scalars first, then sub-tables as ``[a.b]`` sections."""
    lines: list[str] = []
    scalars = {k: v for k, v in tables.items() if not isinstance(v, dict) or _inline(v)}
    if path and scalars:
        lines.append(f"[{'.'.join(_toml_key(p) for p in path)}]")
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for key, value in tables.items():
        if isinstance(value, dict) and not _inline(value):
            out += to_toml(value, (*path, key))
    return out


def _inline(value: dict[str, Any]) -> bool:
    """Small leaf tables (an IVR node's choices) are written inline."""
    return (
        bool(value)
        and all(not isinstance(v, dict) for v in value.values())
        and all(k.isdigit() or k == "" for k in value)
    )


def write_settings(tables: Mapping[str, Any]) -> Path:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    target = DEMO_DIR / "callcenter.toml"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the AMI secret
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# Written by `make demo` (callcenter/simulate/demo.py) at each start: the\n")
        fh.write("# demo's own settings. Edit the operator's callcenter.toml instead.\n\n")
        fh.write(to_toml(tables))
    target.chmod(0o600)
    return target


def child_environment(settings_file: Path) -> dict[str, str]:
    """This environment without any ``CALLCENTER_*`` key (they would override the demo's
    file: an operator's CALLCENTER_DATABASE__URL would put the demo's calls in their
    database), with ``CALLCENTER_CONFIG`` naming the demo's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(config.ENV_PREFIX)}
    env[config.CONFIG_ENV] = str(settings_file.absolute())
    return env


# --- the directory --------------------------------------------------------------------------


def setup_directory(env: Mapping[str, str]) -> list[str]:
    """The demo's queues and simulated agents in the demo's database (idempotent)."""
    queues = {q["name"] for q in json.loads(_run(["queues", "list", "--json"], env))}
    for name in DEMO_QUEUES:
        if name not in queues:
            _run(["queues", "add", name, "--wrapup", "5"], env)
    agents = {a["name"] for a in json.loads(_run(["agents", "list", "--json"], env))}
    for i in range(1, DEMO_AGENTS + 1):
        name = f"sim{i:02d}"
        if name not in agents:
            pin = f"{secrets.randbelow(10**6):06d}"
            args = ["agents", "add", name, "-e", str(9000 + i), "--pin", pin,
                    "--full-name", f"Simulated agent {i}"]  # fmt: skip
            for q in DEMO_QUEUES:
                args += ["--queue", f"{q}:0"]
            _run(args, env)
    return list(DEMO_QUEUES)


def supervisor(env: Mapping[str, str]) -> str:
    """A login line for the demo's wallboard, or what to run to get one."""
    password = secrets.token_urlsafe(12)
    probe = subprocess.run(
        [*cli(), "users", "--help"], env=dict(env), capture_output=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return "no `callcenter users` to create a login with"
    _run(["users", "remove", DEMO_USER], env, check=False)
    _run(["users", "add", DEMO_USER, "--password", password, "--role", "supervisor"], env)
    return f"login: {DEMO_USER} / {password}"


# --- ports, children ------------------------------------------------------------------------


def port_in_use(port: int, udp: bool = False) -> bool:
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return True
    return False


def check_ports(ports: Ports) -> None:
    for what, flag, port, udp in (("AMI", "ami", ports.ami, False),
                                  ("SIP", "sip", ports.sip, True),
                                  ("FastAGI", "agi", ports.agi, False),
                                  ("wallboard", "wallboard", ports.wallboard, False)):  # fmt: skip
        if port_in_use(port, udp):
            raise DemoError(
                f"the demo's {what} port {port} is in use (is a demo already running?); "
                f"choose another with --{flag}-port"
            )


def wait_port(host: str, port: int, timeout: float, alive: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.5)
    return False


def start(args: Sequence[str], env: Mapping[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """A child in a session of its own: Ctrl-C on the terminal reaches only the demo, which
    stops its children in order (the simulation logs its agents out before Asterisk goes)."""
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            [*cli(), *args], env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT if out is not None else None, start_new_session=True,
        )  # fmt: skip
    finally:
        if out is not None:
            out.close()


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


async def clear_retained(mqtt: config.MqttSettings, timeout: float = 10.0) -> int:
    """Clear every retained message under the demo's prefix; how many there were.

    The broker sends a subscription's retained messages before anything published after the
    SUBACK: so once our own marker (not retained) comes back, every retained one has."""
    import aiomqtt

    marker = f"{mqtt.topic_prefix}/demo/cleared/{secrets.token_hex(4)}"
    found: set[str] = set()
    async with aiomqtt.Client(
        mqtt.host, mqtt.port, username=mqtt.username or None,
        password=mqtt.password.reveal() or None, identifier=f"{mqtt.client_id}-cleanup",
    ) as client:  # fmt: skip
        await client.subscribe(f"{mqtt.topic_prefix}/#", qos=1)
        await client.publish(marker, b"-", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for msg in client.messages:
                    if str(msg.topic) == marker:
                        break
                    if msg.retain and msg.payload:
                        found.add(str(msg.topic))
        for topic in sorted(found):
            await client.publish(topic, b"", qos=1, retain=True)
    return len(found)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make demo", description="The call center with simulated traffic, in a database, "
        "an Asterisk and MQTT topics of its own (the operator's are not touched)."
    )  # fmt: skip
    for name in ("ami", "sip", "agi", "wallboard"):
        parser.add_argument(f"--{name}-port", type=int, default=None,
                            help=f"the demo's {name} port (default: the operator's + "
                            f"{PORT_OFFSET})")  # fmt: skip
    parser.add_argument("--rate", type=float, default=8.0, help="callers a minute")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        base = config.load()
    except config.ConfigError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    ports = Ports.beside(base, ami=args.ami_port, sip=args.sip_port, agi=args.agi_port,
                         wallboard=args.wallboard_port)  # fmt: skip
    try:
        tables = demo_settings(base, ports)
        settings_file = write_settings(tables)
        demo = config.load(path=settings_file, environ={})
        check_ports(ports)
    except (DemoError, config.ConfigError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    env = child_environment(settings_file)
    local = demo.node("local")
    instance = Path(demo.asterisk.directory)
    print("demo: in places of its own; your installation is not touched:", flush=True)
    print(f"  database   {demo.database.display_url()}  (yours: {base.database.display_url()})")
    print(f"  Asterisk   {instance}/, AMI {local.host}:{local.port}, SIP {ports.sip}  "
          f"(yours: {base.asterisk.directory}/)")  # fmt: skip
    print(f"  MQTT       {demo.mqtt.topic_prefix}/...  (yours: {base.mqtt.topic_prefix}/...)")
    print(f"  settings   {settings_file}, logs {DEMO_DIR / 'logs'}/", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the demo as Ctrl-C does
    procs: list[tuple[subprocess.Popen[bytes], int, float]] = []
    try:
        _run(["db", "upgrade"], env)
        queues = setup_directory(env)
        login = supervisor(env)
        logs = DEMO_DIR / "logs"
        logs.mkdir(exist_ok=True)
        run = start(["run"], env, logs / "run.log")
        procs.append((run, signal.SIGTERM, RUN_STOP))
        if not wait_port(local.host, local.port, AMI_WAIT, run):
            print(f"demo: Asterisk's AMI did not answer on {local.host}:{local.port}; see {logs}/"
                  f"run.log and {instance}/log/console.log", file=sys.stderr)  # fmt: skip
            return 1
        w = demo.wallboard
        print(f"  wallboard  http://{w.host}:{w.port}/  ({login})")
        print("Ctrl-C stops everything", flush=True)
        simulate = ["simulate", "--rate", f"{args.rate:g}", *SIMULATE_ARGS,
                    *(a for q in queues for a in ("--queue", q))]  # fmt: skip
        sim = start(simulate, env, None)
        procs.insert(0, (sim, signal.SIGINT, SIM_STOP))
        while sim.poll() is None and run.poll() is None:
            time.sleep(0.5)
        return 0 if run.poll() is None else 1
    except KeyboardInterrupt:
        return 0
    except (DemoError, subprocess.TimeoutExpired) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc, sig, timeout in procs:
            stop(proc, sig, timeout)
        try:
            cleared = asyncio.run(clear_retained(demo.mqtt))
            print(f"demo: stopped; {cleared} retained MQTT topics of the demo cleared")
        except Exception as exc:  # the broker may be away: say so, do not hide the stop
            print(f"demo: stopped; could not clear {demo.mqtt.topic_prefix}/# ({exc!r})")


if __name__ == "__main__":
    raise SystemExit(main())
