"""Reloading only what changed: which Asterisk module reads which rendered file.

`callcenter asterisk reload` renders again, compares with the files on disk, writes the changed
ones and reloads their modules over the instance's console socket (``asterisk -rx "module reload
<module>"``), not over AMI: AMI's Reload needs the ``system`` or ``config`` write class, which the
bridge's AMI user is deliberately denied (either one is a way to run shell commands). The console
socket is the owner's only (asterisk.conf ``astctlpermissions = 0600``), and the files being
reloaded are on this machine anyway.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from callcenter.asterisk import run

#: Rendered file -> the name ``module reload`` takes; ``None``: only a restart applies it.
#: Built-in parts have bare names (manager, logger, cdr, cel, features...). Checked on
#: Asterisk 22: each answers "Module '<name>' reloaded successfully.", except ccss, which
#: does not support reloads.
RELOAD_MODULE: Mapping[str, str | None] = {
    "acl.conf": "acl",
    "amd.conf": "app_amd.so",
    "asterisk.conf": None,
    "ccss.conf": None,
    "cdr.conf": "cdr",
    "cdr_custom.conf": "cdr_custom.so",
    "cel.conf": "cel",
    "cel_custom.conf": "cel_custom.so",
    "extensions.conf": "pbx_config.so",
    "features.conf": "features",
    "http.conf": "http",
    "indications.conf": "indications",
    "logger.conf": "logger",
    "manager.conf": "manager",
    "modules.conf": None,
    "musiconhold.conf": "res_musiconhold.so",
    "pjproject.conf": "res_pjproject.so",
    "pjsip.conf": "res_pjsip.so",
    "queues.conf": "app_queue.so",
    "rtp.conf": "res_rtp_asterisk.so",
    "udptl.conf": "udptl",
    "voicemail.conf": "app_voicemail.so",
}

#: Seconds one ``asterisk -rx`` may take.
CONSOLE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What to do about a set of changed files: modules to reload, files needing a restart."""

    modules: tuple[str, ...]
    restart_for: tuple[str, ...]


def plan(changed: Iterable[str]) -> ReloadPlan:
    """Modules to reload for ``changed`` file names (each once, sorted).

    Dialplan files (``dialplans/*``) are pbx_config's; an unknown file asks for a restart rather
    than being silently ignored.
    """
    modules: set[str] = set()
    restart: set[str] = set()
    for name in changed:
        module = "pbx_config.so" if name.startswith("dialplans/") else RELOAD_MODULE.get(name)
        if module is None:
            restart.add(name)
        else:
            modules.add(module)
    return ReloadPlan(tuple(sorted(modules)), tuple(sorted(restart)))


class ReloadError(RuntimeError):
    """A module did not reload; the message quotes Asterisk's answer."""


def console(binary: Path, directory: Path, command: str) -> str:
    """Run one CLI command on the running instance; its output, stripped. Asterisk prints
    names as the bytes it keeps, and app_queue cuts a long MemberName inside a UTF-8
    character: such bytes read as U+FFFD rather than failing."""
    try:
        done = subprocess.run(
            run.console_command(binary, directory, command),
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=CONSOLE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ReloadError(
            f"`{command}`: no answer from Asterisk in {CONSOLE_TIMEOUT:.0f} s"
        ) from None
    return (done.stdout + done.stderr).strip()


def reload_modules(binary: Path, directory: Path, modules: Iterable[str]) -> list[str]:
    """``module reload`` each one; the answers. :class:`ReloadError` on the first failure."""
    answers = []
    for module in modules:
        answer = console(binary, directory, f"module reload {module}")
        if "reloaded successfully" not in answer:
            first = answer.splitlines()[0] if answer else "no answer"
            raise ReloadError(f"reloading {module} failed: {first}")
        answers.append(answer)
    return answers
