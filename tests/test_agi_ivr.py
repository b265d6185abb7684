"""IVR definitions (load_ivrs: checks that name the node), business hours, and walking an IVR
over the Asterisk double."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.agi.channel import Channel
from callcenter.agi.hours import HoursError, parse_hours
from callcenter.agi.ivr import Ivr, IvrError, TargetKind, find_ivr, load_ivrs, sound_exists
from callcenter.agi.walk import WalkResult, walk
from tests.test_agi_double import AsteriskDouble
from tests.test_agi_server import serving

MADRID = ZoneInfo("Europe/Madrid")
# A Wednesday, 10:00 in Madrid (UTC+1 in November), and the same day at 22:00.
OPEN = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
NIGHT = dt.datetime(2026, 11, 25, 21, 0, tzinfo=dt.UTC)

RAW: dict[str, Any] = {
    "main": {
        "start": "welcome",
        "dids": ["100", "5551000"],
        "holidays": ["2026-12-25"],
        "closed": "closed",
        "hours": {"mon-fri": "08:00-18:00", "sat": "09:00-13:00"},
        "nodes": {
            "welcome": {
                "prompt": ["hello-world", "menu"],
                "choices": {"1": "sales", "2": "support", "9": "spanish", "0": "news"},
                "timeout": 3,
                "timeout_prompt": "please-try-again",
                "on_failure": "operator",
            },
            "spanish": {"language": "es", "next": "welcome"},
            "news": {"prompt": "news", "next": "welcome"},
            "sales": {"target": "queue", "queue": "sales", "priority": 5},
            "support": {"target": "callback", "queue": "support"},
            "operator": {"target": "extension", "extension": "1001"},
            "closed": {"prompt": "closed", "target": "voicemail", "mailbox": "100@default"},
        },
        "survey": {
            "questions": [
                {"name": "agent", "prompt": "q-agent"},
                {"name": "fix", "prompt": "q-fix"},
            ],
        },
    },
}


def load(raw: dict[str, Any] | None = None, **kw: Any) -> dict[str, Ivr]:
    return load_ivrs(copy.deepcopy(RAW if raw is None else raw), MADRID, **kw)


def broken(path: list[str], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


def test_a_full_definition_loads() -> None:
    ivr = load()["main"]
    welcome = ivr.nodes["welcome"]
    assert welcome.is_menu
    assert welcome.max_digits == 1
    assert welcome.timeout == 3.0
    assert welcome.invalid_prompts == ("invalid",)
    assert welcome.timeout_prompts == ("please-try-again",)
    assert ivr.nodes["sales"].target is not None
    assert ivr.nodes["sales"].target.priority == 5
    support = ivr.nodes["support"].target
    assert support is not None
    assert support.kind is TargetKind.CALLBACK
    assert ivr.languages == ["en", "es"]
    assert ivr.unreachable() == []
    assert ivr.survey is not None
    assert [q.name for q in ivr.survey.questions] == ["agent", "fix"]
    assert ivr.hours is not None
    assert ivr.hours.is_open(OPEN)
    assert not ivr.hours.is_open(NIGHT)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["main", "nodes", "welcome", "choices", "3"], "nowhere",
         "ivr main: node 'welcome': refers to 'nowhere': no such node"),
        (["main", "start"], "nope", "ivr main: start = 'nope': no such node"),
        (["main", "nodes", "news", "next"], "news",
         "ivr main: node 'news': loops with no exit (news -> news)"),
        (["main", "nodes", "sales", "colour"], "red",
         "ivr main: node 'sales': unknown key 'colour'"),
        (["main", "nodes", "sales", "target"], "fax", "target = 'fax' is not one of"),
        (["main", "nodes", "sales", "queue"], None,
         "ivr main: node 'sales': target queue needs queue"),
        (["main", "nodes", "operator", "queue"], "x", "queue has no meaning for target extension"),
        (["main", "closed"], None, "hours or holidays are given but no closed"),
        (["main", "hours", "mon-fri"], "18:00-08:00", "ivr main: hours: '18:00-08:00' ends before"),
        (["main", "hours", "fri"], "09:00-10:00", "fri is given twice"),
        (["main", "holidays"], ["25/12"], "holiday '25/12' is not a date"),
        (["main", "nodes", "welcome", "prompt"], "../etc/passwd", "is not a sound name"),
        (["main", "nodes", "welcome", "timeout"], 0, "timeout = 0 must be a number"),
        (["main", "nodes", "spanish", "language"], "Spanish!",
         "language = 'Spanish!' is not valid"),
        (["main", "survey", "score"], "median", "ivr main: survey: score = 'median' is not valid"),
        (["main", "nodes"], {}, "no nodes"),
    ],
)  # fmt: skip
def test_bad_definitions_name_the_node(path: list[str], value: Any, message: str) -> None:
    with pytest.raises(IvrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(broken(path, value))


def test_menus_that_only_fail_into_each_other_are_a_loop() -> None:
    raw: dict[str, Any] = {
        "x": {
            "start": "a",
            "nodes": {
                "a": {"choices": {"1": "b"}, "on_failure": "b"},
                "b": {"choices": {"1": "a"}, "on_failure": "a"},
            },
        }
    }
    with pytest.raises(IvrError, match=r"ivr x: node 'a': loops with no exit \(a -> b -> a\)"):
        load(raw)
    raw["x"]["nodes"]["b"]["choices"]["2"] = "end"
    raw["x"]["nodes"]["end"] = {"target": "hangup"}
    assert set(load(raw)["x"].nodes) == {"a", "b", "end"}


def test_a_did_belongs_to_one_ivr() -> None:
    raw = copy.deepcopy(RAW)
    raw["other"] = copy.deepcopy(RAW["main"])
    with pytest.raises(IvrError, match="ivr other: DID 100 is also given to ivr main"):
        load(raw)


def _sounds(tmp_path: Path, files: list[str]) -> Path:
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


ALL_PROMPTS = [
    "hello-world", "menu", "please-try-again", "invalid", "news", "closed", "q-agent", "q-fix",
    "auth-thankyou", "vm-num-i-have", "if-correct-press", "digits/1", "vm-enter-num-to-call",
]  # fmt: skip


def test_prompts_are_found_like_asterisk_does(tmp_path: Path) -> None:
    # Everything in en/ (gsm), "menu" also in es/: es falls back to en (fileexists_core).
    base = _sounds(tmp_path, [f"en/{p}.gsm" for p in ALL_PROMPTS] + ["es/menu.wav"])
    assert load(sounds_dir=base)["main"].name == "main"
    assert sound_exists(base, "menu", "es_MX")
    assert sound_exists(base, "news", "es")
    assert not sound_exists(base, "nothing", "en")


def test_a_missing_prompt_names_node_and_language(tmp_path: Path) -> None:
    base = _sounds(tmp_path, [f"es/{p}.gsm" for p in ALL_PROMPTS if p != "news"] + ["en/menu.gsm"])
    with pytest.raises(
        IvrError, match=r"ivr main: node 'welcome': prompt 'hello-world' not found in .* 'en'"
    ):
        load(sounds_dir=base)
    base = _sounds(tmp_path, [f"en/{p}.gsm" for p in ALL_PROMPTS if p != "news"])
    with pytest.raises(IvrError, match="ivr main: node 'news': prompt 'news' not found"):
        load(sounds_dir=base)
    with pytest.raises(IvrError, match="does not exist"):
        load(sounds_dir=tmp_path / "nowhere")


def test_the_installed_core_sounds_carry_the_default_prompts() -> None:
    base = Path("/opt/asterisk/var/lib/asterisk/sounds")
    if not base.is_dir():
        pytest.skip(f"no Asterisk sounds at {base}")
    raw = {"x": {"start": "m", "nodes": {
        "m": {"prompt": "hello-world", "choices": {"1": "q"}},
        "q": {"target": "queue", "queue": "sales", "prompt": "queue-thankyou"},
    }}}  # fmt: skip
    assert load(raw, sounds_dir=base)["x"].nodes["q"].prompts == ("queue-thankyou",)


def test_business_hours_holidays_and_dst() -> None:
    hours = parse_hours({"mon-fri": "08:00-12:30, 13:30-18:00", "sun": "closed"},
                        ["2026-12-25"], MADRID)  # fmt: skip
    local = dt.datetime(2026, 11, 25, 12, 45, tzinfo=MADRID)
    assert not hours.is_open(local)  # lunch break
    assert hours.is_open(local.replace(hour=13, minute=30))
    assert not hours.is_open(local.replace(hour=18, minute=0))  # the end is excluded
    assert not hours.is_open(dt.datetime(2026, 12, 25, 10, tzinfo=MADRID))  # holiday
    assert not hours.is_open(dt.datetime(2026, 11, 29, 10, tzinfo=MADRID))  # Sunday
    # Summer: 08:00 in Madrid is 06:00 UTC.
    assert hours.is_open(dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC))
    assert not hours.is_open(dt.datetime(2026, 7, 1, 5, 59, tzinfo=dt.UTC))
    assert parse_hours({"mon": "00:00-24:00"}, None, MADRID).is_open(
        dt.datetime(2026, 11, 23, 23, 59, tzinfo=MADRID)
    )
    with pytest.raises(HoursError, match="impossible"):
        parse_hours({"mon": "08:00-25:00"}, None, MADRID)
    with pytest.raises(HoursError, match="range"):
        parse_hours({"fri-mon": "08:00-09:00"}, None, MADRID)


def test_find_ivr() -> None:
    ivrs = load()
    assert find_ivr(ivrs, "main").name == "main"  # type: ignore[union-attr]
    assert find_ivr(ivrs, "5551000").name == "main"  # type: ignore[union-attr]
    assert find_ivr(ivrs, "999").name == "main"  # type: ignore[union-attr]  # the only one
    two = {**ivrs, "b": ivrs["main"]}
    assert find_ivr(two, "999") is None


# --- walking over the double -----------------------------------------------------------------


async def run_walk(dtmf: str, now: dt.datetime = OPEN) -> tuple[WalkResult, Any]:
    ivr = load()["main"]
    results: list[WalkResult] = []

    async def script(channel: Channel) -> None:
        results.append(await walk(ivr, channel, now=now))

    async with serving({"ivr": script}) as server:
        record = await AsteriskDouble(server.port, dtmf=dtmf).call()
    return results[0], record


async def test_walk_straight_to_a_queue() -> None:
    result, record = await run_walk("1")
    assert result.target.kind is TargetKind.QUEUE
    assert result.target.queue == "sales"
    assert result.path == "main:welcome[1]>sales"
    assert result.digits == "1"
    # Two prompts: STREAM FILE (any key interrupts), then WAIT FOR DIGIT; the key came early.
    assert record.commands == ["STREAM FILE hello-world 0123456789*#"]


async def test_walk_retries_language_and_announcement() -> None:
    # 7: invalid; t: silence; 9: Spanish; 0: news, back to the menu; 1: sales.
    result, record = await run_walk("7t90t1")
    assert result.path == "main:welcome[7!][t][9]>spanish>welcome[0]>news>welcome[t][1]>sales"
    assert result.language == "es"
    assert "SET VARIABLE CHANNEL(language) es" in record.commands
    assert 'STREAM FILE invalid ""' in record.commands
    assert 'STREAM FILE please-try-again ""' in record.commands


async def test_walk_retries_run_out_to_on_failure() -> None:
    result, _ = await run_walk("ttt")
    assert result.path == "main:welcome[t][t][t]>operator"
    assert result.target.kind is TargetKind.EXTENSION
    assert result.target.extension == "1001"


async def test_walk_outside_hours_takes_the_closed_branch() -> None:
    result, record = await run_walk("", now=NIGHT)
    assert result.closed
    assert result.path == "main:closed"
    assert result.target.kind is TargetKind.VOICEMAIL
    assert result.target.mailbox == "100@default"
    assert record.commands == ['STREAM FILE closed ""']


async def test_walk_hang_up_mid_menu() -> None:
    result, record = await run_walk("7h")
    assert result.hung_up
    assert result.target.kind is TargetKind.HANGUP
    assert result.path == "main:welcome[7!]"
    assert record.commands[-1] == "CHANNEL STATUS"  # asked: dead (HANGUP + 511)
