"""A small reader of Asterisk's configuration syntax, strict where Asterisk is lenient.

Enough for what we render: ``[section]`` with ``(!)`` / ``(template,...)`` / ``(+)``,
``key = value`` and ``key => value`` (a key may carry Asterisk's ``(...)`` criteria, as
manager.conf's ``eventfilter(name(Hangup)) =``), ``;`` comments (``\\;`` is a literal
semicolon), ``;--`` block comments ``--;``, and ``#include``. Any other line is an error
with file and line, so a template that renders something Asterisk would have to guess about
fails the tests.

:func:`dialplan` follows extensions.conf's ``#include`` lines and returns every priority of every
context, with ``same =>`` and ``n`` resolved as Asterisk resolves them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_SECTION_RE = re.compile(r"^\[([^\]\s]+)\](?:\(([^)]*)\))?$")
_ENTRY_RE = re.compile(r"^([A-Za-z0-9_.+*#/-]+(?:\([A-Za-z0-9_(),.:-]*\))?)\s*(=>|=)\s*(.*)$")
_PRIORITY_RE = re.compile(r"^(n|\d+)(?:\(([A-Za-z0-9_-]+)\))?$")
_APP_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?$", re.DOTALL)


class ConfError(ValueError):
    """A line Asterisk's syntax does not allow (or that we refuse to render)."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    op: str
    value: str
    line: int


@dataclass(slots=True)
class Section:
    name: str
    options: tuple[str, ...]
    line: int
    entries: list[Entry] = field(default_factory=list)

    @property
    def is_template(self) -> bool:
        return "!" in self.options

    def get(self, key: str) -> list[str]:
        """Every value of ``key`` in this section, in order."""
        return [e.value for e in self.entries if e.key == key]

    def one(self, key: str) -> str:
        """The single value of ``key``; :class:`KeyError` if absent, :class:`ConfError` if
        repeated."""
        values = self.get(key)
        if not values:
            raise KeyError(f"[{self.name}] has no {key}")
        if len(values) > 1:
            raise ConfError(f"[{self.name}] has {key} {len(values)} times")
        return values[0]


@dataclass(slots=True)
class Document:
    name: str
    sections: list[Section]
    includes: list[str]

    def named(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            break
        out.append(c)
        i += 1
    return "".join(out).strip()


def parse(text: str, name: str = "<text>") -> Document:
    """Sections, entries and includes of one file; :class:`ConfError` on anything else."""
    doc = Document(name, [], [])
    current: Section | None = None
    in_block = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_block:
            if "--;" not in line:
                continue
            line = line.split("--;", 1)[1]
            in_block = False
        if line.lstrip().startswith(";--") and "--;" not in line:
            in_block = True
            continue
        line = _strip_comment(line)
        if not line:
            continue
        where = f"{name}:{number}"
        if line.startswith("#"):
            directive, _, arg = line.partition(" ")
            if directive not in ("#include", "#tryinclude") or not arg.strip():
                raise ConfError(f"{where}: unsupported directive {line!r}")
            doc.includes.append(arg.strip().strip('"'))
            continue
        section = _SECTION_RE.match(line)
        if section:
            options = tuple(o.strip() for o in (section.group(2) or "").split(",") if o.strip())
            current = Section(section.group(1), options, number)
            doc.sections.append(current)
            continue
        entry = _ENTRY_RE.match(line)
        if entry is None:
            raise ConfError(f"{where}: not a section, setting or include: {raw.strip()!r}")
        if current is None:
            raise ConfError(f"{where}: setting before any [section]")
        current.entries.append(
            Entry(entry.group(1), entry.group(2), entry.group(3).strip(), number)
        )
    if in_block:
        raise ConfError(f"{name}: block comment ;-- never closed")
    return doc


# --- dialplan -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Priority:
    """One step of the dialplan: ``exten => <exten>,<number>(<label>),<app>(<data>)``."""

    context: str
    exten: str
    number: int
    label: str
    app: str
    data: str
    file: str
    line: int


@dataclass(slots=True)
class Dialplan:
    """Contexts -> extensions -> priorities in order; includes per context; globals."""

    contexts: dict[str, dict[str, list[Priority]]]
    includes: dict[str, list[str]]
    globals: dict[str, str]

    def priorities(self) -> list[Priority]:
        return [p for exts in self.contexts.values() for prios in exts.values() for p in prios]

    def labels(self, context: str, exten: str) -> set[str]:
        return {p.label for p in self.contexts[context][exten] if p.label}


def split_args(data: str) -> list[str]:
    """Split application arguments at top-level commas (not inside ``()``, ``[]``, ``{}``)."""
    args: list[str] = []
    depth = 0
    current: list[str] = []
    for c in data:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(current))
            current = []
            continue
        current.append(c)
    args.append("".join(current))
    return args


def dialplan(files: Mapping[str, bytes], root: str = "extensions.conf") -> Dialplan:
    """Read ``root`` and the files it includes from a rendered set."""
    plan = Dialplan({}, {}, {})
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            raise ConfError(f"{name} is included twice")
        seen.add(name)
        if name not in files:
            raise ConfError(f"#include {name}: not in the rendered set")
        doc = parse(files[name].decode("utf-8"), name)
        for section in doc.sections:
            if section.name == "globals":
                plan.globals.update({e.key: e.value for e in section.entries})
            elif section.name != "general":
                _read_context(plan, section, name)
        for include in doc.includes:
            visit(include)

    visit(root)
    return plan


def _read_context(plan: Dialplan, section: Section, file: str) -> None:
    if section.name in plan.contexts:
        raise ConfError(f"{file}:{section.line}: context [{section.name}] defined twice")
    exts: dict[str, list[Priority]] = {}
    plan.contexts[section.name] = exts
    plan.includes[section.name] = []
    last: Priority | None = None
    for entry in section.entries:
        where = f"{file}:{entry.line}"
        if entry.key == "include":
            plan.includes[section.name].append(entry.value)
            continue
        if entry.key not in ("exten", "same") or entry.op != "=>":
            raise ConfError(f"{where}: {entry.key} {entry.op} in a dialplan context")
        parts = entry.value.split(",", 2 if entry.key == "exten" else 1)
        if entry.key == "exten":
            if len(parts) != 3:
                raise ConfError(f"{where}: exten needs <exten>,<priority>,<application>")
            exten, prio, call = parts
        else:
            if last is None:
                raise ConfError(f"{where}: same => before any exten =>")
            if len(parts) != 2:
                raise ConfError(f"{where}: same needs <priority>,<application>")
            exten = last.exten
            prio, call = parts
        match = _PRIORITY_RE.match(prio.strip())
        if match is None:
            raise ConfError(f"{where}: bad priority {prio!r}")
        steps = exts.setdefault(exten.strip(), [])
        if match.group(1) == "n":
            if not steps:
                raise ConfError(f"{where}: priority n with no priority before it")
            number = steps[-1].number + 1
        else:
            number = int(match.group(1))
            if steps and number != steps[-1].number + 1:
                raise ConfError(f"{where}: priority {number} does not follow {steps[-1].number}")
            if not steps and number != 1:
                raise ConfError(f"{where}: extension {exten} does not start at priority 1")
        app = _APP_RE.match(call.strip())
        if app is None:
            raise ConfError(f"{where}: not an application call: {call!r}")
        last = Priority(
            section.name,
            exten.strip(),
            number,
            match.group(2) or "",
            app.group(1),
            app.group(2) or "",
            file,
            entry.line,
        )
        steps.append(last)
