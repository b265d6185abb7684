"""The same flows over stdio AGI, through pyst2's ``asterisk.agi.AGI`` (a process per call).

Asterisk starts ``callcenter agi-stdio <script> [args]`` with the AGI environment on stdin and
reads our commands from stdout. pyst2 reads the environment and writes the commands; what it
gets wrong is worked around here (checked against its source):

- It writes debug lines (``ARGS``, ``ENV LINE``, ``COMMAND``, ``RESULT_LINE``) to the stderr it
  is given. Asterisk passes its own stderr to AGI processes, so those lines would flood the
  Asterisk console/log: we hand it a writer that sends them to our logger at DEBUG.
- ``AGI()`` installs a SIGHUP handler (only possible in the main thread: we construct it there)
  that merely sets ``_got_sighup``. That flag is our transport's ``hung_up``, so the channel
  raises :class:`~callcenter.agi.channel.CallerHungUp` as it does for FastAGI's HANGUP line.
  Asterisk sends SIGHUP to a stdio script, not the HANGUP line (``run_agi``).
- Its ``get_result`` reads a 520 usage until a line starting with ``520``: at end of input it
  loops for ever; it takes ``result=-1`` as an exception and 511 as "unknown". We never call
  it: replies are read from pyst2's own ``stdin`` (the environment is already consumed from
  that text stream, so reading its buffer directly would lose data) by a daemon thread, line by
  line, and parsed by our :class:`~callcenter.agi.protocol.AgiParser`, which handles 520 blocks
  and end of input.
- Its ``send_command`` joins arguments with spaces and quotes nothing: we give it the line our
  encoder made (quoted and checked), as a single argument-less command.

Every wait has a time-out; the reader is a daemon thread, so a process whose Asterisk went away
exits instead of waiting on stdin for ever.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any

from asterisk.agi import AGI

from callcenter.agi.channel import AgiError, CallerHungUp, Channel, SessionLost
from callcenter.agi.protocol import AgiParser, Environment, ProtocolError, Reply
from callcenter.agi.server import FAILURE

log = logging.getLogger(__name__)

Script = Callable[[Channel], Awaitable[None]]
_EOF = ""


class _DebugWriter:
    """A file-like sink for pyst2's chatter: one DEBUG log record per line."""

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line:
                log.debug("pyst2: %s", line)
        return len(text)

    def flush(self) -> None:
        pass


class StdioTransport:
    """:class:`~callcenter.agi.channel.Transport` over a pyst2 ``AGI`` object."""

    def __init__(self, agi: Any) -> None:
        self._agi = agi
        self._parser = AgiParser(expect_environment=False)
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._eof = False
        self._thread = threading.Thread(target=self._read, name="agi-stdin", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stdin = self._agi.stdin
        while True:
            try:
                line = stdin.readline()
            except (OSError, ValueError):
                line = _EOF
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="replace")
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
            if line == _EOF:
                return

    @property
    def hung_up(self) -> bool:
        return bool(self._agi._got_sighup)

    async def command(self, line: bytes, timeout: float) -> Reply:
        if self._eof:
            raise SessionLost("stdin closed")
        try:
            self._agi.send_command(line.decode("utf-8").rstrip("\n"))
        except OSError as exc:  # EPIPE: Asterisk is gone
            raise SessionLost(f"cannot write to Asterisk: {exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self._lines.get()
                    if raw == _EOF:
                        self._eof = True
                        self._parser.feed_eof()
                        raise SessionLost("stdin closed before the reply")
                    for item in self._parser.feed(raw.encode("utf-8")):
                        if isinstance(item, Reply):
                            return item
                        # A HangupNotice (not sent on stdio, but harmless) is just noted.
        except TimeoutError:
            raise SessionLost(f"no reply within {timeout:g} s") from None
        except ProtocolError as exc:
            raise SessionLost(f"not AGI: {exc}") from exc

    def send_failure(self) -> None:
        send_failure(self._agi)


def send_failure(agi: Any) -> None:
    """End the script with AGISTATUS=FAILURE (res_agi.c's run_agi reads ``failure``)."""
    try:
        agi.stdout.write(FAILURE.decode())
        agi.stdout.flush()
    except OSError:
        pass


def open_agi(stdin: IO[str], stdout: IO[str]) -> Any:
    """pyst2's AGI on these streams (reads the environment); main thread only (SIGHUP)."""
    return AGI(stdin=stdin, stdout=stdout, stderr=_DebugWriter())


def environment(agi: Any, script: str, args: Sequence[str]) -> Environment:
    """The environment pyst2 read, with the script and the arguments of our command line
    (for a stdio script, ``agi_arg_N`` also hold ``agi-stdio`` and the script name)."""
    values = {str(k): str(v) for k, v in agi.env.items() if not str(k).startswith("agi_arg_")}
    values["agi_network_script"] = script
    for i, arg in enumerate(args, 1):
        values[f"agi_arg_{i}"] = arg
    return Environment(values)


async def run_script(
    agi: Any, script: Script, env: Environment, *, command_timeout: float = 60.0
) -> int:
    """Run one flow; the process exit status (0: done or the caller hung up)."""
    transport = StdioTransport(agi)
    channel = Channel(transport, env, command_timeout=command_timeout)
    try:
        await script(channel)
    except CallerHungUp:
        return 0
    except SessionLost as exc:
        log.info("agi-stdio %s: session lost: %s", env.script, exc)
        return 1
    except AgiError as exc:
        log.warning("agi-stdio %s: %s", env.script, exc)
        transport.send_failure()
        return 1
    except Exception:
        log.exception("agi-stdio %s: script failed", env.script)
        transport.send_failure()
        return 1
    return 0


def stdio_streams() -> tuple[IO[str], IO[str]]:
    """Line-buffered text stdin/stdout for AGI (LF only, UTF-8)."""
    # Kept open for the life of the process, like sys.stdin itself: no context manager.
    stdin = open(  # noqa: SIM115
        sys.stdin.fileno(), encoding="utf-8", errors="replace", newline="\n", closefd=False
    )
    stdout = open(  # noqa: SIM115
        sys.stdout.fileno(), "w", encoding="utf-8", newline="\n", closefd=False, buffering=1
    )
    return stdin, stdout
