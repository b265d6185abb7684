"""The pure rules of live monitoring: who may, what can be spied on, and the Originate."""

from __future__ import annotations

import pytest

from callcenter.monitoring import MonitorError, rules
from callcenter.wallboard.model import AgentLive


def live(state: str = "on_call", call: str | None = "1795000000.7", **kw: str) -> AgentLive:
    fields = {"node": "pbx1", "agent": "alice", "interface": "PJSIP/1001", **kw}
    return AgentLive(
        node=fields["node"], agent=fields["agent"], interface=fields["interface"], state=state,
        reason=None, since=1795000000.0, call=call, call_queue="sales" if call else None,
        queues=("sales",),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "options"), [("listen", "qEu"), ("whisper", "qwEu"), ("barge", "qBEu")]
)
def test_the_originate_of_each_mode(mode: rules.Mode, options: str) -> None:
    fields = rules.originate_fields(mode, "2001", live(), "PJSIP/1001-0000002a", by="sam")
    assert fields == {
        "Channel": "PJSIP/2001",
        "Application": "ChanSpy",
        "Data": f"PJSIP/1001-0000002a,{options}",
        "Timeout": "30000",
        "CallerID": f'"{rules.LABELS[mode]} alice" <1001>',
        "Variable": [f"CC_MONITOR_MODE={mode}", "CC_MONITOR_AGENT=alice", "CC_MONITOR_BY=sam"],
    }
    # Quiet, exact channel, ends with the agent's call; whisper and barge are exclusive.
    assert {"q", "u", "E"} <= set(options)
    assert not {"w", "B"} <= set(options)
    assert "d" not in options  # no switching modes by DTMF behind the log's back


def test_caller_id_without_an_extension_is_the_label_alone() -> None:
    agent = live(interface="Local/Renée@sim-agents", agent="Renée")
    assert rules.caller_id("whisper", agent) == '"Whisper Renée"'


@pytest.mark.parametrize(
    ("kind", "role", "csrf", "refused"),
    [
        ("user", "supervisor", True, None),
        ("user", "admin", True, None),
        ("user", "supervisor", False, "CSRF"),
        ("user", "viewer", True, "role viewer"),
        ("agent", "agent", True, "agent's session"),
        ("token", "viewer", True, "screen's token"),
        ("api", "api-write", True, "API token"),
        ("api", "api-read", True, "API token"),
    ],
)
def test_only_a_supervisors_own_session_may_monitor(
    kind: str, role: str, csrf: bool, refused: str | None
) -> None:
    problem = rules.principal_problem(kind, role, csrf_ok=csrf)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert refused in problem


def test_what_can_be_monitored() -> None:
    def why(agent: AgentLive | None, *, down: bool = False, phone: str | None = "2001") -> str:
        found = rules.check_target("alice", "pbx1", agent, node_down=down, phone=phone)
        if isinstance(found, rules.Target):
            assert (found.agent, found.call, found.phone) == (agent, "1795000000.7", phone)
            return ""
        return f"{found.status} {found.reason}"

    assert why(live()) == ""
    assert why(live(), phone=None).startswith("409 you have no phone")
    assert why(live(), down=True).startswith("409 node pbx1 is down")
    assert why(None) == "409 alice is not logged in on node pbx1"
    assert why(live("logged_out", None)) == "409 alice is not logged in on node pbx1"
    assert why(live("available", None)) == "409 alice is not on a call (available)"
    assert why(live("wrap_up", None)) == "409 alice is not on a call (wrap_up)"
    assert why(live(call=None)) == "409 alice is not on a call (on_call)"
    assert why(live(), phone="1001") == "409 your phone 1001 is alice's own phone"


def test_the_channel_must_be_known_and_fit_for_chanspy() -> None:
    for channel in ("PJSIP/1001-0000002a", "Local/alice@sim-agents-00000001;1"):
        assert rules.check_channel("alice", channel) == channel
    unknown = rules.check_channel("alice", None)
    assert isinstance(unknown, rules.Refusal)
    assert "try again" in unknown.reason
    assert isinstance(rules.check_channel("alice", "PJSIP/a,b-1"), rules.Refusal)
    # manager.c refuses these words in Data to a user without the system class.
    forbidden = rules.check_channel("alice", "PJSIP/DBA-00000001")
    assert isinstance(forbidden, rules.Refusal)
    assert "contains DB" in forbidden.reason


@pytest.mark.parametrize("phone", ["2001", "sup-anna", "desk_7.b", " 2001 "])
def test_phones_are_endpoint_names(phone: str) -> None:
    assert rules.check_phone(phone) == phone.strip()


@pytest.mark.parametrize("phone", ["", "PJSIP/2001", "2001@pbx", "a,b", "-x", "é1", "x" * 65])
def test_other_phones_are_refused(phone: str) -> None:
    with pytest.raises(MonitorError, match="not an endpoint name"):
        rules.check_phone(phone)


def test_modes_and_who() -> None:
    assert rules.parse_mode("whisper") == "whisper"
    assert rules.parse_mode("Whisper") is None
    assert rules.parse_mode("") is None
    assert rules.who("user", "sam") == "sam"
    assert rules.who("agent", "alice") == "agent:alice"
    assert rules.who("token", "lobby") == "token:lobby"
