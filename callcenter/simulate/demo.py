"""``make demo``: the call center with simulated traffic, and nothing to configure by hand.

``python -m callcenter.simulate.demo`` (what ``make demo`` runs after ``config init`` and
``db upgrade``):

1. Settings: ``var/demo/callcenter.toml``, a copy of the settings file in use
   (``$CALLCENTER_CONFIG``, else ``callcenter.toml``) plus, when it has no ``[ivr.*]`` table,
   the IVR :data:`DEMO_IVR` (DID 100: 1 sales, 2 support). The simulation contexts are switched
   on with ``CALLCENTER_ASTERISK__SIMULATION=true`` in the children's environment (the settings
   key ``[asterisk] simulation``), so the user's file is never edited.
2. The directory, through the CLI (idempotent: existing queues and agents are kept): queues
   ``sales`` and ``support`` when the IVR is ours, and the simulated agents ``sim01``...
   (extensions 9001...) as members of every queue, so the wallboard shows their names; a
   supervisor ``demo`` with a fresh password for the wallboard when ``callcenter users`` exists.
3. ``callcenter run`` (private Asterisk + bridge + IVR + wallboard) as a child
   processes, then, once AMI answers, ``callcenter simulate`` with a pleasant load.
4. Ctrl-C (or SIGTERM) stops the simulation (its agents log out), then the services.

Every wait has a time-out; children are stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DEMO_DIR = Path("var/demo")
DEMO_AGENTS = 6
DEMO_USER = "demo"
AMI_WAIT = 60.0

DEMO_IVR = """
# Added by `make demo` (callcenter/simulate/demo.py): the settings had no IVR.
[ivr.demo]
start = "welcome"
dids = ["100"]

[ivr.demo.nodes.welcome]
prompt = "hello-world"
choices = { "1" = "sales", "2" = "support" }

[ivr.demo.nodes.sales]
target = "queue"
queue = "sales"

[ivr.demo.nodes.support]
target = "queue"
queue = "support"
"""

#: The load: about 8 calls a minute for 6 agents with ~45 s talks keeps the board busy
#: without a queue that only grows; some callers give up, some agents pause.
SIMULATE_ARGS = (
    "--rate", "8", "--mix", "1:60,2:40", "--patience", "exp:90", "--handle",
    "lognormal:45,20", "--agents", str(DEMO_AGENTS), "--pause-chance", "0.15",
    "--pause", "uniform:15-45",
)  # fmt: skip


def cli() -> list[str]:
    """The ``callcenter`` command of this interpreter."""
    return [sys.executable, "-m", "callcenter"]


def _run(args: Sequence[str], env: Mapping[str, str], check: bool = True) -> str:
    proc = subprocess.run(
        [*cli(), *args], env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `callcenter {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def write_settings(source: Path | None, has_ivr: bool) -> Path:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    target = DEMO_DIR / "callcenter.toml"
    text = source.read_text() if source is not None and source.is_file() else ""
    if not has_ivr:
        text += DEMO_IVR
    target.write_text(text)
    target.chmod(0o600)  # it holds the AMI secret
    return target


def setup_directory(env: Mapping[str, str], ivr_is_ours: bool) -> list[str]:
    """Queues (ours only for our IVR) and simulated agents; the queue names."""
    queues = {q["name"] for q in json.loads(_run(["queues", "list", "--json"], env))}
    if ivr_is_ours:
        for name in ("sales", "support"):
            if name not in queues:
                _run(["queues", "add", name, "--wrapup", "5"], env)
                queues.add(name)
    agents = {a["name"] for a in json.loads(_run(["agents", "list", "--json"], env))}
    for i in range(1, DEMO_AGENTS + 1):
        name = f"sim{i:02d}"
        if name not in agents:
            pin = f"{secrets.randbelow(10**6):06d}"
            args = ["agents", "add", name, "-e", str(9000 + i), "--pin", pin,
                    "--full-name", f"Simulated agent {i}"]  # fmt: skip
            for q in sorted(queues):
                args += ["--queue", f"{q}:0"]
            _run(args, env)
    return sorted(queues)


def supervisor(env: Mapping[str, str]) -> str:
    """A login line for the wallboard, or what to run to get one."""
    password = secrets.token_urlsafe(12)
    probe = subprocess.run(
        [*cli(), "users", "--help"], env=dict(env), capture_output=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return "create a login with: callcenter users add demo --role supervisor"
    _run(["users", "remove", DEMO_USER], env, check=False)
    _run(["users", "add", DEMO_USER, "--password", password, "--role", "supervisor"], env)
    return f"login: {DEMO_USER} / {password}"


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.5)
    return False


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    from callcenter import config

    source_name = os.environ.get("CALLCENTER_CONFIG") or "callcenter.toml"
    source = Path(source_name) if Path(source_name).is_file() else None
    base = config.load(path=str(source) if source else None)
    has_ivr = bool(getattr(base, "ivr", None))
    demo_file = write_settings(source, has_ivr)
    env = {**os.environ, "CALLCENTER_CONFIG": str(demo_file),
           "CALLCENTER_ASTERISK__SIMULATION": "true"}  # fmt: skip
    queues = setup_directory(env, ivr_is_ours=not has_ivr)
    login = supervisor(env)
    node = base.node("local")
    logs = DEMO_DIR / "logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the demo as Ctrl-C does
    try:
        for name in ("run",):  # the private Asterisk, bridge, IVR and wallboard
            with (logs / f"{name}.log").open("ab") as out:
                procs.append(subprocess.Popen(
                    [*cli(), name], env=env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                ))  # fmt: skip
        if not wait_port(node.host, node.port, AMI_WAIT):
            print(f"demo: Asterisk's AMI did not answer on {node.host}:{node.port}; see {logs}")
            return 1
        w = base.wallboard
        print(f"wallboard: http://{w.host}:{w.port}/  ({login})")
        print(f"logs: {logs}/; Ctrl-C stops everything")
        args = ["simulate", *SIMULATE_ARGS, *(a for q in queues for a in ("--queue", q))]
        sim = subprocess.Popen([*cli(), *args], env=env)
        procs.insert(0, sim)
        sim.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    raise SystemExit(main())
