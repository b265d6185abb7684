"""Opt-in recordings of the dialer's end-to-end tests: ``CALLCENTER_RECORD_DIALER=DIR``.

With the variable set, each test of ``tests/e2e/test_dialer.py`` runs beside a recorder of its
own: a separate AMI connection opened before the test and closed after it, and at the end a
copy of what Asterisk and the dialer wrote. The connection logs in with ``Events: on`` as a
test-only user, :data:`USERNAME` (:func:`manager_section`, which ``tests/e2e/conftest.py``
adds to manager.conf): the read classes of the bridge's user but no ``eventfilter``, so that a
recording holds every event of those classes, not only what our users are sent (what each is
sent is worked out from it: tests/test_ami_wanted.py). ``DIR/<test name>/`` then holds, in the
formats of ``tests/fixtures/asterisk-traces`` (see ``tests/traces.py``):

- ``ami.txt``: every byte received, banner and login response included;
- ``ami-sent.txt``: every byte sent (the Login and the Logoff);
- ``ami-timeline.jsonl``: one object per socket read or write, ``{"t", "conn", "dir", "data"}``
  (``dir``: in, out or eof; ``t``: epoch seconds; the ``in`` data joined is ``ami.txt``);
- ``queue_log`` and ``cdr-custom.csv`` (cdr_custom's Master.csv), copied whole: Asterisk's own
  records since it started (queue_log begins with its QUEUESTART);
- ``attempts.json``: the test's ``campaign_attempts`` rows as the dialer left them, with their
  campaign's mode and AMD setting; times as epoch floats.

One Asterisk serves every test of the module, so its files are one test's only when the test
runs alone: record one test per pytest process (``pytest tests/e2e/test_dialer.py::test_x``).
A recording asked of an Asterisk that has already served a call or a log-in fails the test
rather than write another test's calls into this one's files.

Without the variable, :func:`recording` does nothing at all.

``python -m tests.e2e.recorder FOLDER...`` (re)writes the generated part of each folder's
``scenario.md`` (:func:`describe`: the attempts, the timeline of their events, the message
counts, queue_log and the file sizes), below the hand-written "What happened".
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.ami.protocol import AmiParser, Banner, Message, encode_action
from callcenter.db.models_campaigns import Campaign, CampaignAttempt

ENV = "CALLCENTER_RECORD_DIALER"
#: The recorder's AMI user and its secret (a fixed test secret: it is in ami-sent.txt).
USERNAME = "e2e-recorder"
SECRET = "e2e-recorder-secret-0123456789"
#: Its read classes: those the bridge's user read when the first recordings were made
#: (commit 471eeb9, before any eventfilter), without the later ``security``.
READ = "agent,call,dialplan,system,user"
#: Seconds to keep listening after the test (the last Hangups, CDRs and queue_log lines).
SETTLE = 1.5
LOGIN_ID = "login-1"
LOGOFF_ID = "logoff-1"


def manager_section() -> str:
    """The recorder's user for manager.conf: loopback only, reads :data:`READ` unfiltered,
    may run no action but Login and Logoff."""
    return (
        f"\n[{USERNAME}]\nsecret = {SECRET}\ndeny = 0.0.0.0/0.0.0.0\n"
        f"permit = 127.0.0.1/255.255.255.255\nread = {READ}\nwrite =\n"
    )


class AmiRecorder:
    """One AMI connection that writes down every byte, with the time it came."""

    def __init__(self, folder: Path, conn: str = "conn1") -> None:
        self.folder = folder
        self.conn = conn
        self._received: IO[bytes] | None = None
        self._sent: IO[bytes] | None = None
        self._timeline: IO[str] | None = None
        # Asterisk sends UTF-8; anything else is kept as is in ami.txt, replaced in the timeline.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parser = AmiParser()
        self._responses: dict[str, Message] = {}
        self._got_response = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int, username: str, secret: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._received = (self.folder / "ami.txt").open("wb")
        self._sent = (self.folder / "ami-sent.txt").open("wb")
        self._timeline = (self.folder / "ami-timeline.jsonl").open("w", encoding="utf-8")
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.create_task(self._read(reader), name="dialer-recorder")
        await self._send(
            {"Action": "Login", "ActionID": LOGIN_ID, "Username": username,
             "Secret": secret, "Events": "on"}
        )  # fmt: skip
        reply = await self._response(LOGIN_ID, 10)
        if reply.get("Response") != "Success":
            raise AssertionError(f"the recorder's AMI login failed: {reply.fields}")

    async def stop(self) -> None:
        """Log off and read until Asterisk closes the connection (or 5 s)."""
        try:
            if self._writer is not None and self._task is not None and not self._task.done():
                with contextlib.suppress(OSError, ConnectionError):
                    await self._send({"Action": "Logoff", "ActionID": LOGOFF_ID})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._task), 5)
        finally:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            if self._writer is not None:
                self._writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await self._writer.wait_closed()
            for fh in (self._received, self._sent, self._timeline):
                if fh is not None:
                    fh.close()

    def _line(self, direction: str, data: str) -> None:
        assert self._timeline is not None
        record = {"t": time.time(), "conn": self.conn, "dir": direction, "data": data}
        self._timeline.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._timeline.flush()

    async def _send(self, action: dict[str, str]) -> None:
        assert self._writer is not None
        assert self._sent is not None
        data = encode_action(action)
        self._writer.write(data)
        self._sent.write(data)
        self._sent.flush()
        self._line("out", data.decode("utf-8"))
        await self._writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        assert self._received is not None
        while True:
            data = await reader.read(65536)
            if not data:
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    self._line("in", tail)
                self._line("eof", "")
                return
            self._received.write(data)
            self._received.flush()
            # A UTF-8 character split between two reads is written with the second one.
            text = self._decoder.decode(data)
            if text:
                self._line("in", text)
            for frame in self._parser.feed(data):
                if isinstance(frame, Message) and frame.response is not None:
                    self._responses[frame.action_id or ""] = frame
                    self._got_response.set()

    async def _response(self, action_id: str, timeout: float) -> Message:
        async with asyncio.timeout(timeout):
            while action_id not in self._responses:
                self._got_response.clear()
                await self._got_response.wait()
        return self._responses[action_id]


def _used(queue_log: Path, master: Path) -> str:
    """Why this Asterisk's records are not one test's alone ("" when they still can be)."""
    if master.exists() and master.stat().st_size:
        return f"{master} already has CDRs"
    if queue_log.exists():
        for line in queue_log.read_text(errors="replace").splitlines():
            if line and line.split("|")[4:5] != ["QUEUESTART"]:
                return f"{queue_log} already has {line!r}"
    return ""


def _copy(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes() if source.exists() else b"")


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def attempt_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every ``campaign_attempts`` row (the database holds one test's), in id order."""
    with Session(engine) as s:
        rows = s.execute(
            sa.select(CampaignAttempt, Campaign)
            .join(Campaign, Campaign.id == CampaignAttempt.campaign_id)
            .order_by(CampaignAttempt.id)
        ).all()
        out = []
        for a, c in rows:
            out.append(
                {
                    "id": a.id,
                    "campaign": c.name,
                    "campaign_mode": c.mode,
                    "channel_id": a.channel_id,
                    "phone": a.phone,
                    "attempt_no": a.attempt_no,
                    "mode": a.mode,
                    "paced": a.paced,
                    "amd": c.amd,
                    "preview": a.mode == "preview",
                    "dialer": a.dialer,
                    "caller_id": a.caller_id,
                    "phase": a.phase,
                    "outcome": a.outcome,
                    "reason": a.reason,
                    "agent": a.agent,
                    "amd_status": a.amd_status,
                    "amd_cause": a.amd_cause,
                    "message": a.message,
                    "hangup_cause": a.hangup_cause,
                    "created_at": _epoch(a.created_at),
                    "originated_at": _epoch(a.originated_at),
                    "answered_at": _epoch(a.answered_at),
                    "human_at": _epoch(a.human_at),
                    "queued_at": _epoch(a.queued_at),
                    "agent_at": _epoch(a.agent_at),
                    "message_started_at": _epoch(a.message_started_at),
                    "message_ended_at": _epoch(a.message_ended_at),
                    "ended_at": _epoch(a.ended_at),
                }
            )
    return out


@contextlib.asynccontextmanager
async def recording(
    name: str,
    *,
    ami_port: int,
    username: str,
    secret: str,
    log_dir: Path,
    engine: Engine,
) -> AsyncIterator[Path | None]:
    """Record the block into ``$CALLCENTER_RECORD_DIALER/<name>/`` (see the module's doc);
    without the variable, do nothing and yield None."""
    root = os.environ.get(ENV, "")
    if not root:
        yield None
        return
    folder = Path(root) / name
    queue_log = log_dir / "queue_log"
    master = log_dir / "cdr-custom" / "Master.csv"
    used = _used(queue_log, master)
    if used:
        raise AssertionError(
            f"{ENV}: this Asterisk has served another test ({used}); record one test per "
            "pytest process"
        )
    recorder = AmiRecorder(folder)
    try:
        await recorder.start(ami_port, username, secret)
    except BaseException:
        await recorder.stop()
        raise
    try:
        yield folder
    finally:
        try:
            await asyncio.sleep(SETTLE)
        finally:
            await recorder.stop()
            _copy(queue_log, folder / "queue_log")
            _copy(master, folder / "cdr-custom.csv")
            rows = await asyncio.to_thread(attempt_rows, engine)
            (folder / "attempts.json").write_text(json.dumps(rows, indent=1) + "\n")


# --- scenario.md ----------------------------------------------------------------------------

#: Where the generated part of a scenario.md begins.
GENERATED = "## Attempts (generated from attempts.json)"
#: The events of the timeline, and the headers shown for each (ami.txt has the rest).
_SHOWN: dict[str, tuple[str, ...]] = {
    "Newchannel": (),
    "DialBegin": ("DestChannel",),
    "Newstate": ("ChannelStateDesc",),
    "DialEnd": ("DialStatus",),
    "OriginateResponse": ("Response", "Reason"),
    "UserEvent": ("UserEvent", "Status", "Cause", "Kind", "Phase", "Message"),
    "QueueCallerJoin": ("Queue", "Position"),
    "AgentCalled": ("MemberName",),
    "AgentRingNoAnswer": ("MemberName", "RingTime"),
    "QueueCallerAbandon": ("Queue", "HoldTime"),
    "QueueCallerLeave": ("Queue",),
    "AgentConnect": ("MemberName", "HoldTime", "RingTime"),
    "AgentComplete": ("MemberName", "Reason", "TalkTime"),
    "Hangup": ("Cause", "Cause-txt"),
    "QueueMemberAdded": ("MemberName",),
    "QueueMemberRemoved": ("MemberName",),
}
_TIMELINE_NOTE = (
    "From `ami-timeline.jsonl`: the events whose Uniqueid (or DestUniqueid, or ActionID) is an "
    "attempt's channel id or its `;2` half, and the queue members' arrivals and departures. "
    "The label is the attempt's (`A1;2`: its Local `;2` half; `A1->agent`, `A1->customer`: a "
    "Dial from the attempt's channel). Time: the receive time (the table above has the "
    "dialer's times, from the events' `Timestamp`). `ami.txt` has everything."
)


def _since(epoch: float | None, t0: float) -> str:
    return "" if epoch is None else f"{epoch - t0:.3f}"


def _label(name: str, fields: Mapping[str, str], labels: Mapping[str, str]) -> str | None:
    """The timeline's label of an event (None: not an attempt's)."""
    if name in ("QueueMemberAdded", "QueueMemberRemoved"):
        return ""
    uid, dest = fields.get("Uniqueid", ""), fields.get("DestUniqueid", "")
    for cid, label in labels.items():
        if uid == cid:
            if name in ("DialBegin", "DialEnd") and dest and dest != cid:
                agent = fields.get("DestChannel", "").startswith("PJSIP/")
                return f"{label}->{'agent' if agent else 'customer'}"
            return label
        if uid == f"{cid}-2":
            return f"{label};2"
        if cid in (dest, fields.get("ActionID", "")):
            return label
        if dest == f"{cid}-2":
            return f"{label};2"
    return None


def describe(folder: Path) -> str:
    """The generated part of ``folder``'s scenario.md, from its recorded files. Times are
    seconds after the recorder's first write (its Login, sent as it connected: t0)."""
    rows: list[dict[str, Any]] = json.loads((folder / "attempts.json").read_text("utf-8"))
    lines = (folder / "ami-timeline.jsonl").read_text("utf-8").splitlines()
    chunks: list[dict[str, Any]] = [json.loads(line) for line in lines]
    t0: float = chunks[0]["t"]
    out = [
        GENERATED,
        "",
        f"Times are seconds after the recorder connected and sent its Login (t0 = {t0!r} epoch).",
        "",
        "| | phone | mode | paced | AMD | outcome | agent | amd_status | hangup cause | "
        "originated | answered | human | agent at | message | ended | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels: dict[str, str] = {}
    for row in rows:
        label = "-"
        if row["channel_id"]:
            label = labels[row["channel_id"]] = f"A{len(labels) + 1}"
        started = row["message_started_at"]
        message = "" if started is None else f"{_since(started, t0)}-"
        message += _since(row["message_ended_at"], t0) if message else ""
        cause = "" if row["hangup_cause"] is None else str(row["hangup_cause"])
        cells = [
            label, row["phone"], row["mode"], row["paced"], "on" if row["amd"] else "off",
            row["outcome"] or "", row["agent"] or "", row["amd_status"] or "", cause,
            *(_since(row[c], t0) for c in ("originated_at", "answered_at", "human_at",
                                          "agent_at")),
            message, _since(row["ended_at"], t0), row["reason"] or "",
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Timeline (generated: the attempts' events)", "", _TIMELINE_NOTE, "", "```"]
    parser = AmiParser()
    counts: collections.Counter[str] = collections.Counter()
    for chunk in chunks:
        if chunk["dir"] != "in":
            continue
        for frame in parser.feed(chunk["data"].encode("utf-8")):
            if isinstance(frame, Banner):
                counts["banner"] += 1
                continue
            if not isinstance(frame, Message):
                counts["malformed"] += 1
                continue
            name = frame.event
            if name is None:
                counts[f"Response: {frame.fields.get('Response')}"] += 1
                continue
            counts[name] += 1
            tag = _label(name, frame.fields, labels) if name in _SHOWN else None
            if tag is None:
                continue
            fields = frame.fields
            channel = fields.get("Channel") or fields.get("DestChannel", "")
            shown = ", ".join(f"{k}={fields[k]}" for k in _SHOWN[name] if k in fields)
            when = chunk["t"] - t0
            out.append(f"+{when:8.3f}  {tag:<14} {name:<20} {channel}  [{shown}]")
    out += ["```", "", "## AMI message counts (generated)", "", "```"]
    out += [f"{n:6d}  {name}" for name, n in sorted(counts.items(), key=lambda c: (-c[1], c[0]))]
    queue_log = (folder / "queue_log").read_text("utf-8").rstrip("\n")
    out += ["```", "", "## queue_log", "", "```", queue_log, "```", "", "## Files", "", "```"]
    out += [
        f"{p.stat().st_size:9d}  {p.name}"
        for p in sorted(folder.iterdir())
        if p.name != "scenario.md"
    ]
    return "\n".join([*out, "```", "", ""])


def main(folders: list[str]) -> None:
    """Rewrite the generated part of each folder's scenario.md (the text above it is kept)."""
    for name in folders:
        folder = Path(name)
        path = folder / "scenario.md"
        text = path.read_text("utf-8") if path.exists() else ""
        head = text[: text.index(GENERATED)] if GENERATED in text else text
        head = head or f"# Scenario `{folder.name}`\n\n## What happened\n\n(to be written)\n\n"
        path.write_text(head + describe(folder), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
