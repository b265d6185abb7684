"""IVR definitions from configuration: ``[ivr.<name>]`` tables in, checked :class:`Ivr` out.

:func:`load_ivrs` is pure apart from looking for sound files. A bad definition fails at load
with :class:`IvrError` naming the IVR and the node: an unknown key or node, a loop with no
exit, a prompt whose file is missing in the sounds directory.

Example (every key shown; most have defaults)::

    [ivr.main]
    start = "welcome"            # first node (required)
    dids = ["100", "5551000"]    # numbers that reach this IVR (the ivr script's arg 1 may
                                 # also name the IVR itself)
    language = "en"              # CHANNEL(language) at start; prompts are checked in it
    timezone = "Europe/Madrid"   # default: [site] timezone
    holidays = ["2026-12-25"]    # closed all day
    closed = "closed"            # node taken outside business hours (needed with hours)
    preferred_agent = true       # a returning caller rings their last agent first
    history = true               # caller history: channel variables and the screen-pop
    callback_offer = false       # CALLBACK_OFFER=yes: offer a callback when no agent answered

    [ivr.main.hours]             # see callcenter.agi.hours; no table: always open
    mon-fri = "08:00-18:00"

    [ivr.main.nodes.welcome]     # a menu: it has choices
    prompt = ["welcome", "menu-options"]    # sound names, played in order
    choices = { "1" = "sales", "2" = "support", "9" = "spanish" }
    timeout = 5.0                # seconds for a digit after the prompt, and between digits
    max_digits = 1               # default: the longest choice
    terminator = "#"             # ends entry early (multi-digit choices)
    retries = 3                  # invalid or no entry this many times -> on_failure
    invalid_prompt = "invalid"   # played on a wrong entry (default "invalid")
    timeout_prompt = []          # played when nothing was keyed (default: none)
    on_failure = "operator"      # default: hang up

    [ivr.main.nodes.spanish]     # a language choice: sets CHANNEL(language), goes on
    language = "es"
    next = "welcome"

    [ivr.main.nodes.news]        # an announcement: prompt, then next
    prompt = "news"
    next = "welcome"

    [ivr.main.nodes.sales]       # targets end the IVR (an optional prompt plays first)
    target = "queue"             # queue | extension | voicemail | hangup | callback
    queue = "sales"
    priority = 5                 # app_queue caller priority (default: the queue's)
    # extension = "1001"  (target extension)   mailbox = "100@default"  (target voicemail)

    [ivr.main.survey]            # the post-call survey of calls that came through this IVR
    questions = [ { name = "agent", prompt = "survey-agent" },      # kind "csat": keys 1-5
                  { name = "resolved", prompt = "survey-resolved" },
                  { name = "recommend", prompt = "survey-recommend", kind = "nps" } ]
                                 # kind "nps": 0-10; "10" is two keys, a one-key answer
                                 # ends with # or after timeout seconds (survey.py)
    intro = "survey-intro"       # played first (default: none)
    thanks = "auth-thankyou"
    invalid_prompt = "invalid"
    timeout = 5.0
    retries = 2
    score = "average"            # calls.survey_score: "average" (rounded half up) or "first"
                                 # (the first question answered), of the CSAT answers only

    [ivr.main.callback]          # prompts of the callback script (defaults: core sounds)
    offer = "vm-num-i-have"      # "the number I have is" <the number>
    confirm = ["if-correct-press", "digits/1"]
    enter = "vm-enter-num-to-call"
    accepted = "auth-thankyou"
    invalid_prompt = "invalid"
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.agi.hours import BusinessHours, HoursError, parse_hours
from callcenter.config import ConfigError
from callcenter.satisfaction.measures import Kind

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PROMPT = re.compile(r"/?[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
_CHOICE = re.compile(r"[0-9*#]{1,20}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,8})*")
_QUEUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_EXTENSION = re.compile(r"[0-9]{2,16}")
_MAILBOX = re.compile(r"[0-9A-Za-z_.-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")
_DID = re.compile(r"\+?[0-9]{1,20}")
_QUESTION = re.compile(r"[A-Za-z0-9_-]{1,64}")


class IvrError(ConfigError):
    """A bad IVR definition; the message names the IVR and node (``ivr main: node x: ...``)."""


class TargetKind(StrEnum):
    QUEUE = "queue"
    EXTENSION = "extension"
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"
    CALLBACK = "callback"


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    queue: str = ""
    priority: int | None = None
    extension: str = ""
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """One step. A node with ``choices`` is a menu, one with ``target`` ends the IVR, any
    other plays its prompt (and sets ``language``) and goes to ``next``."""

    name: str
    prompts: tuple[str, ...] = ()
    choices: Mapping[str, str] = field(default_factory=dict)
    next: str | None = None
    target: Target | None = None
    language: str | None = None
    timeout: float = 5.0
    max_digits: int = 1
    terminator: str = "#"
    retries: int = 3
    invalid_prompts: tuple[str, ...] = ("invalid",)
    timeout_prompts: tuple[str, ...] = ()
    on_failure: str | None = None

    @property
    def is_menu(self) -> bool:
        return bool(self.choices)

    def successors(self) -> list[str]:
        out = list(self.choices.values())
        out += [n for n in (self.next, self.on_failure) if n is not None]
        return out


#: A survey question's kind: ``csat`` is answered 1-5, ``nps`` ("how likely are you to
#: recommend us") 0-10 (see :mod:`callcenter.satisfaction.measures`).
QUESTION_KINDS = ("csat", "nps")


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    prompts: tuple[str, ...]
    kind: Kind = "csat"

    @property
    def scale(self) -> int:
        """The scale its answers are stored on (``survey_answers.scale``): 5 or 10."""
        return 10 if self.kind == "nps" else 5


@dataclass(frozen=True, slots=True)
class Survey:
    questions: tuple[Question, ...]
    intro: tuple[str, ...] = ()
    thanks: tuple[str, ...] = ("auth-thankyou",)
    invalid_prompts: tuple[str, ...] = ("invalid",)
    timeout: float = 5.0
    retries: int = 2
    score: str = "average"


@dataclass(frozen=True, slots=True)
class CallbackPrompts:
    offer: tuple[str, ...] = ("vm-num-i-have",)
    confirm: tuple[str, ...] = ("if-correct-press", "digits/1")
    enter: tuple[str, ...] = ("vm-enter-num-to-call",)
    accepted: tuple[str, ...] = ("auth-thankyou",)
    invalid_prompts: tuple[str, ...] = ("invalid",)


@dataclass(frozen=True, slots=True)
class Ivr:
    name: str
    start: str
    nodes: Mapping[str, Node]
    language: str = "en"
    dids: tuple[str, ...] = ()
    hours: BusinessHours | None = None
    closed: str | None = None
    preferred_agent: bool = True
    history: bool = True
    callback_offer: bool = False
    survey: Survey | None = None
    callback: CallbackPrompts = CallbackPrompts()

    @property
    def languages(self) -> list[str]:
        """Every language a caller can be in: the IVR's and those its nodes switch to."""
        langs = {self.language} | {n.language for n in self.nodes.values() if n.language}
        return sorted(langs)

    def unreachable(self) -> list[str]:
        """Nodes no path from ``start`` (or ``closed``) leads to: not an error, but a hint."""
        seen: set[str] = set()
        todo = [n for n in (self.start, self.closed) if n]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.nodes[name].successors())
        return sorted(set(self.nodes) - seen)

    def prompts(self) -> Iterable[tuple[str, str]]:
        """``(where, prompt)`` for every sound the IVR may play."""
        for node in self.nodes.values():
            for p in (*node.prompts, *node.invalid_prompts, *node.timeout_prompts):
                yield f"node {node.name!r}", p
        if self.survey is not None:
            s = self.survey
            for q in s.questions:
                for p in q.prompts:
                    yield f"survey question {q.name!r}", p
            for p in (*s.intro, *s.thanks, *s.invalid_prompts):
                yield "survey", p
        cb = self.callback
        for p in (*cb.offer, *cb.confirm, *cb.enter, *cb.accepted, *cb.invalid_prompts):
            yield "callback", p


# --- loading -------------------------------------------------------------------------------

IVR_KEYS = {
    "start", "dids", "language", "timezone", "holidays", "closed", "preferred_agent",
    "history", "callback_offer", "hours", "nodes", "survey", "callback",
}  # fmt: skip
NODE_KEYS = {
    "prompt", "choices", "next", "target", "language", "timeout", "max_digits", "terminator",
    "retries", "invalid_prompt", "timeout_prompt", "on_failure", "queue", "priority",
    "extension", "mailbox",
}  # fmt: skip
SURVEY_KEYS = {"questions", "intro", "thanks", "invalid_prompt", "timeout", "retries", "score"}
QUESTION_KEYS = {"name", "prompt", "kind"}
CALLBACK_KEYS = {"offer", "confirm", "enter", "accepted", "invalid_prompt"}


class _Ctx:
    """Error messages that name where: ``ivr main: node 'x': ...``."""

    def __init__(self, ivr: str, where: str = "") -> None:
        self.ivr = ivr
        self.where = where

    def at(self, where: str) -> _Ctx:
        return _Ctx(self.ivr, where)

    def error(self, message: str) -> IvrError:
        prefix = f"ivr {self.ivr}: " + (f"{self.where}: " if self.where else "")
        return IvrError(prefix + message)

    def table(self, value: Any, keys: set[str], what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(f"{what} must be a table")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.error(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")
        return value

    def text(self, value: Any, key: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise self.error(f"{key} = {value!r} is not valid")
        return value

    def number(self, value: Any, key: str, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.error(f"{key} = {value!r} must be a number from {low:g} to {high:g}")
        return float(value)

    def whole(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(f"{key} = {value!r} must be a whole number from {low} to {high}")
        return value

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"{key} = {value!r} must be true or false")
        return value

    def prompts(self, value: Any, key: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if not isinstance(item, str) or not _PROMPT.fullmatch(item) or ".." in item:
                raise self.error(f"{key}: {item!r} is not a sound name such as 'welcome'")
            out.append(item)
        return tuple(out)


def load_ivrs(
    raw: Mapping[str, Any], tz: ZoneInfo | str, *, sounds_dir: Path | str | None = None
) -> dict[str, Ivr]:
    """Check and build every ``[ivr.<name>]`` of ``raw`` (the ``ivr`` table of the settings).

    ``tz`` is the site's time zone (an IVR may name its own). Prompts are looked up in
    ``sounds_dir`` the way Asterisk's ``fileexists_core`` does (``<dir>/<lang>/<name>.*``, the
    language without its ``_variant``, ``<dir>/<name>.*``, then ``en``), in every language the
    IVR can switch to; ``None`` skips that check (sounds on another machine). Raises
    :class:`IvrError` naming the IVR and node.
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    if not isinstance(raw, Mapping):
        raise IvrError("[ivr] must be a table of IVRs, e.g. [ivr.main]")
    ivrs: dict[str, Ivr] = {}
    dids: dict[str, str] = {}
    for name, body in raw.items():
        ctx = _Ctx(str(name))
        if not _NAME.fullmatch(str(name)):
            raise ctx.error("the name must be lower-case letters, digits, - or _")
        ivr = _ivr(ctx, str(name), body, zone)
        for did in ivr.dids:
            if did in dids:
                raise ctx.error(f"DID {did} is also given to ivr {dids[did]}")
            dids[did] = ivr.name
        if sounds_dir is not None:
            _check_sounds(ctx, ivr, Path(sounds_dir))
        ivrs[ivr.name] = ivr
    return ivrs


def _ivr(ctx: _Ctx, name: str, body: Any, site_tz: ZoneInfo) -> Ivr:
    body = ctx.table(body, IVR_KEYS, f"[ivr.{name}]")
    if "start" not in body:
        raise ctx.error("start = '<node>' is missing")
    tz = site_tz
    if "timezone" in body:
        try:
            tz = ZoneInfo(ctx.text(body["timezone"], "timezone"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ctx.error(f"timezone {body['timezone']!r} is not a time zone name") from None
    hours: BusinessHours | None = None
    if "hours" in body or "holidays" in body:
        try:
            hours = parse_hours(body.get("hours"), body.get("holidays"), tz)
        except HoursError as exc:
            raise ctx.at("hours").error(str(exc)) from None
        if "closed" not in body:
            raise ctx.error("hours or holidays are given but no closed = '<node>' branch")
    raw_nodes = body.get("nodes")
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        raise ctx.error("no nodes: add [ivr.<name>.nodes.<node>] tables")
    nodes = {str(k): _node(ctx.at(f"node {k!r}"), str(k), v) for k, v in raw_nodes.items()}
    raw_dids = body.get("dids", [])
    if not isinstance(raw_dids, list):
        raise ctx.error('dids must be a list such as ["100"]')
    ivr = Ivr(
        name=name,
        start=ctx.text(body["start"], "start", _NODE),
        nodes=nodes,
        language=ctx.text(body.get("language", "en"), "language", _LANGUAGE),
        dids=tuple(ctx.text(d, "dids", _DID) for d in raw_dids),
        hours=hours,
        closed=ctx.text(body["closed"], "closed", _NODE) if "closed" in body else None,
        preferred_agent=ctx.flag(body.get("preferred_agent", True), "preferred_agent"),
        history=ctx.flag(body.get("history", True), "history"),
        callback_offer=ctx.flag(body.get("callback_offer", False), "callback_offer"),
        survey=_survey(ctx.at("survey"), body["survey"]) if "survey" in body else None,
        callback=_callback(ctx.at("callback"), body.get("callback", {})),
    )
    _check_graph(ctx, ivr)
    return ivr


def _node(ctx: _Ctx, name: str, body: Any) -> Node:
    if not _NODE.fullmatch(name):
        raise ctx.error("a node name holds letters, digits, - or _")
    body = ctx.table(body, NODE_KEYS, "a node")
    kwargs: dict[str, Any] = {"name": name}
    if "prompt" in body:
        kwargs["prompts"] = ctx.prompts(body["prompt"], "prompt")
    if "invalid_prompt" in body:
        kwargs["invalid_prompts"] = ctx.prompts(body["invalid_prompt"], "invalid_prompt")
    if "timeout_prompt" in body:
        kwargs["timeout_prompts"] = ctx.prompts(body["timeout_prompt"], "timeout_prompt")
    for key in ("next", "on_failure"):
        if key in body:
            kwargs[key] = ctx.text(body[key], key, _NODE)
    if "language" in body:
        kwargs["language"] = ctx.text(body["language"], "language", _LANGUAGE)
    if "timeout" in body:
        kwargs["timeout"] = ctx.number(body["timeout"], "timeout", 0.5, 120)
    if "retries" in body:
        kwargs["retries"] = ctx.whole(body["retries"], "retries", 1, 20)
    if "terminator" in body:
        kwargs["terminator"] = ctx.text(body["terminator"], "terminator", re.compile(r"[*#]?"))
    kinds = [k for k in ("choices", "target") if k in body]
    if len(kinds) > 1:
        raise ctx.error("a node is a menu (choices) or a target, not both")
    if "choices" in body:
        choices = body["choices"]
        if not isinstance(choices, Mapping) or not choices:
            raise ctx.error('choices must be a table such as { "1" = "sales" }')
        kwargs["choices"] = {
            ctx.text(str(k), "choice", _CHOICE): ctx.text(v, f"choice {k!r}", _NODE)
            for k, v in choices.items()
        }
        longest = max(len(k) for k in kwargs["choices"])
        kwargs["max_digits"] = (
            ctx.whole(body["max_digits"], "max_digits", longest, 20)
            if "max_digits" in body
            else longest
        )
        if "next" in body:
            raise ctx.error("a menu goes on by its choices, not by next")
    elif "target" in body:
        kwargs["target"] = _target(ctx, body)
        for key in ("next", "on_failure"):
            if key in body:
                raise ctx.error(f"a target ends the IVR: {key} has no meaning here")
    else:
        if "next" not in body:
            raise ctx.error("a node needs choices (a menu), a target, or next")
        if "on_failure" in body or "max_digits" in body:
            raise ctx.error("on_failure and max_digits belong to menus (nodes with choices)")
    target_keys = {"queue", "priority", "extension", "mailbox"} & set(body)
    if target_keys and "target" not in body:
        raise ctx.error(f"{sorted(target_keys)[0]} needs target = ...")
    return Node(**kwargs)


def _target(ctx: _Ctx, body: Mapping[str, Any]) -> Target:
    raw = body["target"]
    try:
        kind = TargetKind(raw)
    except ValueError:
        known = ", ".join(k.value for k in TargetKind)
        raise ctx.error(f"target = {raw!r} is not one of {known}") from None
    needs = {
        TargetKind.QUEUE: {"queue"},
        TargetKind.CALLBACK: {"queue"},
        TargetKind.EXTENSION: {"extension"},
        TargetKind.VOICEMAIL: {"mailbox"},
        TargetKind.HANGUP: set(),
    }[kind]
    allowed = needs | ({"priority"} if "queue" in needs else set())
    for key in needs - set(body):
        raise ctx.error(f"target {kind} needs {key} = ...")
    for key in {"queue", "priority", "extension", "mailbox"} & set(body) - allowed:
        raise ctx.error(f"{key} has no meaning for target {kind}")
    return Target(
        kind=kind,
        queue=ctx.text(body["queue"], "queue", _QUEUE) if "queue" in body else "",
        priority=ctx.whole(body["priority"], "priority", 0, 100) if "priority" in body else None,
        extension=ctx.text(body["extension"], "extension", _EXTENSION)
        if "extension" in body
        else "",
        mailbox=ctx.text(body["mailbox"], "mailbox", _MAILBOX) if "mailbox" in body else "",
    )


def _survey(ctx: _Ctx, body: Any) -> Survey:
    body = ctx.table(body, SURVEY_KEYS, "[survey]")
    raw = body.get("questions")
    if not isinstance(raw, list) or not raw:
        raise ctx.error('questions must be a list such as [{ name = "agent", prompt = "x" }]')
    questions: list[Question] = []
    for item in raw:
        if not isinstance(item, Mapping) or not {"name", "prompt"} <= set(item) <= QUESTION_KEYS:
            raise ctx.error(
                f"question {item!r} needs name and prompt, and may have kind "
                '(e.g. { name = "recommend", prompt = "survey-recommend", kind = "nps" })'
            )
        qname = ctx.text(item["name"], "question name", _QUESTION)
        if any(q.name == qname for q in questions):
            raise ctx.error(f"question {qname!r} is given twice")
        kind = item.get("kind", "csat")
        if kind not in QUESTION_KINDS:
            raise ctx.error(
                f"question {qname!r}: kind = {kind!r} is not csat (answered 1-5) or nps "
                "(answered 0-10)"
            )
        prompts = ctx.prompts(item["prompt"], f"question {qname!r}")
        questions.append(Question(qname, prompts, cast(Kind, kind)))
    kwargs: dict[str, Any] = {"questions": tuple(questions)}
    for key, attr in (
        ("intro", "intro"),
        ("thanks", "thanks"),
        ("invalid_prompt", "invalid_prompts"),
    ):
        if key in body:
            kwargs[attr] = ctx.prompts(body[key], key)
    if "timeout" in body:
        kwargs["timeout"] = ctx.number(body["timeout"], "timeout", 0.5, 120)
    if "retries" in body:
        kwargs["retries"] = ctx.whole(body["retries"], "retries", 1, 20)
    if "score" in body:
        kwargs["score"] = ctx.text(body["score"], "score", re.compile("average|first"))
    return Survey(**kwargs)


def _callback(ctx: _Ctx, body: Any) -> CallbackPrompts:
    body = ctx.table(body, CALLBACK_KEYS, "[callback]")
    attrs = {"invalid_prompt": "invalid_prompts"}
    return dataclasses.replace(
        CallbackPrompts(), **{attrs.get(k, k): ctx.prompts(v, k) for k, v in body.items()}
    )


def _check_graph(ctx: _Ctx, ivr: Ivr) -> None:
    """Every name refers to a node, and every node can reach an exit.

    An exit is a target, or a menu without ``on_failure`` (its retries running out hangs up).
    A node that cannot reach one would keep the caller forever (``a -> b -> a`` through
    ``next``, or menus that only lead to each other and fail into each other).
    """
    for where, ref in (("start", ivr.start), ("closed", ivr.closed)):
        if ref is not None and ref not in ivr.nodes:
            raise ctx.error(f"{where} = {ref!r}: no such node")
    for node in ivr.nodes.values():
        for ref in node.successors():
            if ref not in ivr.nodes:
                raise ctx.at(f"node {node.name!r}").error(f"refers to {ref!r}: no such node")
    exits = {
        n.name
        for n in ivr.nodes.values()
        if n.target is not None or (n.is_menu and n.on_failure is None)
    }
    changed = True
    while changed:
        changed = False
        for node in ivr.nodes.values():
            if node.name not in exits and any(s in exits for s in node.successors()):
                exits.add(node.name)
                changed = True
    stuck = sorted(set(ivr.nodes) - exits)
    if stuck:
        cycle = _cycle(ivr, stuck[0], set(stuck))
        raise ctx.at(f"node {stuck[0]!r}").error(
            f"loops with no exit ({' -> '.join(cycle)}): add a target or an on_failure"
        )


def _cycle(ivr: Ivr, start: str, stuck: set[str]) -> list[str]:
    """A path from ``start`` that comes back to a node already on it, within ``stuck``."""
    path = [start]
    while True:
        nxt = next(s for s in ivr.nodes[path[-1]].successors() if s in stuck)
        if nxt in path:
            return [*path, nxt]
        path.append(nxt)


def sound_exists(base: Path, name: str, language: str) -> bool:
    """Whether Asterisk would find ``name`` for ``language`` (``fileexists_core`` order)."""
    if name.startswith("/"):
        path = Path(name)
        return any(path.parent.glob(path.name + ".*"))
    candidates: list[Path] = []
    lang = language
    while lang:
        candidates.append(base / lang / name)
        lang = lang.rpartition("_")[0]
    candidates += [base / name, base / "en" / name]
    return any(any(c.parent.glob(c.name + ".*")) for c in candidates)


def _check_sounds(ctx: _Ctx, ivr: Ivr, base: Path) -> None:
    if not base.is_dir():
        raise ctx.error(f"the sounds directory {base} does not exist")
    for where, prompt in ivr.prompts():
        for language in ivr.languages:
            if not sound_exists(base, prompt, language):
                raise ctx.at(where).error(
                    f"prompt {prompt!r} not found in {base} for language {language!r}"
                )


def find_ivr(ivrs: Mapping[str, Ivr], *keys: str) -> Ivr | None:
    """The IVR that ``keys`` name, tried in order: an IVR name, else a DID of one; else the
    IVR named ``default``, else the only IVR."""
    for key in keys:
        if key in ivrs:
            return ivrs[key]
        for ivr in ivrs.values():
            if key and key in ivr.dids:
                return ivr
    if "default" in ivrs:
        return ivrs["default"]
    if len(ivrs) == 1:
        return next(iter(ivrs.values()))
    return None
