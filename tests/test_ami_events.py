"""Typed events: every recorded event parses, with the fields and units Asterisk 22 sends."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami import events as ev
from callcenter.ami.protocol import MalformedMessage, Message
from tests import traces

NODE = "pbx1"


def message(**fields: str) -> Message:
    return Message.from_pairs([(k.replace("_", "-"), v) for k, v in fields.items()])


T = TypeVar("T")


def of_type(scenario: str, cls: type[T]) -> list[T]:
    return [e for e in traces.events(scenario) if isinstance(e, cls)]


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_every_recorded_event_parses(scenario: str) -> None:
    """No recorded event is malformed; every modelled name becomes its own class."""
    events = traces.events(scenario)
    assert events
    for event in events:
        assert not isinstance(event, ev.MalformedEvent), event
        assert event.node == traces.NODE
        if isinstance(event, ev.UnknownEvent):
            assert event.name not in ev.EVENT_TYPES
        else:
            assert type(event).__name__ in ev.EVENT_TYPES


def test_counts_match_the_scenario_summary() -> None:
    """burst/scenario.md "AMI message counts": 12 AgentComplete, 8 QueueCallerAbandon."""
    counts = Counter(type(e).__name__ for e in traces.events("burst"))
    qlog = Counter(e.event for e in traces.queue_log("burst"))
    assert counts["AgentComplete"] == qlog["COMPLETEAGENT"] + qlog["COMPLETECALLER"]
    assert counts["QueueCallerAbandon"] == qlog["EXITWITHTIMEOUT"] + qlog["ABANDON"]
    assert counts["QueueCallerJoin"] == qlog["ENTERQUEUE"]


def test_agent_event_units_agree_with_queue_log() -> None:
    """AgentConnect HoldTime/RingTime are seconds (queue_log CONNECT data1/data3);
    AgentRingNoAnswer RingTime is milliseconds (queue_log RINGNOANSWER data1)."""
    connect = of_type("inbound-answered", ev.AgentConnect)[0]
    (logged,) = [e for e in traces.queue_log("inbound-answered") if e.event == "CONNECT"]
    assert connect.hold_time == int(logged.datum(1))
    assert connect.ring_time == int(logged.datum(3))
    assert connect.dest_uniqueid == logged.datum(2)
    assert connect.member_name == logged.agent
    (rna,) = of_type("inbound-abandon", ev.AgentRingNoAnswer)
    (rna_log,) = [e for e in traces.queue_log("inbound-abandon") if e.event == "RINGNOANSWER"]
    assert rna.ring_time_ms == int(rna_log.datum(1))
    (complete,) = of_type("inbound-agent-hangup", ev.AgentComplete)
    (done,) = [e for e in traces.queue_log("inbound-agent-hangup") if e.event.startswith("COMPL")]
    assert (complete.hold_time, complete.talk_time) == (int(done.datum(1)), int(done.datum(2)))
    assert complete.reason == "agent"  # queue_log COMPLETEAGENT


def test_abandon_hold_time_is_queue_log_wait() -> None:
    (abandon,) = of_type("inbound-abandon", ev.QueueCallerAbandon)
    (logged,) = [e for e in traces.queue_log("inbound-abandon") if e.event == "ABANDON"]
    assert abandon.hold_time == int(logged.datum(3))
    assert abandon.original_position == int(logged.datum(2))
    assert abandon.caller_id_num == "5551230001"


def test_member_events() -> None:
    added = of_type("agent-lifecycle", ev.QueueMemberAdded)
    assert [(m.member_name, m.interface, m.penalty) for m in added] == [
        ("Alice", "PJSIP/agent1001", 0),
        ("Bob", "PJSIP/agent1002", 1),
    ]
    assert added[0].ringinuse is False
    assert added[0].wrapuptime == 0  # the member's own value, not the queue's wrapuptime
    pauses = of_type("agent-lifecycle", ev.QueueMemberPause)
    assert (pauses[0].paused, pauses[0].paused_reason) == (True, "lunch")
    assert (pauses[1].paused, pauses[1].paused_reason) == (False, "")
    # QueueStatus answers with Name/Location and no Ringinuse
    (member,) = of_type("restart", ev.QueueMember)[:1]
    assert (member.member_name, member.interface, member.paused) == (
        "Alice",
        "PJSIP/agent1001",
        True,
    )
    assert member.paused_reason == "lunch"
    assert member.ringinuse is None
    assert member.action_id == "qstatus-after-restart"


def test_system_events_in_both_field_orders() -> None:
    booted = of_type("restart", ev.FullyBooted)
    assert len(booted) == 3  # one per connection
    assert all(b.status == "Fully Booted" and b.uptime == 0 for b in booted)
    shutdowns = of_type("restart", ev.Shutdown)
    assert [(s.shutdown, s.restart) for s in shutdowns] == [("Cleanly", True), ("Cleanly", False)]


def test_list_responses() -> None:
    params = of_type("burst", ev.QueueParams)[-1]
    assert (params.queue, params.completed, params.abandoned) == ("sales", 12, 8)
    assert params.strategy == "rrmemory"
    assert params.service_level == 20
    entry = of_type("agent-lifecycle", ev.QueueEntry)[0]
    assert (entry.queue, entry.position, entry.wait) == ("sales", 1, 2)
    assert entry.uniqueid == "1795342890.0"
    channels = of_type("agent-lifecycle", ev.CoreShowChannel)
    assert {c.application for c in channels} == {"AppQueue", "Wait", "Queue"}
    assert all(c.duration >= 0 for c in channels)
    (done,) = of_type("local-channels", ev.CoreShowChannelsComplete)
    assert done.list_items == len(of_type("local-channels", ev.CoreShowChannel))


def test_originate_response() -> None:
    responses = of_type("originate-outcomes", ev.OriginateResponse)
    reasons = [r.reason for r in responses]
    assert {0, 3, 4} <= set(reasons)  # scenario.md: answered 4, no answer 3, failed 0
    failed = [r for r in responses if r.response == "Failure"]
    assert any(r.uniqueid is None for r in failed)  # "Uniqueid: <unknown>"
    assert all(r.uniqueid for r in responses if r.response == "Success")


def test_dial_end_from_an_originate_has_no_calling_channel() -> None:
    ends = of_type("originate-outcomes", ev.DialEnd)
    assert any(e.uniqueid == "" and e.dest_uniqueid for e in ends)
    assert {"ANSWER", "BUSY"} <= {e.dial_status for e in ends}


def test_timestamp_header_wins_over_receive_time() -> None:
    with_stamp = message(Event="Shutdown", Shutdown="Cleanly", Restart="True", Timestamp="12.5")
    assert ev.parse_event(with_stamp, 99.0, NODE).time == 12.5
    bad_stamp = message(Event="Shutdown", Timestamp="soon")
    assert ev.parse_event(bad_stamp, 99.0, NODE).time == 99.0
    assert ev.parse_event(message(Event="Shutdown"), 99.0, NODE).time == 99.0


def test_unknown_and_malformed() -> None:
    unknown = ev.parse_event(message(Event="Newexten", Channel="X"), 1.0, NODE)
    assert isinstance(unknown, ev.UnknownEvent)
    assert (unknown.name, unknown.fields["Channel"], unknown.node) == ("Newexten", "X", NODE)

    missing = ev.parse_event(message(Event="QueueMemberAdded", Queue="sales"), 1.0, NODE)
    assert isinstance(missing, ev.MalformedEvent)
    assert missing.error == "missing field MemberName"
    assert missing.fields["Queue"] == "sales"

    not_int = ev.parse_event(message(Event="Hangup", Uniqueid="1.1", Cause="sixteen"), 1.0, NODE)
    assert isinstance(not_int, ev.MalformedEvent)
    assert "Cause" in not_int.error

    response = ev.parse_event(message(Response="Success", ActionID="a"), 1.0, NODE)
    assert isinstance(response, ev.MalformedEvent)
    assert response.name == ""

    frame = MalformedMessage(
        "Event: Hangup\r\njunk", "line without 'Key: '", (("Event", "Hangup"),)
    )
    malformed = ev.parse_event(frame, 2.0, NODE)
    assert isinstance(malformed, ev.MalformedEvent)
    assert (malformed.name, malformed.time) == ("Hangup", 2.0)


def test_events_are_frozen() -> None:
    (event,) = of_type("inbound-timeout", ev.QueueCallerJoin)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.queue = "other"  # type: ignore[misc]


@settings(max_examples=300, deadline=None, database=None)
@given(
    name=st.sampled_from(sorted(ev.EVENT_TYPES)),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "Queue",
                "MemberName",
                "Interface",
                "Name",
                "Location",
                "Uniqueid",
                "DestUniqueid",
                "HoldTime",
                "TalkTime",
                "RingTime",
                "Position",
                "Status",
                "Paused",
                "InCall",
                "Variable",
                "Response",
                "Duration",
                "Cause",
                "Timestamp",
                "ServicelevelPerf",
            ]
        ),
        st.text(max_size=6),
    ),
)
def test_parse_event_never_raises(name: str, fields: dict[str, str]) -> None:
    event = ev.parse_event(Message.from_pairs([("Event", name), *fields.items()]), 5.0, NODE)
    assert isinstance(event, ev.Event)
    if not isinstance(event, ev.MalformedEvent):
        assert type(event).__name__ == name
