"""The AMI events we ask Asterisk for (callcenter/ami/wanted.py) against what the code reads.

- every event the code dispatches on is in the list: the typed events, the core's, the
  recordings' handler tables, the security failures, and every Asterisk event name written as
  a string literal anywhere in ``callcenter/`` (a new ``message.event == "DialBegin"`` without
  the filter fails here);
- nothing in the list is invented: each name is Asterisk 22's (from its source);
- the rendered manager.conf carries exactly the list, in the advanced syntax, for the one user;
- the recorded traces replayed through the core and the dialer's tracker give the same result
  with only the events the filter (and each link's ``Events`` classes) lets through.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from callcenter.agi.callback import placeholder_ids
from callcenter.ami import events as ev
from callcenter.ami import wanted
from callcenter.ami.protocol import Message
from callcenter.asterisk import conffile, sample
from callcenter.asterisk.render import RenderError, render
from callcenter.campaigns import tracker
from callcenter.core import CoreConfig, apply, initial_state, tick
from callcenter.core.state import HANDLERS as CORE_HANDLERS
from callcenter.recordings import keeper, track
from callcenter.security import events as security
from tests import traces

ROOT = Path(__file__).resolve().parents[1]
ASTERISK_NAMES = frozenset(
    line.strip()
    for line in (ROOT / "tests" / "fixtures" / "asterisk-ami-event-names.txt")
    .read_text()
    .splitlines()
    if line.strip() and not line.startswith("#")
)
#: Asterisk event names the code spells for another reason, or knows and leaves out on purpose:
#: "Status" is a header (the dialer's DialerAMD, OriginateResponse...), the security events
#: that are no failure only ever raised a counter.
NOT_EVENTS_HERE = frozenset({"Status"}) | (security.NAMES - security.FAILURES)


def ami_name(cls: type[ev.Event]) -> str:
    """The AMI event name of a typed event class (ours from the dialplan are UserEvents)."""
    return "UserEvent" if issubclass(cls, ev.UserEvent) else cls.__name__


# --- the list against the code ---------------------------------------------------------------


def test_every_typed_event_is_asked_for_and_nothing_else() -> None:
    typed = set(ev.EVENT_TYPES)
    assert typed <= wanted.NAMES, sorted(typed - wanted.NAMES)
    # Besides the typed events only the security failures (typed by callcenter.security).
    assert wanted.NAMES - typed == set(security.FAILURES)


def test_every_handler_table_is_covered() -> None:
    tables: dict[str, Iterable[type[ev.Event]]] = {
        "core": CORE_HANDLERS,
        "recordings.track": track.HANDLERS,
        "recordings.keeper": keeper.EVENT_TYPES,
    }
    for table, types in tables.items():
        missing = {ami_name(t) for t in types} - wanted.NAMES
        assert not missing, f"{table} handles {sorted(missing)}, which manager.conf filters out"
    assert set(wanted.EVENTS) >= security.FAILURES


def _string_literals(tree: ast.AST) -> Iterable[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def test_every_event_name_the_code_spells_is_asked_for() -> None:
    """Raw-frame consumers (the IVR's callbacks, ``callcenter simulate``, the bridge's VarSet
    shortcut) compare ``message.event`` with literals: each must reach them."""
    unwanted = []
    for path in sorted((ROOT / "callcenter").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _string_literals(tree):
            if text in ASTERISK_NAMES and text not in wanted.NAMES | NOT_EVENTS_HERE:
                unwanted.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert not unwanted, "events the code reads but manager.conf filters out:\n" + "\n".join(
        unwanted
    )


def test_the_scan_would_see_a_new_consumer() -> None:
    code = 'def on(m):\n    """Newexten here is prose."""\n    return m.event == "DialBegin"\n'
    found = [t for _, t in _string_literals(ast.parse(code)) if t in ASTERISK_NAMES]
    assert found == ["DialBegin"]


def test_no_name_is_invented() -> None:
    assert wanted.NAMES <= ASTERISK_NAMES, sorted(wanted.NAMES - ASTERISK_NAMES)
    assert not set(wanted.EVENTS) & set(wanted.NARROWED)
    assert not set(wanted.REPLY_EVENTS) & (set(wanted.EVENTS) | set(wanted.NARROWED))


def test_var_set_filter_is_what_the_core_reads() -> None:
    """The VarSets kept are exactly those callcenter.core.calls.var_set_matters can act on
    with the bridge's configuration (callcenter.bridge.app.load_core_config)."""
    from callcenter.bridge import app

    rules = dict(wanted.NARROWED["VarSet"])
    assert set(rules["Variable"]) == {"QUEUESTATUS", app.TIMEOUT_VARIABLE, app.IVR_PATH_VARIABLE}
    assert set(rules["Context"]) == set(app.CALL_CONTEXTS)


def test_passes_follows_asterisks_include_rules() -> None:
    assert wanted.passes({"Event": "Hangup", "Channel": "PJSIP/x"})
    assert not wanted.passes({"Event": "Newexten", "Context": "from-trunk"})
    assert wanted.passes({"Event": "VarSet", "Variable": "QUEUESTATUS", "Context": "x"})
    assert wanted.passes({"Event": "VarSet", "Variable": "DID", "Context": "from-trunk"})
    assert not wanted.passes({"Event": "VarSet", "Variable": "DID", "Context": "inbound"})
    assert wanted.passes({"Event": "Newstate", "ChannelState": "6"})
    assert not wanted.passes({"Event": "Newstate", "ChannelState": "4"})
    assert not wanted.passes({"Response": "Success"})
    # filter_cmp_fn skips the blanks after "Header:" (every byte below "!") and never
    # matches an empty value; exact is exact (a trailing blank is part of the value).
    assert wanted.passes({"Event": "Newstate", "ChannelState": " \t6"})
    assert not wanted.passes({"Event": "Newstate", "ChannelState": "6 "})
    assert not wanted.passes({"Event": "VarSet", "Variable": "", "Context": "  "})


def test_prefix_filters_follow_asterisks_starts_with() -> None:
    """``method(starts_with)``: ``ast_begins_with`` on the value after the blanks; an empty
    value never matches; one matching rule of the event's is enough; other events and
    other headers (``DestLinkedid`` is not ``Linkedid``) do not count."""
    reader = wanted.Reader(
        (), {}, read="", write="",
        prefixed={"Hangup": (("Linkedid", "dialer-"),),
                  "DialEnd": (("Linkedid", "dialer-"), ("DestLinkedid", "dialer-"))},
    )  # fmt: skip
    assert reader.passes({"Event": "Hangup", "Linkedid": "dialer-1"})
    assert reader.passes({"Event": "Hangup", "Linkedid": "  dialer-1"})
    assert reader.passes({"Event": "Hangup", "Linkedid": "dialer-"})
    assert not reader.passes({"Event": "Hangup", "Linkedid": "1796619946.1"})
    assert not reader.passes({"Event": "Hangup", "Linkedid": "x-dialer-1"})
    assert not reader.passes({"Event": "Hangup", "Linkedid": "Dialer-1"})
    assert not reader.passes({"Event": "Hangup", "Linkedid": ""})
    assert not reader.passes({"Event": "Hangup", "DestLinkedid": "dialer-1"})
    assert not reader.passes({"Event": "Hangup", "Uniqueid": "dialer-1"})
    assert not reader.passes({"Event": "Newchannel", "Linkedid": "dialer-1"})
    assert reader.passes({"Event": "DialEnd", "DestLinkedid": "dialer-1"})
    assert reader.passes({"Event": "DialEnd", "Linkedid": "1.1", "DestLinkedid": "dialer-1"})
    assert not reader.passes({"Event": "DialEnd", "Linkedid": "1.1", "DestLinkedid": "1.2"})
    with pytest.raises(ValueError, match="method"):
        wanted.Include("Hangup", "Linkedid", "dialer-", "regex")
    with pytest.raises(ValueError, match="a header and a value"):
        wanted.Include("Hangup", "Linkedid", "", "starts_with")


# --- manager.conf ----------------------------------------------------------------------------


def test_manager_conf_carries_the_filter_for_its_one_user() -> None:
    text = render(sample.settings(), [], [], [])["manager.conf"].decode()
    user = conffile.parse(text, "manager.conf").named("callcenter")[0]
    filters = [(e.key, e.value) for e in user.entries if e.key.startswith("eventfilter")]
    assert filters == [(i.criteria(), i.value) for i in wanted.INCLUDES]
    assert len(filters) == len(set(filters))
    for key, value in filters:
        # Advanced syntax only: a name hash first, no regular expression (a legacy filter
        # would run a regex over every event's whole text).
        assert key.startswith("eventfilter(action(include),name("), key
        assert "method(regex)" not in key
        assert ("method(exact)" in key) == bool(value)


def test_manager_conf_gives_the_ivr_and_the_dialer_users_of_their_own() -> None:
    text = render(sample.settings(), [], [], [])["manager.conf"].decode()
    conf = conffile.parse(text, "manager.conf")
    for name, reader in (("callcenter", wanted.BRIDGE), ("callcenter-ivr", wanted.IVR),
                         ("callcenter-dialer", wanted.DIALER)):  # fmt: skip
        (user,) = conf.named(name)
        values = {e.key: e.value for e in user.entries}
        assert values["read"] == reader.read
        assert values["write"] == reader.write
        assert values["secret"] == sample.SAMPLE_AMI_SECRET
        filters = [(e.key, e.value) for e in user.entries if e.key.startswith("eventfilter")]
        assert filters == [(i.criteria(), i.value) for i in reader.includes()]
    # Empty, or the bridge's name: the IVR and the dialer share the bridge's user.
    for ivr, dialer in (("", ""), ("callcenter", "")):
        env = {"CALLCENTER_NODES__LOCAL__IVR_USERNAME": ivr,
               "CALLCENTER_NODES__LOCAL__DIALER_USERNAME": dialer}  # fmt: skip
        settings = sample.settings(env)
        shared = render(settings, [], [], [])["manager.conf"].decode()
        names = [s.name for s in conffile.parse(shared, "manager.conf").sections]
        assert names == ["general", "callcenter"]
        node = settings.node("local")
        assert node.login_as(node.ivr_username).username == "callcenter"
        assert node.login_as(node.dialer_username).username == "callcenter"


def test_manager_conf_filters_the_dialer_and_the_ivr_by_prefix() -> None:
    """The lines Asterisk reads for the dialer's and the IVR's users: each event of theirs
    by a header's prefix (the dialer's UserEvents by name)."""
    text = render(sample.settings(), [], [], [])["manager.conf"].decode()
    lines = text.splitlines()

    def section(name: str) -> list[str]:
        start = lines.index(f"[{name}]") + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), None)
        return [line for line in lines[start:end] if line.startswith("eventfilter")]

    prefix = "eventfilter(action(include),name("
    assert section("callcenter-dialer") == [
        f"{prefix}UserEvent),header(UserEvent),method(exact)) = DialerAMD",
        f"{prefix}UserEvent),header(UserEvent),method(exact)) = DialerMessage",
        f"{prefix}OriginateResponse),header(ActionID),method(starts_with)) = dialer-",
        f"{prefix}Newchannel),header(Linkedid),method(starts_with)) = dialer-",
        f"{prefix}Newstate),header(Linkedid),method(starts_with)) = dialer-",
        f"{prefix}DialEnd),header(Linkedid),method(starts_with)) = dialer-",
        f"{prefix}DialEnd),header(DestLinkedid),method(starts_with)) = dialer-",
        f"{prefix}QueueCallerJoin),header(Linkedid),method(starts_with)) = dialer-",
        f"{prefix}AgentConnect),header(Linkedid),method(starts_with)) = dialer-",
        f"{prefix}Hangup),header(Linkedid),method(starts_with)) = dialer-",
    ]
    assert section("callcenter-ivr") == [
        f"{prefix}AgentConnect),header(Uniqueid),method(starts_with)) = cb-",
        f"{prefix}DialEnd),header(Uniqueid),method(starts_with)) = cb-",
        f"{prefix}Hangup),header(Uniqueid),method(starts_with)) = cb-",
        f"{prefix}OriginateResponse),header(ActionID),method(starts_with)) = cb-",
    ]
    assert tracker.CHANNEL_PREFIX == "dialer-"
    assert wanted.CALLBACK_PREFIX == "cb-"
    assert tracker.new_channel_id().startswith(tracker.CHANNEL_PREFIX)
    assert placeholder_ids(7, 1796619946.5)[0].startswith(wanted.CALLBACK_PREFIX)
    # The bridge's user takes no prefix filter: it reads every call.
    assert "starts_with" not in "\n".join(section("callcenter"))


def test_the_readers_names_must_differ() -> None:
    env = {"CALLCENTER_NODES__LOCAL__IVR_USERNAME": "x",
           "CALLCENTER_NODES__LOCAL__DIALER_USERNAME": "x"}  # fmt: skip
    with pytest.raises(RenderError, match="dialer_username 'x' is the IVR's too"):
        render(sample.settings(env), [], [], [])
    env = {"CALLCENTER_NODES__LOCAL__DIALER_USERNAME": "bad name"}
    with pytest.raises(RenderError, match="dialer_username 'bad name' is not a plain name"):
        render(sample.settings(env), [], [], [])


def test_link_classes_cover_what_each_link_reads() -> None:
    """The IVR's callbacks and the dialer's tracker get the classes of every event they read
    (Privilege headers of the recorded events)."""
    privileges: dict[str, set[str]] = {}
    for scenario in traces.scenarios():
        for timed in traces.timed_frames(scenario):
            frame = timed.frame
            if isinstance(frame, Message) and frame.event and "Privilege" in frame.fields:
                classes = set(frame.fields["Privilege"].split(",")) - {"all"}
                privileges.setdefault(frame.event, set()).update(classes)
    ivr = {"AgentConnect", "DialEnd", "Hangup", "OriginateResponse"}
    dialer = {"OriginateResponse", "Newchannel", "Newstate", "DialEnd", "UserEvent"} | {
        "QueueCallerJoin", "AgentConnect", "Hangup"
    }  # fmt: skip
    for names, mask in ((ivr, wanted.IVR_EVENT_CLASSES), (dialer, wanted.DIALER_EVENT_CLASSES)):
        for name in names:
            assert privileges[name] <= set(mask.split(",")), (name, privileges[name], mask)


# --- replays: the filter loses nothing the core or the dialer uses ----------------------------


def _delivered(
    scenario: str,
    narrowed: wanted.Narrowed,
    mask: str = "",
    reader: wanted.Reader | None = None,
) -> tuple[list[ev.Event], list[ev.Event]]:
    """(every event, the events Asterisk would have sent with the filter and ``mask``; with
    ``reader``, that reader's filter instead)."""
    conns = set(traces.sequential_connections(scenario))
    every: list[ev.Event] = []
    kept: list[ev.Event] = []
    classes = set(mask.split(",")) if mask else None
    for timed in traces.timed_frames(scenario):
        frame = timed.frame
        if timed.conn not in conns or not isinstance(frame, Message) or frame.event is None:
            continue
        event = ev.parse_event(frame, timed.t, traces.NODE)
        every.append(event)
        f = frame.fields
        reply = frame.event in wanted.REPLY_EVENTS  # written past the filter and the mask
        sent = reader.passes(f) if reader is not None else wanted.passes(f, narrowed)
        if not (reply or sent):
            continue
        event_classes = set(f.get("Privilege", "").split(",")) - {"all"}
        if classes is not None and not reply and not event_classes <= classes:
            continue
        kept.append(event)
    return every, kept


def _core_result(events: Iterable[ev.Event], config: CoreConfig) -> tuple[object, ...]:
    state = initial_state(traces.NODE, config)
    changes = []
    last = 0.0
    for event in events:
        state, more = apply(state, event)
        changes.extend(more)
        last = event.time
    state, more = tick(state, last + 3600)
    changes.extend(more)
    return tuple(changes)


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_core_gets_the_same_from_the_filtered_stream(scenario: str) -> None:
    if scenario.startswith("dialer-"):
        # Recorded with our own dialplans: the bridge's configuration and filter. The
        # dialer's Local channels become calls at their first VarSet in [outbound-campaign].
        config = CoreConfig(
            queues=traces.core_config().queues,
            call_contexts=wanted.CALL_CONTEXTS,
            timeout_variable=wanted.TIMEOUT_VARIABLE,
            ivr_path_variable=wanted.IVR_PATH_VARIABLE,
        )
        narrowed = wanted.NARROWED
    else:
        # The older recordings' dialplan passed Queue()'s timeout in QTIMEOUT (the core's
        # default) and set no IVR path.
        config = traces.core_config()
        narrowed = wanted.narrowed(config.call_contexts, ["QUEUESTATUS", config.timeout_variable])
    every, kept = _delivered(scenario, narrowed)
    assert _core_result(kept, config) == _core_result(every, config)


@pytest.mark.parametrize("scenario", [s for s in traces.scenarios() if s.startswith("dialer-")])
def test_dialer_gets_the_same_from_its_filtered_link(scenario: str) -> None:
    from tests.test_dialer_replay import Fold, fresh, recording

    rec = recording(scenario)
    for reader in (wanted.BRIDGE, wanted.DIALER):  # sharing the bridge's user, or its own
        every, kept = _delivered(scenario, {}, wanted.DIALER_EVENT_CLASSES, reader)
        assert len(kept) < len(every)
        whole = Fold({r["channel_id"]: fresh(r) for r in rec.attempts}).feed(every)
        filtered = Fold({r["channel_id"]: fresh(r) for r in rec.attempts}).feed(kept)
        assert filtered.ended == whole.ended
        assert filtered.live == whole.live
        assert filtered.facts == whole.facts


def test_the_dialers_own_user_is_sent_less() -> None:
    """Why the dialer has a user of its own: the bridge's filter sends it every Queue* and
    Agent* event, and every call's, not only those of the calls it dials."""
    shared = own = 0
    for scenario in traces.scenarios():
        shared += len(_delivered(scenario, {}, wanted.DIALER_EVENT_CLASSES, wanted.BRIDGE)[1])
        own += len(_delivered(scenario, {}, wanted.DIALER_EVENT_CLASSES, wanted.DIALER)[1])
    assert own < 0.8 * shared, (own, shared)


def test_each_reader_reads_a_part_of_the_bridges_list() -> None:
    """The IVR's and the dialer's users are sent nothing the bridge's list lacks: the one
    list stays the one place an event name is added, and the test of the code's literals
    covers them."""
    for reader in (wanted.IVR, wanted.DIALER):
        assert set(reader.events) <= set(wanted.EVENTS)
        for name, rules in reader.narrow.items():
            assert name in wanted.NAMES
            for header, values in rules:
                assert values, (name, header)
        for name, prefix_rules in reader.prefixed.items():
            assert name in wanted.NAMES
            assert name not in reader.events
            for header, prefix in prefix_rules:
                assert header, name
                assert prefix, name
        assert set(reader.read.split(",")) <= set(wanted.BRIDGE.read.split(","))
        assert set(reader.write.split(",")) <= set(wanted.BRIDGE.write.split(","))


def test_the_ivrs_callbacks_read_what_its_user_is_sent() -> None:
    """The IVR's callbacks keep exactly these events (callcenter/agi/callback.py
    ``_on_event``), of their placeholders only; its user is sent those and nothing else."""
    import inspect

    from callcenter.agi.callback import CallbackService

    source = inspect.getsource(CallbackService._on_event)
    assert set(wanted.IVR.prefixed) == {"AgentConnect", "DialEnd", "Hangup", "OriginateResponse"}
    for name in wanted.IVR.prefixed:
        assert f'"{name}"' in source, name
    assert not wanted.IVR.events
    assert not wanted.IVR.narrow
    channel, other = placeholder_ids(42, 1796619946.0)
    ivr = wanted.IVR.passes
    # A placeholder's: the ;2 half in the queue (AgentConnect's caller), the ;1 half
    # dialling the customer (DialEnd), either half's Hangup, the Originate's response.
    assert ivr({"Event": "AgentConnect", "Uniqueid": other, "DestUniqueid": "1796.7"})
    assert ivr({"Event": "DialEnd", "Uniqueid": channel, "DestUniqueid": "1796.8"})
    assert ivr({"Event": "Hangup", "Uniqueid": channel})
    assert ivr({"Event": "Hangup", "Uniqueid": other})
    assert ivr({"Event": "OriginateResponse", "ActionID": "cb-action/x/1/1", "Uniqueid": channel})
    # Any other call's are not sent.
    assert not ivr({"Event": "AgentConnect", "Uniqueid": "1796.1", "DestUniqueid": "1796.2"})
    assert not ivr({"Event": "DialEnd", "Uniqueid": "1796.1", "DestUniqueid": other})
    assert not ivr({"Event": "Hangup", "Uniqueid": "1796.1", "Linkedid": channel})
    assert not ivr({"Event": "OriginateResponse", "ActionID": "action/x/1/1", "Uniqueid": other})
    assert not ivr({"Event": "QueueMemberStatus"})
    assert not ivr({"Event": "VarSet", "Variable": "QUEUESTATUS"})
    # The recordings have no callback: the IVR's user would have been sent nothing of them.
    for scenario in traces.scenarios():
        for timed in traces.timed_frames(scenario):
            frame = timed.frame
            if isinstance(frame, Message) and frame.event is not None:
                assert not ivr(frame.fields), (scenario, frame.text)


def test_the_dialers_user_events_are_only_its_own() -> None:
    dialer = wanted.DIALER.passes
    assert dialer({"Event": "UserEvent", "UserEvent": "DialerAMD", "Linkedid": "dialer-1"})
    assert dialer({"Event": "UserEvent", "UserEvent": "DialerMessage", "Linkedid": "dialer-1"})
    assert not dialer({"Event": "UserEvent", "UserEvent": "CallRecording", "Linkedid": "dialer-1"})
    # Every state of its own calls' channels (the tracker takes 5 and 6), no other call's.
    for state in ("4", "5", "6"):
        assert dialer({"Event": "Newstate", "ChannelState": state, "Linkedid": "dialer-1"})
    assert not dialer({"Event": "Newstate", "ChannelState": "6", "Linkedid": "1796619946.1"})
    for name in ("Newchannel", "Hangup", "QueueCallerJoin", "AgentConnect", "DialEnd"):
        assert dialer({"Event": name, "Uniqueid": "1796.3", "Linkedid": "dialer-1"}), name
        assert not dialer({"Event": name, "Uniqueid": "1796.3", "Linkedid": "1796.3"}), name
        assert not dialer({"Event": name, "Uniqueid": "dialer-1", "Linkedid": "1796.3"}), name
    # The Originate's own DialEnd has no calling channel: only Dest* headers.
    assert dialer({"Event": "DialEnd", "DestUniqueid": "dialer-1", "DestLinkedid": "dialer-1"})
    assert dialer({"Event": "OriginateResponse", "ActionID": "dialer-1", "Uniqueid": "dialer-1"})
    assert not dialer({"Event": "OriginateResponse", "ActionID": "cb-action/x/1/1"})
    assert not dialer({"Event": "AgentCalled", "Linkedid": "dialer-1"})
    assert not dialer({"Event": "QueueMemberStatus"})


def test_every_event_the_tracker_takes_passes_the_dialers_filter() -> None:
    """Over the dialer's recordings, folded as the dialer folds them: each event that changes
    an attempt's track is sent to the dialer's user (its Linkedid, the Originate's own
    DialEnd's DestLinkedid, the OriginateResponse's ActionID begin with the prefix); what
    else it is sent belongs to the dialer's calls; and it is sent no event of any other
    recording (other calls)."""
    from tests.test_dialer_replay import fresh, recording

    taken = 0
    for scenario in traces.scenarios():
        dialer = scenario.startswith("dialer-")
        tracks = {r["channel_id"]: fresh(r) for r in recording(scenario).attempts} if dialer else {}
        for timed in traces.timed_frames(scenario):
            frame = timed.frame
            if not isinstance(frame, Message) or frame.event is None:
                continue
            fields = frame.fields
            sent = wanted.DIALER.passes(fields)
            if not dialer:
                assert not sent, (scenario, frame.text)
                continue
            if sent:
                ours = fields.get("Linkedid") or fields.get("DestLinkedid") or fields["ActionID"]
                assert ours in tracks, (scenario, frame.text)
            event = ev.parse_event(frame, timed.t, traces.NODE)
            key = tracker.route(event, tracks)
            if key is None:
                continue
            track, changes = tracker.step(tracks[key], event)
            if track != tracks[key] or changes:
                assert sent, (scenario, frame.text)
                taken += 1
            tracks[key] = track
    assert taken > 50
