#!/usr/bin/env python3
"""FastAGI throughput against the stdio path, in one run, on loopback only (127.0.0.1).

- ``agi.sessions_per_s``: complete IVR sessions per second through our FastAGI server (run in
  its own process, as ``callcenter agi`` is) with ``--concurrency`` (500) sessions in flight.
  Each session is the ``demo`` script, the five-command flow of the recorded IVR: ANSWER,
  STREAM FILE, GET DATA, SET VARIABLE x2. The client plays Asterisk: it sends the recorded
  environment, answers each command with the recorded reply at once, and counts a session
  when the server closes the socket.
- ``agi.p99_ms``: 99th percentile of the command round trip seen from Asterisk's side: from
  writing the environment or a reply to reading the next command, at that concurrency.
- ``agi.stdio_sessions_per_s``: the same flow over stdio AGI, one ``callcenter agi-stdio demo``
  process per session (pyst2), ``--stdio-concurrency`` (the CPU count) at once.

Bounded: at most ``--sessions`` FastAGI sessions or ``--seconds`` seconds, and
``--stdio-sessions`` processes. Prints one line per figure (``--json`` for one object).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

ENV = (
    b"agi_network: yes\nagi_network_script: demo\nagi_request: agi://127.0.0.1:4573/demo\n"
    b"agi_channel: PJSIP/trunk-00000000\nagi_language: en\nagi_type: PJSIP\n"
    b"agi_uniqueid: 1795342827.0\nagi_version: GIT-22-69535d4837\nagi_callerid: 5551230001\n"
    b"agi_calleridname: Carol Caller\nagi_callingpres: 0\nagi_callingani2: 0\n"
    b"agi_callington: 0\nagi_callingtns: 0\nagi_dnid: 100\nagi_rdnis: unknown\n"
    b"agi_context: from-trunk\nagi_extension: 100\nagi_priority: 4\nagi_enhanced: 0.0\n"
    b"agi_accountcode: \nagi_threadid: 140391015552704\nagi_arg_1: arg1\n\n"
)
#: The replies recorded in inbound-answered, by command (GET DATA: the caller keyed 1).
REPLIES = {
    b"ANSWER": b"200 result=0\n",
    b"STREAM FILE": b"200 result=0 endpos=11234\n",
    b"GET DATA": b"200 result=1\n",
    b"SET VARIABLE": b"200 result=1\n",
}

SERVER = """
import asyncio, json, sys, time
from callcenter.agi.flows import demo
from callcenter.agi.server import AgiServer

async def main():
    server = AgiServer({"demo": demo}, host="127.0.0.1", port=0, max_sessions=4000,
                       command_timeout=30.0)
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close(grace=2.0)
    stats = {**server.stats.__dict__, "cpu_s": round(time.process_time(), 2)}
    print(json.dumps(stats), flush=True)

asyncio.run(main())
"""

LAUNCH = (
    "from callcenter.cli.main import cli\n"
    "from callcenter.cli.agi_cmd import agi_stdio\n"
    "cli.commands.setdefault('agi-stdio', agi_stdio)\n"
    "cli(prog_name='callcenter')\n"
)


def _reply(line: bytes) -> bytes:
    for prefix, reply in REPLIES.items():
        if line.startswith(prefix):
            return reply
    return b"510 Invalid or unknown command\n"


class _Caller(asyncio.Protocol):
    """One session, as Asterisk: environment, then a reply per command line."""

    def __init__(self, rtts: list[float]) -> None:
        self.rtts = rtts
        self.buf = b""
        self.sent_at = 0.0
        self.commands = 0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sent_at = time.perf_counter()
        transport.write(ENV)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (nl := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
            now = time.perf_counter()
            self.rtts.append(now - self.sent_at)
            self.commands += 1
            assert self.transport is not None
            self.sent_at = now
            self.transport.write(_reply(line))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.commands)


async def _fastagi(port: int, concurrency: int, sessions: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    rtts: list[float] = []
    begun = counted = bad = 0
    started = time.perf_counter()
    cpu = time.process_time()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal begun, counted, bad
        while begun < sessions and time.perf_counter() < deadline:
            begun += 1
            _, caller = await loop.create_connection(lambda: _Caller(rtts), HOST, port)
            async with asyncio.timeout(30):
                commands = await caller.done
            if commands == 5:
                counted += 1
            else:
                bad += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - started
    rtts.sort()
    return {
        "sessions": counted,
        "bad": bad,
        "seconds": took,
        "sessions_per_s": counted / took,
        "p99_ms": rtts[int(len(rtts) * 0.99)] * 1000 if rtts else 0.0,
        "p50_ms": statistics.median(rtts) * 1000 if rtts else 0.0,
        "client_cpu_s": time.process_time() - cpu,
    }


def _child_env() -> dict[str, str]:
    # No settings file: defaults only. Nothing in the demo flow touches the database or AMI.
    return {**os.environ, "CALLCENTER_CONFIG": "", "PYTHONPATH": str(ROOT)}


async def _stdio_one() -> bool:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCH, "agi-stdio", "demo",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=_child_env(), cwd=ROOT,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    commands = 0
    try:
        async with asyncio.timeout(60):
            env = ENV.replace(b"agi_arg_1: arg1\n", b"agi_arg_1: agi-stdio\nagi_arg_2: demo\n")
            proc.stdin.write(env)
            await proc.stdin.drain()
            while line := await proc.stdout.readline():
                commands += 1
                proc.stdin.write(_reply(line))
                await proc.stdin.drain()
            code = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False
    return code == 0 and commands == 5


async def _stdio(concurrency: int, sessions: int) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)
    ok = 0

    async def one() -> None:
        nonlocal ok
        async with sem:
            done = await _stdio_one()
        ok += done

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(sessions)))
    took = time.perf_counter() - started
    return {"sessions": ok, "seconds": took, "sessions_per_s": ok / took}


async def _measure(args: argparse.Namespace) -> dict[str, float]:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env=_child_env(), cwd=ROOT,
    )  # fmt: skip
    assert server.stdin is not None
    assert server.stdout is not None
    stats = ""
    try:
        async with asyncio.timeout(30):
            port = int(await server.stdout.readline())
        await _fastagi(port, min(50, args.concurrency), 500, 10.0)  # warm-up
        fast = await _fastagi(port, args.concurrency, args.sessions, args.seconds)
    finally:
        server.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                stats = (await server.stdout.readline()).decode().strip()
                await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()
    stdio = await _stdio(args.stdio_concurrency, args.stdio_sessions)
    with contextlib.suppress(ValueError, KeyError):
        served = json.loads(stats)
        per = served["cpu_s"] / max(served["completed"], 1) * 1000
        print(f"fastagi server: {per:.3f} ms CPU per session (start-up included)", file=sys.stderr)
    print(
        f"fastagi: {fast['sessions']:.0f} sessions in {fast['seconds']:.2f} s "
        f"({fast['bad']:.0f} incomplete), p50 {fast['p50_ms']:.2f} ms, client CPU "
        f"{fast['client_cpu_s']:.1f} s; server {stats}",
        file=sys.stderr,
    )
    print(
        f"stdio: {stdio['sessions']:.0f} processes in {stdio['seconds']:.2f} s; "
        f"fastagi/stdio = {fast['sessions_per_s'] / max(stdio['sessions_per_s'], 1e-9):.0f}x",
        file=sys.stderr,
    )
    return {
        "agi.sessions_per_s": round(fast["sessions_per_s"], 1),
        "agi.p99_ms": round(fast["p99_ms"], 3),
        "agi.stdio_sessions_per_s": round(stdio["sessions_per_s"], 2),
    }


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--concurrency", type=int, default=500)
    p.add_argument("--sessions", type=int, default=20_000)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--stdio-sessions", type=int, default=24)
    p.add_argument("--stdio-concurrency", type=int, default=os.cpu_count() or 2)
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def run() -> dict[str, float]:
    """For scripts/bench.py (``make bench``)."""
    return asyncio.run(_measure(_args([])))


def main() -> int:
    args = _args()
    figures = asyncio.run(_measure(args))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
