"""The dialer's attempt tracker (pure): event orders as Asterisk 22 sends them.

The orders below are those of the recorded traces (originate-outcomes, amd: see their
scenario.md) and of the dialer's own recordings (dialer-*): an Async Originate with ChannelId
and ActionID both the attempt's id, a Local channel's ;2 half with OtherChannelId = id + "-2".
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from callcenter.ami import events as ev
from callcenter.ami.protocol import Message
from callcenter.campaigns import tracker
from callcenter.campaigns.tracker import AttemptEnded, AttemptUpdate, Track

CID = "3f2a9c1e-0000-4000-8000-000000000001"
T0 = 1_796_600_000.0


def frame(name: str, t: float, **fields: str) -> ev.Event:
    pairs = [("Event", name), *fields.items(), ("Timestamp", f"{T0 + t:.6f}")]
    return ev.parse_event(Message.from_pairs(pairs), T0 + t, "local")


def chan(name: str, t: float, uid: str = CID, state: int = 0, **more: str) -> ev.Event:
    half = 1 if uid == CID else 2
    return frame(name, t, Channel=f"Local/+12015550110@sim-customer-00000001;{half}",
                 ChannelState=str(state), Uniqueid=uid, Linkedid=CID, **more)  # fmt: skip


def user(t: float, name: str, **fields: str) -> ev.Event:
    return frame("UserEvent", t, UserEvent=name, Channel="Local/x;1", Uniqueid=CID, **fields)


def originate(t: float, response: str, reason: int) -> ev.Event:
    return frame("OriginateResponse", t, ActionID=CID, Response=response,
                 Channel="Local/+12015550110@sim-customer", Reason=str(reason),
                 Uniqueid=CID if response == "Success" else "<unknown>")  # fmt: skip


def run(
    events: Iterable[ev.Event], *, amd: bool = True, preview: bool = False
) -> tuple[Track, list[tracker.Change]]:
    tracks = {CID: Track(CID, "renewals", T0, amd=amd, preview=preview)}
    changes: list[tracker.Change] = []
    track = tracks[CID]
    for e in events:
        key = tracker.route(e, tracks)
        if key is None:
            continue
        track, more = tracker.step(tracks[key], e)
        tracks[key] = track
        changes += more
    return track, changes


OTHER = tracker.other_id(CID)


def test_person_connected_to_an_agent() -> None:
    track, changes = run([
        chan("Newchannel", 0.01), chan("Newchannel", 0.01, OTHER, 4),
        chan("Newstate", 0.02, state=5),
        chan("Newstate", 2.0, OTHER, 6), chan("Newstate", 2.0, state=6),
        originate(2.0, "Success", 4),
        user(4.1, "DialerAMD", Status="HUMAN", Cause="HUMAN-800-800"),
        chan("QueueCallerJoin", 4.11, Queue="sales", Position="1", Count="1"),
        frame("AgentConnect", 4.6, Channel="Local/x;1", ChannelState="6", Uniqueid=CID,
              Linkedid=CID, Queue="sales", MemberName="alice", Interface="PJSIP/1001",
              HoldTime="0", RingTime="0"),
        chan("Hangup", 30.0, OTHER, 6, Cause="16"), chan("Hangup", 30.0, state=6, Cause="16"),
    ])  # fmt: skip
    assert track.outcome == "connected"
    assert track.agent == "alice"
    assert track.human_at == pytest.approx(T0 + 4.1)
    assert track.agent_at == pytest.approx(T0 + 4.6)
    assert track.hangup_cause == 16
    phases = [c.columns.get("phase") for c in changes if isinstance(c, AttemptUpdate)]
    assert phases == ["ringing", "answered", None, "queued", "connected"]
    assert isinstance(changes[-1], AttemptEnded)


def test_person_no_agent_in_time_hears_the_information_message() -> None:
    track, _ = run([
        chan("Newchannel", 0.0), chan("Newstate", 0.1, state=5),
        originate(2.0, "Success", 4), chan("Newstate", 2.0, state=6),
        user(4.0, "DialerAMD", Status="HUMAN", Cause="HUMAN-800-800"),
        chan("QueueCallerJoin", 4.0, Queue="sales", Position="1", Count="1"),
        chan("QueueCallerLeave", 5.0, Queue="sales", Position="1", Count="0"),
        user(5.01, "DialerMessage", Kind="abandon", Phase="start", Message="campaign-info"),
        user(9.0, "DialerMessage", Kind="abandon", Phase="end", Message="campaign-info"),
        chan("Hangup", 9.1, state=6, Cause="16"),
    ])  # fmt: skip
    assert track.outcome == "abandoned"
    assert track.message_started_at == pytest.approx(T0 + 5.01)
    assert track.message_ended_at == pytest.approx(T0 + 9.0)


def test_machine_hung_up_on_and_machine_left_a_message() -> None:
    track, _ = run([
        chan("Newchannel", 0.0), originate(1.0, "Success", 4),
        user(4.0, "DialerAMD", Status="MACHINE", Cause="LONGGREETING-1500-1500"),
        chan("Hangup", 4.1, state=6, Cause="16"),
    ])  # fmt: skip
    assert (track.outcome, track.reason, track.human_at) == (
        "machine",
        "LONGGREETING-1500-1500",
        None,
    )
    track, _ = run([
        chan("Newchannel", 0.0), originate(1.0, "Success", 4),
        user(4.0, "DialerAMD", Status="MACHINE", Cause="LONGGREETING-1500-1500"),
        user(4.1, "DialerMessage", Kind="machine", Phase="start", Message="renewal-msg"),
        chan("Hangup", 9.0, state=6, Cause="16"),
    ])  # fmt: skip
    assert track.outcome == "machine_message"
    assert track.message_ended_at is None  # hung up before the end: the record says so


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        # Local Busy(): DialEnd BUSY, OriginateResponse 5, ;1 Hangup 0, ;2 Hangup 17.
        (
            [
                chan("Newchannel", 0.0),
                chan("Newchannel", 0.0, OTHER, 4),
                frame(
                    "DialEnd", 0.01, DestChannel="Local/x;1", DestUniqueid=CID, DialStatus="BUSY"
                ),
                originate(0.01, "Failure", 5),
                chan("Hangup", 0.01, Cause="0"),
                chan("Hangup", 0.02, OTHER, Cause="17"),
            ],
            "busy",
        ),
        # PJSIP 486: Hangup 17 first, then OriginateResponse Reason 0.
        (
            [
                chan("Newchannel", 0.0),
                chan("Hangup", 0.01, Cause="17"),
                originate(0.02, "Failure", 0),
            ],
            "busy",
        ),
        # No answer: OriginateResponse Reason 3 at the timeout, then Hangup 19.
        (
            [
                chan("Newchannel", 0.0),
                chan("Newstate", 0.1, state=5),
                originate(25.0, "Failure", 3),
                chan("Hangup", 25.0, state=5, Cause="19"),
            ],
            "no_answer",
        ),
        # Congestion: ;2 Hangup 34, OriginateResponse 8, ;1 Hangup 0.
        (
            [
                chan("Newchannel", 0.0),
                chan("Newchannel", 0.0, OTHER, 4),
                chan("Hangup", 0.01, OTHER, Cause="34"),
                originate(0.01, "Failure", 8),
                chan("Hangup", 0.01, Cause="0"),
            ],
            "failed",
        ),
        # No such endpoint: no channel at all.
        ([originate(0.01, "Failure", 0)], "failed"),
    ],
)
def test_not_answered(events: list[ev.Event], outcome: str) -> None:
    track, changes = run(events)
    assert track.outcome == outcome
    assert track.human_at is None
    assert track.answered_at is None
    assert sum(isinstance(c, AttemptEnded) for c in changes) == 1


def test_hung_up_during_amd_is_no_live_answer() -> None:
    track, _ = run([chan("Newchannel", 0.0), originate(1.0, "Success", 4),
                    chan("Hangup", 1.5, state=6, Cause="16")])  # fmt: skip
    assert (track.outcome, track.human_at) == ("hung_up", None)


def test_without_amd_the_answer_is_the_person() -> None:
    track, _ = run(
        [chan("Newchannel", 0.0), originate(1.0, "Success", 4),
         chan("QueueCallerJoin", 1.01, Queue="sales", Position="1", Count="1"),
         chan("Hangup", 1.5, state=6, Cause="16")],
        amd=False,
    )  # fmt: skip
    assert track.outcome == "hung_up"
    assert track.human_at == pytest.approx(T0 + 1.0)


def test_events_after_the_end_and_of_other_calls_change_nothing() -> None:
    track, changes = run([originate(0.01, "Failure", 0), chan("Hangup", 1.0, Cause="16")])
    assert track.outcome == "failed"
    assert len(changes) == 1
    stranger = frame("Hangup", 1.0, Channel="PJSIP/x", ChannelState="6", Uniqueid="99.1",
                     Linkedid="99.1", Cause="16")  # fmt: skip
    assert tracker.route(stranger, {CID: track}) is None


def test_expire_and_gone() -> None:
    fresh = Track(CID, "renewals", T0)
    assert tracker.expire(fresh, T0 + 10, 55)[1] == []
    done, changes = tracker.expire(fresh, T0 + 56, 55)
    assert done.outcome == "failed"
    assert changes
    seen = Track(CID, "renewals", T0, seen_channel=True)
    assert tracker.expire(seen, T0 + 500, 55)[1] == []
    assert tracker.gone(seen, T0 + 60)[0].outcome == "lost"
    queued = Track(CID, "renewals", T0, answered_at=T0 + 3, human_at=T0 + 4, queued_at=T0 + 4,
                   phase="queued")  # fmt: skip
    assert tracker.gone(queued, T0 + 60, call_agent="alice")[0].outcome == "connected"
    assert tracker.gone(queued, T0 + 60, call_outcome="timed_out")[0].outcome == "abandoned"
    assert tracker.gone(queued, T0 + 60)[0].outcome == "hung_up"


def test_preview_connects_when_the_customer_answers() -> None:
    customer = "1796600040.7"

    def leg(t: float, status: str) -> ev.Event:
        return frame("DialEnd", t, Channel="PJSIP/1001-00000003", Uniqueid=CID,
                     DestChannel="Local/+12015550162@sim-customer-00000004;1",
                     DestUniqueid=customer, DialStatus=status)  # fmt: skip

    agent_answers = [
        chan("Newchannel", 0.0),
        frame("DialEnd", 3.0, DestChannel="PJSIP/1001-00000003", DestUniqueid=CID,
              DialStatus="ANSWER"),
        originate(3.0, "Success", 4),
    ]  # fmt: skip
    track, _ = run(
        [*agent_answers, leg(10.0, "ANSWER"), chan("Hangup", 40.1, state=6, Cause="16")],
        preview=True,
    )
    assert track.outcome == "connected"
    assert track.agent_at == pytest.approx(T0 + 10.0)
    assert track.human_at == pytest.approx(T0 + 10.0)
    track, _ = run(
        [*agent_answers, leg(10.0, "BUSY"), chan("Hangup", 10.1, state=6, Cause="16")],
        preview=True,
    )
    assert track.outcome == "busy"
    track, _ = run([*agent_answers, chan("Hangup", 5.0, state=6, Cause="16")], preview=True)
    assert (track.outcome, track.reason) == (
        "failed",
        "the agent hung up before the customer was dialled",
    )
    track, _ = run([chan("Newchannel", 0.0), originate(30.0, "Failure", 3),
                    chan("Hangup", 30.0, Cause="19")], preview=True)  # fmt: skip
    assert (track.outcome, track.reason) == ("failed", "the agent's phone did not answer")


def test_may_route_never_drops_an_event_route_would_take() -> None:
    """The dialer skips typing an event when :func:`tracker.may_route` says no: over every
    recorded dialer trace, with every attempt's channel (and its originate's ActionID) known,
    each event ``route`` finds an attempt for passes the raw test; most others do not."""
    from tests import traces
    from tests.test_dialer_replay import fresh, recording

    taken = skipped = 0
    for scenario in [s for s in traces.scenarios() if s.startswith("dialer-")]:
        rec = recording(scenario)
        tracks = {row["channel_id"]: fresh(row) for row in rec.attempts}
        for timed in traces.timed_frames(scenario):
            frame = timed.frame
            if not isinstance(frame, Message) or frame.event is None:
                continue
            event = ev.parse_event(frame, timed.t, traces.NODE)
            if tracker.route(event, tracks) is not None:
                assert tracker.may_route(frame.fields, tracks), (scenario, frame.text)
                taken += 1
            elif not tracker.may_route(frame.fields, tracks):
                skipped += 1
    assert taken > 0
    assert skipped > taken
    assert not tracker.may_route({"Uniqueid": "x"}, {})


def test_coalesce_merges_an_attempts_updates_and_keeps_its_end_last() -> None:
    from callcenter.campaigns.dialer import coalesce

    a1 = AttemptUpdate("a", {"phase": "ringing"})
    b1 = AttemptUpdate("b", {"phase": "ringing"})
    a2 = AttemptUpdate("a", {"phase": "answered", "answered_at": 2.0})
    a3 = AttemptUpdate("a", {"phase": "queued", "queued_at": 3.0})
    end = AttemptEnded(Track("a", "camp", dialled_at=1.0))
    late = AttemptUpdate("a", {"hangup_cause": 16})
    out = coalesce([a1, b1, a2, a3, end, late])
    assert out == [
        AttemptUpdate("a", {"phase": "queued", "answered_at": 2.0, "queued_at": 3.0}),
        b1,
        end,
        late,
    ]
    assert coalesce([]) == []
