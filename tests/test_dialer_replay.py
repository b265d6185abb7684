"""The dialer's attempt tracker replayed on the dialer's own recordings (``dialer-*`` in
tests/fixtures/asterisk-traces: see RECORDED-HERE.md and each folder's scenario.md).

Each folder is one end-to-end test of tests/e2e/test_dialer.py recorded with
``CALLCENTER_RECORD_DIALER``: every AMI byte Asterisk 22 sent while the real dialer worked
(``ami.txt``), Asterisk's own queue_log and CDRs, and the dialer's attempt records
(``attempts.json``). The events are parsed here with the project's parser and folded into
one :class:`~callcenter.campaigns.tracker.Track` per attempt exactly as ``Dialer.on_event``
does (route, step; an ended track leaves). What comes out must be what the real dialer
wrote, and must agree with Asterisk's records, which were written by Asterisk alone:
queue_log (callid = the attempt's channel id) and cdr_custom's Master.csv.

The same streams are also replayed from the middle: the events before a cut are folded (the
facts a dialer would have written to the attempt record), the open attempts are rebuilt from
those records by ``callcenter.campaigns.dialer._track_of`` as a restarted dialer rebuilds
them, and the rest of the stream is folded into the rebuilt tracks.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from callcenter.ami import events as ev
from callcenter.ami.protocol import AmiParser, MalformedMessage, Message
from callcenter.campaigns import tracker
from callcenter.campaigns.dialer import _track_of
from callcenter.core import QueueLogEntry, parse_queue_log
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from tests import traces

UTC = dt.UTC
#: The e2e agents' phones (tests/e2e/conftest.py AGENTS): agent name -> PJSIP endpoint.
PHONES = {"alice": "1001", "bob": "1002"}
#: cdr_custom's Master.csv columns (asterisk-config/cdr_custom.conf.j2).
DCONTEXT, CHANNEL, DSTCHANNEL, LASTAPP, LASTDATA, DISPOSITION, UNIQUEID, LINKEDID = (
    3, 4, 5, 6, 7, 13, 16, 17,
)  # fmt: skip
#: The simulated machine's greeting ([sim-customer] kind 2); a person says "hello".
MACHINE_GREETING = "vm-intro"


def dialer_scenarios() -> list[str]:
    """The recorded dialer folders (empty when the traces are absent)."""
    return [s for s in traces.scenarios() if s.startswith("dialer-")]


# --- the recordings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    name: str
    events: tuple[ev.Event, ...]
    #: attempts.json rows that were dialled (they have a channel id), in id order
    attempts: tuple[Mapping[str, Any], ...]
    queue_log: tuple[QueueLogEntry, ...]
    cdr: tuple[tuple[str, ...], ...]
    #: attempts.json rows without a channel: decided at dial time, never dialled
    undialled: tuple[Mapping[str, Any], ...] = field(default=())

    def queue_log_of(self, callid: str) -> list[QueueLogEntry]:
        return [e for e in self.queue_log if e.callid == callid]

    def cdr_of(self, uniqueid: str) -> list[tuple[str, ...]]:
        return [row for row in self.cdr if row[UNIQUEID] == uniqueid]

    def customer_cdr(self, channel_id: str) -> list[tuple[str, ...]]:
        """The customer's own CDRs: the ``;2`` halves of the Local channels of the attempt
        (the originated one is ``channel_id-2``; a preview's is dialled from the agent's)."""
        return [
            row for row in self.cdr if row[LINKEDID] == channel_id and row[CHANNEL].endswith(";2")
        ]


def ami_events(folder: Path) -> tuple[ev.Event, ...]:
    """Every event frame of ``ami.txt``, typed. Times are the ``Timestamp`` headers
    (manager.conf ``timestampevents = yes``), as the dialer got them; 0.0 for the one event
    without (the FullyBooted sent at login)."""
    out = []
    for frame in AmiParser().feed((folder / "ami.txt").read_bytes()):
        if isinstance(frame, MalformedMessage) or (
            isinstance(frame, Message) and frame.event is not None
        ):
            out.append(ev.parse_event(frame, 0.0, traces.NODE))
    return tuple(out)


@cache
def recording(name: str) -> Recording:
    folder = traces.traces_dir() / name
    rows = json.loads((folder / "attempts.json").read_text(encoding="utf-8"))
    cdr_text = (folder / "cdr-custom.csv").read_text(encoding="utf-8")
    return Recording(
        name,
        ami_events(folder),
        tuple(r for r in rows if r["channel_id"]),
        tuple(parse_queue_log((folder / "queue_log").read_text(encoding="utf-8"))),
        tuple(tuple(row) for row in csv.reader(cdr_text.splitlines())),
        tuple(r for r in rows if not r["channel_id"]),
    )


# --- the dialer's fold ---------------------------------------------------------------------


def fresh(row: Mapping[str, Any]) -> tracker.Track:
    """The track ``Dialer._send`` makes when it originates the attempt."""
    return tracker.Track(
        row["channel_id"], row["campaign"], row["originated_at"], amd=row["amd"],
        preview=row["preview"],
    )  # fmt: skip


@dataclass
class Fold:
    live: dict[str, tracker.Track]
    ended: dict[str, tracker.Track] = field(default_factory=dict)
    #: channel id -> the columns the tracker asked the dialer to write, latest values
    facts: dict[str, dict[str, object]] = field(default_factory=dict)

    def feed(self, events: Iterable[ev.Event]) -> Fold:
        """``Dialer.on_event`` and ``Dialer._apply``, without the database."""
        for event in events:
            key = tracker.route(event, self.live)
            if key is None:
                continue
            track, changes = tracker.step(self.live[key], event)
            for change in changes:
                if isinstance(change, tracker.AttemptUpdate):
                    self.facts.setdefault(key, {}).update(change.columns)
            if track.outcome is not None:
                del self.live[key]
                self.ended[key] = track
            else:
                self.live[key] = track
        return self

    def track(self, channel_id: str) -> tracker.Track:
        return self.ended.get(channel_id) or self.live[channel_id]


def replay(rec: Recording) -> Fold:
    return Fold({row["channel_id"]: fresh(row) for row in rec.attempts}).feed(rec.events)


def agent_of(track: tracker.Track, row: Mapping[str, Any]) -> str:
    """The agent the dialer's record names: the tracker's (AgentConnect), or for a preview
    the agent who took the contact (on the record before the dial; the tracker never sees
    it)."""
    if track.agent:
        return track.agent
    return str(row["agent"] or "") if row["preview"] else ""


def _at(epoch: object) -> object:
    return dt.datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, float) else epoch


def rebuilt(row: Mapping[str, Any], facts: Mapping[str, object]) -> tracker.Track:
    """The open attempt as a restarted dialer reads it back: the record as claimed (a
    preview's names its agent), ``originated_at`` written at the dial, the tracker's columns
    written as ``Dialer._write`` writes them (``*_at`` epochs as datetimes), then
    ``_track_of``."""
    attempt = CampaignAttempt(
        channel_id=row["channel_id"],
        phone=row["phone"],
        attempt_no=row["attempt_no"],
        mode=row["mode"],
        paced=row["paced"],
        phase="dialling",
        created_at=_at(row["created_at"]),
        originated_at=_at(row["originated_at"]),
        agent=row["agent"] if row["preview"] else None,
        amd_status="",
        amd_cause="",
        message="",
    )
    for column, value in facts.items():
        setattr(attempt, column, _at(value) if column.endswith("_at") else value)
    campaign = Campaign(name=row["campaign"], mode=row["campaign_mode"], amd=row["amd"])
    return _track_of(attempt, campaign)


def own_hangup(rec: Recording, channel_id: str) -> int:
    """Index of the Hangup of the attempt's own channel (``len(events)`` if none)."""
    for i, event in enumerate(rec.events):
        if isinstance(event, ev.Hangup) and event.uniqueid == channel_id:
            return i
    return len(rec.events)


def cut_points(rec: Recording) -> list[int]:
    """Every cut that can make a difference: before each event of an attempt, and the end."""
    every = {row["channel_id"]: fresh(row) for row in rec.attempts}
    cuts = {i for i, e in enumerate(rec.events) if tracker.route(e, every) is not None}
    return sorted(cuts | {0, len(rec.events)})


# --- the tests -----------------------------------------------------------------------------

SCENARIOS = dialer_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_recording_is_whole(scenario: str) -> None:
    rec = recording(scenario)
    folder = traces.traces_dir() / scenario
    joined = b"".join(c.data for c in traces.timeline(scenario) if c.dir == "in")
    assert joined == (folder / "ami.txt").read_bytes()
    # ami.txt parsed on its own gives what the timeline gives: every event but the login's
    # FullyBooted carries its Timestamp (the timeline gives that one its receive time).
    timed = traces.events(scenario)
    assert len(rec.events) == len(timed)
    for mine, theirs in zip(rec.events, timed, strict=True):
        if mine.time == 0.0:
            assert isinstance(mine, ev.FullyBooted), mine
            mine = dataclasses.replace(mine, time=theirs.time)
        assert mine == theirs
    assert rec.attempts, "no dialled attempt in attempts.json"
    assert rec.queue_log[0].event == "QUEUESTART"
    ids = {e.uniqueid for e in rec.events if isinstance(e, ev.Newchannel)}
    for row in rec.attempts:
        assert row["channel_id"] in ids, f"no channel for {row['phone']}"
        assert row["outcome"] is not None, f"{row['phone']} has no outcome"
    # A contact not dialled (the do-not-call list) never reached Asterisk.
    ami = (folder / "ami.txt").read_text(encoding="utf-8")
    for row in rec.undialled:
        assert row["outcome"] == "skipped", row
        assert row["phone"] not in ami, row


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replay_gives_what_the_dialer_wrote(scenario: str) -> None:
    rec = recording(scenario)
    fold = replay(rec)
    assert not fold.live, f"attempts never ended: {sorted(fold.live)}"
    for row in rec.attempts:
        t = fold.track(row["channel_id"])
        got = (t.outcome, agent_of(t, row), t.amd_status, t.hangup_cause)
        want = (row["outcome"], row["agent"] or "", row["amd_status"], row["hangup_cause"])
        assert got == want, (row["phone"], t.reason, row["reason"])
        assert t.reason == row["reason"], row["phone"]
        for column in ("answered_at", "human_at", "queued_at", "agent_at",
                       "message_started_at", "ended_at"):  # fmt: skip
            mine, theirs = getattr(t, column), row[column]
            assert (mine is None) == (theirs is None), (row["phone"], column, mine, theirs)
            if mine is not None:
                assert mine == pytest.approx(theirs, abs=1e-5), (row["phone"], column)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replayed_outcomes_agree_with_asterisks_records(scenario: str) -> None:
    rec = recording(scenario)
    fold = replay(rec)
    for row in rec.attempts:
        cid, phone = row["channel_id"], row["phone"]
        t = fold.track(cid)
        agent = agent_of(t, row)
        ql = rec.queue_log_of(cid)
        events = [e.event for e in ql]
        own = rec.cdr_of(cid)
        customer = rec.customer_cdr(cid)
        what = (phone, t.outcome, events, own, customer)
        assert own, what
        assert customer, what
        dispositions = {r[DISPOSITION] for r in own}
        if t.outcome == "connected" and not t.preview:
            # The call entered the campaign queue and this agent's phone took it.
            assert events[0] == "ENTERQUEUE", what
            connects = [e for e in ql if e.event == "CONNECT"]
            assert [e.agent for e in connects] == [agent], what
            assert t.agent_at is not None
            assert abs(connects[0].time - t.agent_at) < 1.0, what
            assert any(
                r[DSTCHANNEL].startswith(f"PJSIP/{PHONES[agent]}-") and r[DISPOSITION] == "ANSWERED"
                for r in own
            ), what
        elif t.outcome == "connected":
            # Preview: the agent's phone was the originated channel; it dialled the customer.
            assert events == [], what
            (leg,) = own
            assert leg[CHANNEL].startswith(f"PJSIP/{PHONES[agent]}-"), what
            assert (leg[LASTAPP], leg[DISPOSITION]) == ("Dial", "ANSWERED"), what
            assert leg[DSTCHANNEL].startswith(f"Local/{phone}@sim-customer"), what
            assert {r[DISPOSITION] for r in customer} == {"ANSWERED"}, what
        elif t.outcome == "abandoned":
            # No agent in time: Queue() timed out and the information message played.
            assert events[0] == "ENTERQUEUE", what
            assert "CONNECT" not in events, what
            assert "EXITWITHTIMEOUT" in events, what
            assert any(
                r[DCONTEXT] == "dialer-abandon" and r[DISPOSITION] == "ANSWERED" for r in own
            ), what
        elif t.outcome == "delivered":
            assert events == [], what
            assert any(
                r[DCONTEXT] == "outbound-agentless" and r[DISPOSITION] == "ANSWERED" for r in own
            ), what
        elif t.outcome in ("machine", "machine_message", "hung_up"):
            assert "CONNECT" not in events, what
            assert "ANSWERED" in dispositions, what
        elif t.outcome == "busy":
            assert dispositions == {"BUSY"}, what
            assert [r[LASTAPP] for r in customer] == ["Busy"], what
        elif t.outcome == "no_answer":
            assert dispositions == {"NO ANSWER"}, what
            assert {r[DISPOSITION] for r in customer} == {"NO ANSWER"}, what
        elif t.outcome == "failed":
            assert dispositions <= {"CONGESTION", "FAILED"}, what
            if t.reason == "CONGESTION":
                assert [r[LASTAPP] for r in customer] == ["Congestion"], what
        else:
            raise AssertionError(f"no check for outcome {t.outcome!r}")
        if t.outcome in ("busy", "no_answer", "failed"):
            assert events == [], what
            assert (t.answered_at, t.human_at) == (None, None), what
        # AMD's verdict against what the simulated customer was playing when the call ended.
        if t.amd_status:
            greeting = {r[LASTDATA] for r in customer}
            assert (t.amd_status == "MACHINE") == (MACHINE_GREETING in greeting), what


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replay_from_the_middle_with_tracks_rebuilt_from_the_records(scenario: str) -> None:
    rec = recording(scenario)
    whole = replay(rec)
    hangups = {row["channel_id"]: own_hangup(rec, row["channel_id"]) for row in rec.attempts}
    checked = 0
    for k in cut_points(rec):
        before = Fold({row["channel_id"]: fresh(row) for row in rec.attempts})
        for row in rec.attempts:  # Dialer._send writes it as it originates
            before.facts[row["channel_id"]] = {"originated_at": row["originated_at"]}
        before.feed(rec.events[:k])
        # The records of the open attempts, read back as a restarted dialer reads them.
        after = Fold(
            {
                cid: rebuilt(row, before.facts[cid])
                for row in rec.attempts
                if (cid := row["channel_id"]) in before.live
            }
        ).feed(rec.events[k:])
        for row in rec.attempts:
            cid = row["channel_id"]
            if cid in before.ended:
                assert hangups[cid] < k or before.ended[cid].outcome == row["outcome"]
                continue
            assert hangups[cid] >= k
            t, want = after.track(cid), whole.track(cid)
            got = (t.outcome, agent_of(t, row), t.amd_status)
            expected = (row["outcome"], row["agent"] or "", row["amd_status"])
            assert got == expected, (scenario, k, row["phone"], t.reason)
            for column in ("answered_at", "human_at", "queued_at", "agent_at"):
                mine, theirs = getattr(t, column), getattr(want, column)
                assert (mine is None) == (theirs is None), (k, row["phone"], column)
                if mine is not None:
                    assert mine == pytest.approx(theirs, abs=1e-5), (k, row["phone"], column)
            checked += 1
    assert checked > len(rec.attempts)


def _kinds_busy() -> tuple[Recording, Mapping[str, Any]]:
    if "dialer-kinds" not in SCENARIOS:
        pytest.skip("the dialer-kinds recording is absent")
    rec = recording("dialer-kinds")
    (row,) = [r for r in rec.attempts if r["outcome"] == "busy"]
    return rec, row


def test_a_restart_after_the_busy_verdict_keeps_it() -> None:
    """The record keeps DialEnd's status and OriginateResponse's Reason as they come, so a
    dialer rebuilt after them and before the Local ;1 Hangup (cause 0) still says busy."""
    rec, row = _kinds_busy()
    cid = row["channel_id"]
    k = own_hangup(rec, cid)
    before = Fold({cid: fresh(row)}, facts={cid: {"originated_at": row["originated_at"]}})
    before.feed(rec.events[:k])
    assert cid in before.live
    after = Fold({cid: rebuilt(row, before.facts[cid])}).feed(rec.events[k:])
    assert after.track(cid).outcome == "busy"


def test_the_busy_verdict_comes_before_the_hangup() -> None:
    """What Asterisk 22.10.1 sent for a Local channel into Busy() (dialer-kinds): the
    OriginateResponse (Failure, Reason 5) and DialEnd BUSY, in either order (it varied from
    run to run), before the ;1 Hangup, whose cause is 0. The customer's cause (17) is only on
    the ;2 half's Hangup, which came after the ;1's in the stored run (before it in another):
    too late for a track that ends at its own channel's Hangup."""
    rec, row = _kinds_busy()
    cid, other = row["channel_id"], tracker.other_id(row["channel_id"])

    def first(match: Any) -> tuple[int, ev.Event]:
        return next((i, e) for i, e in enumerate(rec.events) if match(e))

    i_or, response = first(lambda e: isinstance(e, ev.OriginateResponse) and e.action_id == cid)
    i_dial, dial = first(lambda e: isinstance(e, ev.DialEnd) and e.dest_uniqueid == cid)
    i_hang, hangup = first(lambda e: isinstance(e, ev.Hangup) and e.uniqueid == cid)
    _, other_hangup = first(lambda e: isinstance(e, ev.Hangup) and e.uniqueid == other)
    assert max(i_or, i_dial) < i_hang
    assert isinstance(response, ev.OriginateResponse)
    assert (response.response, response.reason) == ("Failure", tracker.REASON_BUSY)
    assert isinstance(dial, ev.DialEnd)
    assert dial.dial_status == "BUSY"
    assert isinstance(hangup, ev.Hangup)
    assert hangup.cause == 0
    assert isinstance(other_hangup, ev.Hangup)
    assert other_hangup.cause == 17
