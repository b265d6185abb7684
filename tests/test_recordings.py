"""Call recording, the pure parts: policy and sampling, paths, WAV headers, the events and the
tracker that folds them into rows (replaying a call recorded on a real Asterisk 22), mute
arithmetic, retention's rule, and the rendered dialplan's globals."""

from __future__ import annotations

import datetime as dt
import math
import struct
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from callcenter.ami import events as ev
from callcenter.ami.protocol import AmiParser, Message
from callcenter.asterisk import conffile, sample
from callcenter.asterisk.render import CampaignConf, RenderOptions, render
from callcenter.recordings import paths, policy, retention, track, wav

FIXTURE = Path(__file__).parent / "fixtures" / "recordings" / "queue-call-muted.ami"
NODE = "pbx1"


# --- policy -----------------------------------------------------------------------------------


def test_policy_check_keeps_what_is_not_given_and_refuses_nonsense() -> None:
    p = policy.check("all", None)
    assert p == policy.RecordPolicy("all", 0.0)
    sampled = policy.check("sampled", 0.2, current=p)
    assert (sampled.policy, sampled.share, sampled.per_mille) == ("sampled", 0.2, 200)
    # The share alone changes, the policy stays.
    assert policy.check(None, 0.5, current=sampled) == policy.RecordPolicy("sampled", 0.5)
    # A share kept under another policy is not used by the dialplan.
    assert policy.check("all", None, current=sampled).per_mille == 0
    for bad_policy, share, why in (
        ("sometimes", None, "not one of"),
        ("sampled", None, "needs --record-share"),
        ("sampled", 0.0, "needs --record-share"),
        ("sampled", 0.0001, "needs --record-share"),  # rounds to 0 thousandths
        ("all", 1.5, "between 0 and 1"),
        ("all", -0.1, "between 0 and 1"),
        ("all", math.nan, "between 0 and 1"),
    ):
        with pytest.raises(policy.PolicyError, match=why):
            policy.check(bad_policy, share)


def test_sampling_records_the_share_of_draws() -> None:
    share = 0.2
    recorded = sum(policy.sampled(draw, share) for draw in range(policy.SHARE_STEPS))
    assert recorded == 200
    assert policy.sampled(199, share)
    assert not policy.sampled(200, share)
    assert not any(policy.sampled(d, 0.0) for d in range(1000))
    assert all(policy.sampled(d, 1.0) for d in range(1000))
    p = policy.RecordPolicy("sampled", share)
    assert policy.reason_for(p, 0) == "sampled"
    assert policy.reason_for(p, 999) is None
    assert policy.reason_for(policy.RecordPolicy("all"), 999) == "policy"
    assert policy.reason_for(policy.RecordPolicy("on_demand"), 0) is None
    assert policy.reason_for(policy.RecordPolicy("none"), 0) is None


def test_on_demand_needs_the_policy_and_nothing_recording() -> None:
    demand = policy.RecordPolicy("on_demand")
    assert policy.may_start_on_demand(demand, recording=False) is None
    assert "already" in (policy.may_start_on_demand(demand, recording=True) or "")
    assert "not on demand" in (policy.may_start_on_demand(policy.RecordPolicy("all"), False) or "")
    # A policy the database holds but the code does not know is never recorded by mistake.
    assert policy.RecordPolicy.of("weird", 0.5).policy == "none"


def test_dialplan_globals_name_each_queue_and_campaign() -> None:
    lines = policy.dialplan_globals(
        {"sales": policy.RecordPolicy("sampled", 0.25), "care": policy.RecordPolicy("all")},
        {"spring": policy.RecordPolicy("on_demand")},
    )
    assert lines == [
        ("QREC_care", "all"), ("QRECSHARE_care", "0"),
        ("QREC_sales", "sampled"), ("QRECSHARE_sales", "250"),
        ("CREC_spring", "on_demand"), ("CRECSHARE_spring", "0"),
    ]  # fmt: skip


def test_the_rendered_dialplan_carries_the_policies_and_the_recordings_place(
    tmp_path: Path,
) -> None:
    queues = [replace(sample.QUEUES[0], record_policy="sampled", record_share=0.1)]
    files = render(
        sample.settings(), sample.AGENTS, queues, sample.TRUNKS,
        RenderOptions(directory=tmp_path / "instance"),
        campaigns=[CampaignConf("spring", "all", 0.0)],
    )  # fmt: skip
    plan = conffile.dialplan(files)
    name = queues[0].name
    assert plan.globals[f"QREC_{name}"] == "sampled"
    assert plan.globals[f"QRECSHARE_{name}"] == "100"
    assert plan.globals["CREC_spring"] == "all"
    assert plan.globals["RECORDING_DIR"] == str(tmp_path / "instance" / "recordings")
    assert plan.globals["RECORDING_FORMAT"] == "wav"
    assert plan.globals["RECORDING_OPTIONS"] == "b"
    features = files["features.conf"].decode()
    assert "ccrecord => *9,self,Gosub(recording-demand,s,1)" in features
    modules = files["modules.conf"].decode()
    for module in ("app_mixmonitor.so", "func_rand.so"):
        assert module in modules


# --- paths ---------------------------------------------------------------------------------


def test_paths_are_by_day_and_never_leave_the_directory(tmp_path: Path) -> None:
    rel = paths.relative_path(dt.date(2026, 12, 7), "1796654633.0", "1796654636.1")
    assert rel == "2026/12/07/1796654633.0_1796654636.1.wav"
    assert paths.leg_of(rel) == "1796654636.1"
    assert paths.resolve(tmp_path, rel) == tmp_path.resolve() / rel
    for bad in (
        "../etc/passwd",
        "/etc/passwd",
        "2026/12/07/../../../../etc/passwd.wav",
        "2026/12/07/x.mp3",
        "2026/13/40/x.wav",
        "2026/12/07/.hidden.wav",
        "2026/12/07/sub/x.wav",
        "",
    ):
        with pytest.raises(paths.PathError):
            paths.resolve(tmp_path, bad)
    # A symbolic link inside pointing out is refused too.
    (tmp_path / "2026" / "12").mkdir(parents=True)
    (tmp_path / "2026" / "12" / "07").symlink_to("/etc")
    with pytest.raises(paths.PathError, match="outside"):
        paths.resolve(tmp_path, "2026/12/07/passwd.wav")


# --- WAV ------------------------------------------------------------------------------------


def asterisk_wav(path: Path, seconds: float, *, closed: bool = True, rate: int = 8000) -> bytes:
    """A file as format_wav.c writes it: a 44-byte header, data size 0 until it is closed."""
    frames = int(seconds * rate)
    data = struct.pack(f"<{frames}h", *(int(3000 * math.sin(i / 3)) for i in range(frames)))
    size = len(data) if closed else 0
    header = (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip
    path.write_bytes(header + data)
    return header + data


def test_a_file_is_closed_when_its_header_accounts_for_every_byte(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    asterisk_wav(f, 2.5, closed=False)
    header = wav.parse_header(f.read_bytes()[:100])
    assert header is not None
    assert header.data_offset == 44
    assert header.data_size == 0
    assert not wav.is_closed(header, f.stat().st_size)
    assert wav.inspect(f) is None
    raw = asterisk_wav(f, 2.5)
    facts = wav.inspect(f)
    assert facts is not None
    assert (facts.duration_ms, facts.size_bytes) == (2500, len(raw))
    import hashlib

    assert facts.sha256 == hashlib.sha256(raw).hexdigest()
    with wave.open(str(f)) as w:  # Python's reader agrees
        assert w.getnframes() == 20000
    # An empty recording (hung up at once) is closed with length 0; a missing one is None.
    asterisk_wav(f, 0)
    empty = wav.inspect(f)
    assert empty is not None
    assert (empty.duration_ms, empty.size_bytes) == (0, 44)
    assert wav.inspect(tmp_path / "nope.wav") is None
    assert wav.parse_header(b"not a wav file at all") is None


# --- the events -----------------------------------------------------------------------------


def frames(data: bytes) -> Iterator[Message]:
    parser = AmiParser(expect_banner=False)
    for frame in parser.feed(data):
        if isinstance(frame, Message):
            yield frame


def recorded() -> list[ev.Event]:
    return [ev.parse_event(m, 0.0, NODE) for m in frames(FIXTURE.read_bytes())]


def test_the_recorded_events_parse_into_their_types() -> None:
    events = recorded()
    rec = [e for e in events if isinstance(e, ev.CallRecording)]
    assert len(rec) == 1
    r = rec[0]
    assert r.file == "2026/12/07/1796655109.0_1796655111.1.wav"
    assert (r.call_uniqueid, r.queue, r.agent, r.reason) == ("1796655109.0", "sales", "alice",
                                                              "policy")  # fmt: skip
    assert (r.channel, r.uniqueid, r.campaign, r.requested_by) == (
        "PJSIP/1001-00000001", "1796655111.1", "", "")  # fmt: skip
    mutes = [e for e in events if isinstance(e, ev.MixMonitorMute)]
    assert [(m.uniqueid, m.direction, m.muted) for m in mutes] == [
        ("1796655111.1", "both", True), ("1796655111.1", "both", False)]  # fmt: skip
    assert mutes[1].time - mutes[0].time == pytest.approx(3.0, abs=0.05)
    # Other UserEvents stay plain UserEvents (the dialer reads them by name).
    other = ev.parse_event(Message.from_pairs([("Event", "UserEvent"), ("UserEvent", "DialerAMD"),
                                               ("Uniqueid", "1.1"), ("Status", "HUMAN")]),
                           0.0, NODE)  # fmt: skip
    assert type(other) is ev.UserEvent
    # Ours without its File is malformed, said so, and nothing stops.
    bad = ev.parse_event(Message.from_pairs([("Event", "UserEvent"), ("UserEvent", "CallRecording"),
                                             ("Uniqueid", "1.1")]), 0.0, NODE)  # fmt: skip
    assert isinstance(bad, ev.MalformedEvent)
    assert "File" in bad.error


def replay(events: list[ev.Event]) -> tuple[track.Recordings, list[track.Change]]:
    state = track.Recordings(NODE)
    changes: list[track.Change] = []
    for e in events:
        visit = 1 if isinstance(e, ev.CallRecording) else None
        state, more = track.apply(state, e, visit)
        changes += more
    return state, changes


def test_the_recorded_call_becomes_one_row_with_its_muted_time() -> None:
    events = recorded()
    state, changes = replay(events)
    rows = [c.recording for c in changes if isinstance(c, track.RecordingChanged)]
    # Created, muted, unmuted, stopped: four snapshots of one row.
    assert [r.path for r in rows] == [rows[0].path] * 4
    first, muted, unmuted, stopped = rows
    assert (first.state, first.visit, first.queue, first.agent, first.reason) == (
        "recording", 1, "sales", "alice", "policy")  # fmt: skip
    assert muted.muted_since is not None
    assert muted.mutes == 1
    assert unmuted.muted_since is None
    assert unmuted.muted_ms == pytest.approx(3000, abs=50)
    hangup = next(e for e in events if isinstance(e, ev.Hangup) and e.uniqueid == first.leg)
    assert stopped.ended_at == hangup.time
    assert stopped.ended_at - stopped.started_at == pytest.approx(12.0, abs=0.1)
    checks = [c for c in changes if isinstance(c, track.CheckFile)]
    assert checks == [track.CheckFile(NODE, first.path, hangup.time)]
    # The leg is gone: a second Hangup or a late mute changes nothing.
    assert state.by_leg == {}
    assert track.apply(state, hangup)[1] == []
    # The file closed: done, with its facts; then the state forgets it.
    state, done = track.file_checked(state, first.path, wav.FileFacts(12000, 192044, "ab"),
                                     give_up=False)  # fmt: skip
    assert [c.recording.state for c in done if isinstance(c, track.RecordingChanged)] == ["done"]
    assert state.by_path == {}


def test_every_suffix_of_the_stream_is_harmless() -> None:
    """Joining mid-call (a restart of the bridge) never fails, and never invents a row."""
    events = recorded()
    for start in range(len(events)):
        _, changes = replay(events[start:])
        for c in changes:
            if isinstance(c, track.RecordingChanged):
                assert c.recording.path.endswith("1796655111.1.wav")


def chan(cls: type[ev.ChannelEvent], t: float, uniqueid: str, *extra: object) -> ev.Event:
    return cls(NODE, t, "PJSIP/1001-1", 6, uniqueid, "9.9", "", "", "", "", "", "", *extra)


def started(t: float = 100.0, leg: str = "2.1", path: str = "2026/12/07/9.9_2.1.wav",
            **kw: str) -> ev.CallRecording:  # fmt: skip
    fields = {"reason": "policy", "requested_by": "", "agent": "alice", **kw}
    return ev.CallRecording(NODE, t, "CallRecording", "PJSIP/1001-1", leg, {}, path, "9.9",
                            "9.9", "sales", "", fields["agent"], fields["reason"],
                            fields["requested_by"])  # fmt: skip


def test_mute_arithmetic_by_direction() -> None:
    state, _ = track.apply(track.Recordings(NODE), started(), 2)
    steps = [
        (110.0, "both", True),  # muted from 110
        (112.0, "read", False),  # write still muted
        (115.0, "write", False),  # unmuted at 115: 5 s
        (120.0, "read", True),  # muted again at 120
        (121.0, "read", True),  # already muted: no change
    ]
    rows = []
    for t, direction, on in steps:
        state, changes = track.apply(state, chan(ev.MixMonitorMute, t, "2.1", direction, on))
        rows += [c.recording for c in changes if isinstance(c, track.RecordingChanged)]
    assert [(r.mutes, r.muted_ms, r.muted_since) for r in rows] == [
        (1, 0, 110.0), (1, 5000, None), (2, 5000, 120.0)]  # fmt: skip
    # The leg hangs up while muted: the mute ends there.
    state, changes = track.apply(state, chan(ev.Hangup, 124.5, "2.1", 16, "Normal"))
    end = next(c.recording for c in changes if isinstance(c, track.RecordingChanged))
    assert (end.muted_ms, end.muted_since, end.ended_at) == (9500, None, 124.5)
    # A mute of a channel nobody records, before or after: nothing.
    assert track.apply(state, chan(ev.MixMonitorMute, 130.0, "7.7", "both", True))[1] == []


def test_on_demand_names_who_asked_and_a_bad_file_name_is_rejected() -> None:
    state, changes = track.apply(
        track.Recordings(NODE), started(reason="on_demand", requested_by="sue"), None
    )
    rec = next(c.recording for c in changes if isinstance(c, track.RecordingChanged))
    assert (rec.reason, rec.requested_by, rec.visit) == ("on_demand", "sue", None)
    # From the phone (nobody named): the agent asked.
    _, changes = track.apply(track.Recordings(NODE), started(reason="on_demand"), None)
    rec = next(c.recording for c in changes if isinstance(c, track.RecordingChanged))
    assert rec.requested_by == "alice"
    # The same event twice makes one row.
    assert track.apply(state, started(reason="on_demand", requested_by="sue"))[1] == []
    _, changes = track.apply(track.Recordings(NODE), started(path="../../etc/passwd"), None)
    assert [type(c) for c in changes] == [track.Rejected]


def test_resync_and_restore() -> None:
    state, _ = track.apply(track.Recordings(NODE), started(), 1)
    state, _ = track.apply(state, started(leg="3.1", path="2026/12/07/9.9_3.1.wav"), 1)
    state, changes = track.channels_gone(state, {"3.1", "4.4"}, 200.0)
    assert [c.path for c in changes if isinstance(c, track.CheckFile)] == [
        "2026/12/07/9.9_2.1.wav"]  # fmt: skip
    assert list(state.by_leg) == ["3.1"]
    # A restart of the bridge: rows from the database come back, keyed by their leg again.
    row = track.row(state.by_path["2026/12/07/9.9_3.1.wav"])
    row["muted_since"] = 150.0
    again = track.from_row(NODE, row, paths.leg_of(row["path"]))
    fresh, changes = track.restore(track.Recordings(NODE), [again])
    assert changes == []
    assert list(fresh.by_leg) == ["3.1"]
    fresh, changes = track.apply(fresh, chan(ev.Hangup, 160.0, "3.1", 16, ""))
    end = next(c.recording for c in changes if isinstance(c, track.RecordingChanged))
    assert end.muted_ms == 10000  # the mute on at the restart ended with the call
    ended = track.from_row(NODE, {**row, "ended_at": 170.0}, "3.1")
    _, changes = track.restore(track.Recordings(NODE), [ended])
    assert changes == [track.CheckFile(NODE, row["path"], 170.0)]
    # A file that never closes: missing once the shell gives up.
    state, changes = track.file_checked(state, "2026/12/07/9.9_2.1.wav", None, give_up=False)
    assert changes == []
    state, changes = track.file_checked(state, "2026/12/07/9.9_2.1.wav", None, give_up=True)
    assert [c.recording.state for c in changes if isinstance(c, track.RecordingChanged)] == [
        "missing"]  # fmt: skip


# --- retention ------------------------------------------------------------------------------


def test_ages_and_the_purge_rule() -> None:
    assert retention.parse_age("90d") == dt.timedelta(days=90)
    assert retention.parse_age("90") == dt.timedelta(days=90)
    assert retention.parse_age("2w") == dt.timedelta(days=14)
    assert retention.parse_age("12h") == dt.timedelta(hours=12)
    assert retention.parse_age("30m") == dt.timedelta(minutes=30)
    for bad in ("", "0d", "-3d", "ninety", "3y", "1.5d"):
        with pytest.raises(retention.RetentionError):
            retention.parse_age(bad)
    cutoff = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    old = cutoff - dt.timedelta(seconds=1)
    assert retention.purgeable("done", False, old, cutoff)
    assert retention.purgeable("missing", False, old, cutoff)
    assert not retention.purgeable("done", True, old, cutoff)  # legal hold
    assert not retention.purgeable("recording", False, old, cutoff)
    assert not retention.purgeable("purged", False, old, cutoff)
    assert not retention.purgeable("done", False, cutoff, cutoff)
