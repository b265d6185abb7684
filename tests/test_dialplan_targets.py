"""Every jump in the rendered dialplan lands somewhere that exists.

Parses extensions.conf and the dialplans it includes (as rendered, for the sample inputs with
and without DIDs) and proves: every Goto/GotoIf/Gosub target, every include, every Local
channel's context in Dial()/Originate(), every context the other files name (PJSIP endpoints,
queues.conf), every Queue() queue and timeout, and every AGI() script exists; that every context
is reachable from an entry point; and that asterisklint finds nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.agi.callback import originate_fields
from callcenter.agi.callback_store import CallbackRow
from callcenter.asterisk import conffile, sample
from callcenter.asterisk.conffile import Dialplan, Priority, split_args
from callcenter.asterisk.render import (
    AGI_SCRIPTS,
    LOADED_MODULES,
    REQUIRED_MODULES,
    RenderOptions,
    render,
)

#: Contexts something outside the dialplan sends calls to.
ENTRY_CONTEXTS = {
    "from-trunk",
    "agents",
    "outbound-campaign",
    "outbound-agentless",
    "outbound-preview",
    "queue-callback",
    "queue-transfer",
}
#: Variables Queue() may take its queue from; each must be checked with QUEUE_EXISTS first.
QUEUE_VARIABLES = {"QUEUE", "CALLBACK_QUEUE", "CAMPAIGN_QUEUE"}


def _render(with_dids: bool) -> dict[str, bytes]:
    trunks = sample.TRUNKS if with_dids else sample.TRUNKS[1:]
    options = RenderOptions(directory=Path("/srv/cc/asterisk"))
    return render(sample.settings(), sample.AGENTS, sample.QUEUES, trunks, options)


@pytest.fixture(scope="module", params=[True, False], ids=["dids", "any-number"])
def rendered(request: pytest.FixtureRequest) -> dict[str, bytes]:
    return _render(bool(request.param))


@pytest.fixture(scope="module")
def plan(rendered: dict[str, bytes]) -> Dialplan:
    return conffile.dialplan(rendered)


# --- matching -------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 1  # after the leading _
    while i < len(pattern):
        c = pattern[i]
        if c == "X":
            out.append("[0-9]")
        elif c == "Z":
            out.append("[1-9]")
        elif c == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            end = pattern.index("]", i)
            out.append("[" + pattern[i + 1 : end] + "]")
            i = end
        elif c != "-":  # Asterisk ignores dashes in patterns
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def extensions_matching(plan: Dialplan, context: str, exten: str) -> list[str]:
    """Extensions of ``context`` (and its includes) that ``exten`` would run; a variable
    extension (``${...}``) may run any pattern extension."""
    found = []
    for name in plan.contexts[context]:
        if name == exten or (
            name.startswith("_")
            and ("${" in exten or _pattern_regex(name).match(exten.replace("-", "")))
        ):
            found.append(name)
    for included in plan.includes[context]:
        found += extensions_matching(plan, included, exten)
    return found


def _owner(plan: Dialplan, context: str, exten: str) -> str:
    if exten in plan.contexts[context] or any(
        exten.startswith("_") and exten == name for name in plan.contexts[context]
    ):
        return context
    for included in plan.includes[context]:
        if extensions_matching(plan, included, exten):
            return included
    return context


def assert_target(plan: Dialplan, here: Priority, target: str) -> tuple[str, str]:
    """``[[context,]exten,]priority|label`` from ``here`` exists; returns (context, exten)."""
    parts = [p.strip() for p in split_args(target)]
    where = f"{here.file}:{here.line} {here.app}({here.data})"
    if len(parts) == 1:
        context, exten, prio = here.context, here.exten, parts[0]
    elif len(parts) == 2:
        context, exten, prio = here.context, parts[0], parts[1]
    elif len(parts) == 3:
        context, exten, prio = parts
    else:
        raise AssertionError(f"{where}: target {target!r} has {len(parts)} parts")
    assert "${" not in context, f"{where}: computed context {context!r} cannot be checked"
    assert context in plan.contexts, f"{where}: no context [{context}]"
    matches = extensions_matching(plan, context, exten)
    assert matches, f"{where}: no extension {exten!r} in [{context}]"
    for name in matches:
        owner = context if name in plan.contexts[context] else _owner(plan, context, name)
        steps = plan.contexts[owner][name]
        if prio.isdigit():
            assert int(prio) <= len(steps), f"{where}: {name}@{owner} has no priority {prio}"
        else:
            assert prio in plan.labels(owner, name), f"{where}: no label {prio} in {name}@{owner}"
    return context, exten


def goto_targets(step: Priority) -> list[str]:
    """The targets of a Goto/GotoIf/Gosub/GosubIf step."""
    if step.app in ("Goto", "Gosub"):
        target = step.data
        if step.app == "Gosub" and "(" in target:
            target = target[: target.index("(")]
        return [target]
    if step.app in ("GotoIf", "GosubIf"):
        depth = 0
        split = -1
        for i, c in enumerate(step.data):
            depth += c in "[({"
            depth -= c in "])}"
            if c == "?" and depth == 0:
                split = i
        assert split > 0, f"{step.file}:{step.line}: GotoIf without ?"
        branches, depth, current = [], 0, ""
        for c in step.data[split + 1 :]:
            depth += c in "[({"
            depth -= c in "])}"
            if c == ":" and depth == 0:
                branches.append(current)
                current = ""
            else:
                current += c
        branches.append(current)
        return [b for b in branches if b]
    return []


# --- the checks -----------------------------------------------------------------------------


def test_every_goto_and_gosub_target_exists(plan: Dialplan) -> None:
    checked = 0
    for step in plan.priorities():
        for target in goto_targets(step):
            assert_target(plan, step, target)
            checked += 1
    assert checked > 20


def test_every_include_exists(plan: Dialplan) -> None:
    for context, included in plan.includes.items():
        for name in included:
            assert name in plan.contexts, f"[{context}] includes missing [{name}]"


def test_local_channels_and_originate_targets_exist(plan: Dialplan) -> None:
    """Every Local channel and Originate target, in the dialplan and in the Originate our
    callback service sends over AMI (the placeholder of a queue callback)."""
    row = CallbackRow(
        id=1, node="local", queue="sales", number="5551230001", caller_uniqueid="1.1",
        requested_at=dt.datetime.now(dt.UTC), priority=0, position=3, status="pending",
        attempts=0, last_attempt_at=None, dial="PJSIP/5551230001@provider", placeholder=None,
        placed_at=None, agent=None,
    )  # fmt: skip
    fields = originate_fields(row, 120, dt.datetime.now(dt.UTC))
    channels = [str(fields["Channel"])]
    targets = [f"{fields['Context']},{fields['Exten']},{fields['Priority']}"]
    for step in plan.priorities():
        args = split_args(step.data)
        channels += [a for a in args if a.startswith("Local/")]
        if step.app == "Originate" and len(args) >= 5 and args[1] == "exten":
            targets.append(f"{args[2]},{args[3]},{args[4]}")
    for channel in channels:
        exten, _, context = channel.removeprefix("Local/").split("/")[0].partition("@")
        assert context in plan.contexts, channel
        assert extensions_matching(plan, context, exten), channel
    for target in targets:
        context, exten, priority = target.split(",")
        assert context in plan.contexts, target
        assert extensions_matching(plan, context, exten), target
        assert priority == "1", target


def test_contexts_named_by_other_files_exist(rendered: dict[str, bytes], plan: Dialplan) -> None:
    pjsip = conffile.parse(rendered["pjsip.conf"].decode(), "pjsip.conf")
    for section in pjsip.sections:
        for context in section.get("context"):
            assert context in plan.contexts, f"pjsip [{section.name}] context {context}"
    queues = conffile.parse(rendered["queues.conf"].decode(), "queues.conf")
    for section in queues.sections:
        for context in section.get("context"):
            assert context in plan.contexts, f"queue {section.name} context {context}"
            # app_queue leaves with a key only for single-character extensions.
            assert all(len(e) == 1 for e in plan.contexts[context])


def test_every_queue_call_has_a_known_queue_and_an_explicit_timeout(
    rendered: dict[str, bytes], plan: Dialplan
) -> None:
    queues = conffile.parse(rendered["queues.conf"].decode(), "queues.conf")
    configured = {s.name for s in queues.sections if s.name != "general"}
    exists_checks = {
        m.group(1)
        for step in plan.priorities()
        for m in re.finditer(r"QUEUE_EXISTS\(\$\{(\w+)\}\)", step.data)
    }
    calls = [s for s in plan.priorities() if s.app == "Queue"]
    assert len(calls) >= 3
    for step in calls:
        where = f"{step.file}:{step.line}"
        args = split_args(step.data)
        name = args[0]
        variable = re.fullmatch(r"\$\{(\w+)\}", name)
        if variable:
            assert variable.group(1) in QUEUE_VARIABLES, f"{where}: queue from {name}"
            assert variable.group(1) in exists_checks | {"CALLBACK_QUEUE"}, (
                f"{where}: {name} is never checked with QUEUE_EXISTS"
            )
        else:
            assert name in configured, f"{where}: no queue {name}"
        # Without Queue()'s own timeout app_queue never logs EXITWITHTIMEOUT.
        assert len(args) >= 5, f"{where}: Queue() without a timeout"
        assert args[4].strip(), f"{where}: Queue() without a timeout"
        timeout_var = re.fullmatch(r"\$\{QTIMEOUT_\$\{(\w+)\}\}", args[4])
        if timeout_var:
            assert timeout_var.group(1) in QUEUE_VARIABLES
    for queue in configured:
        assert f"QTIMEOUT_{queue}" in plan.globals
        assert f"QPRIO_{queue}" in plan.globals
    # The inbound queue call takes its timeout from the globals through QUEUE_TIMEOUT.
    setters = [s.data for s in plan.priorities() if s.app == "Set"]
    assert "QUEUE_TIMEOUT=${QTIMEOUT_${QUEUE}}" in setters


def test_every_agi_call_is_a_known_script_on_the_configured_server(plan: Dialplan) -> None:
    settings = sample.settings()
    prefix = f"agi://{settings.agi.host}:{settings.agi.port}/"
    used = set()
    for step in plan.priorities():
        if step.app != "AGI":
            assert "agi://" not in step.data, f"{step.file}:{step.line}"
            continue
        url = split_args(step.data)[0]
        assert url.startswith(prefix), f"{step.file}:{step.line}: {url}"
        script = url.removeprefix(prefix).split("?")[0]
        assert script in AGI_SCRIPTS, f"{step.file}:{step.line}: unknown AGI script {script!r}"
        used.add(script)
    assert used == AGI_SCRIPTS


def test_every_context_is_reachable_from_an_entry_point(
    rendered: dict[str, bytes], plan: Dialplan
) -> None:
    assert set(plan.contexts) >= ENTRY_CONTEXTS
    # A caller inside Queue() can leave to the queue's exit-key context.
    queues = conffile.parse(rendered["queues.conf"].decode(), "queues.conf")
    exit_contexts = {c for s in queues.sections for c in s.get("context")}
    edges: dict[str, set[str]] = {name: set(plan.includes[name]) for name in plan.contexts}
    for step in plan.priorities():
        targets = [t for t in goto_targets(step) if len(split_args(t)) == 3]
        edges[step.context] |= {split_args(t)[0].strip() for t in targets}
        for arg in split_args(step.data):
            if arg.startswith("Local/") and "@" in arg:
                edges[step.context].add(arg.split("@")[1].split("/")[0])
        args = split_args(step.data)
        if step.app == "Originate" and len(args) >= 3 and args[1] == "exten":
            edges[step.context].add(args[2])
        if step.app == "Queue":
            edges[step.context] |= exit_contexts
            # b(context^exten^priority): a Gosub on each member's channel before it is rung.
            options = args[1] if len(args) > 1 else ""
            edges[step.context] |= set(re.findall(r"b\(([^^)]+)\^", options))
            # The 7th argument: a Gosub app_queue runs on the member's leg once answered.
            if len(args) > 6 and args[6].strip():
                edges[step.context].add(args[6].split(",")[0].strip())
    # features.conf's applicationmap: a Gosub run on a channel that keys the feature's DTMF.
    features = conffile.parse(rendered["features.conf"].decode(), "features.conf")
    feature_contexts = {
        m.group(1)
        for section in features.sections
        if section.name == "applicationmap"
        for value in (e.value for e in section.entries)
        for m in [re.search(r"Gosub\(([^,)]+),", value)]
        if m
    }
    assert feature_contexts <= set(plan.contexts), feature_contexts
    reached = set(ENTRY_CONTEXTS) | feature_contexts
    todo = list(reached)
    while todo:
        for nxt in edges[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert reached == set(plan.contexts), f"unreachable: {set(plan.contexts) - reached}"


def test_dids_route_to_the_ivr(plan: Dialplan, rendered: dict[str, bytes]) -> None:
    extens = set(plan.contexts["from-trunk"])
    dids = {d for t in sample.TRUNKS for d in t.dids}
    if b"_X." in rendered["dialplans/inbound.conf"] and not extens & dids:
        assert extens == {"_X.", "_+X."}
    else:
        assert extens == dids
    for exten in extens:
        steps = plan.contexts["from-trunk"][exten]
        assert steps[0].data == "__DID=${EXTEN}"
        assert steps[-1].app == "Goto"
        assert steps[-1].data == "inbound,s,1"


# --- asterisklint ---------------------------------------------------------------------------


def _asterisklint() -> str:
    found = shutil.which("asterisklint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("asterisklint (asterisklint-jjs, a dev dependency) is not installed")
    return found


def _lint(
    tmp_path: Path, rendered: dict[str, bytes], command: str
) -> subprocess.CompletedProcess[str]:
    for name, data in rendered.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return subprocess.run(
        [_asterisklint(), command, "extensions.conf"],
        cwd=tmp_path,
        env={**os.environ, "ALINT_ASTERISK_VERSION": "22"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_asterisklint_finds_nothing(tmp_path: Path, rendered: dict[str, bytes]) -> None:
    result = _lint(tmp_path, rendered, "dialplan-check")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_module_the_dialplan_uses_is_loaded(
    tmp_path: Path, rendered: dict[str, bytes]
) -> None:
    result = _lint(tmp_path, rendered, "modules-show")
    assert result.returncode == 0, result.stderr
    used = set(re.findall(r"^load => (\S+)$", result.stdout, re.MULTILINE))
    assert used, result.stdout
    assert used <= set(REQUIRED_MODULES) | set(LOADED_MODULES)


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("Goto(inbound,s,1)", "Goto(inbound,x,1)"),
        ("?queue-callback,request,1)", "?queue-callback,requests,1)"),
        ("?unavailable)", "?unavailible)"),
        ("Goto(inbound-queue,s,1)", "Goto(inbound-queue,s,99)"),
    ],
)
def test_the_checker_catches_a_broken_target(good: str, bad: str) -> None:
    files = _render(with_dids=True)
    text = files["dialplans/inbound.conf"].decode()
    assert good in text
    files["dialplans/inbound.conf"] = text.replace(good, bad, 1).encode()
    broken = conffile.dialplan(files)
    with pytest.raises(AssertionError):
        test_every_goto_and_gosub_target_exists(broken)
