"""What the README promises an operator on a fresh clone: how to reach `callcenter` after
`make run`, how to connect phones, and no path that is not in the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from callcenter.asterisk import run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_says_how_to_run_callcenter_from_the_virtualenv() -> None:
    """`make` installs `callcenter` into .venv/bin, which is not on PATH: the README says so."""
    assert "`.venv/bin/callcenter ...`" in README
    assert "`. .venv/bin/activate`" in README
    assert "$(BIN)/callcenter" in (ROOT / "Makefile").read_text()
    command = Path(sys.executable).parent / "callcenter"
    assert command.is_file(), f"no {command}: is the project installed in this virtualenv?"
    done = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("callcenter, version ")


def test_readme_tells_how_to_connect_phones() -> None:
    section = README.split("## Connecting phones", 1)[1].split("\n## ", 1)[0]
    for text in ("callcenter agents phone NAME", "bind_address", "0.0.0.0", "*11", "wrong PIN"):
        assert text in section, text
    assert "callcenter agents phone" in README.split("## Operator CLI", 1)[1]


def _cited_paths(text: str) -> set[str]:
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    cited = set(re.findall(r"`([^`\s]+)`", prose)) | set(re.findall(r"\]\(([^)\s]+)\)", prose))
    return {c for c in cited if "/" in c and not c.startswith(("http://", "https://"))}


def _generated(path: str) -> bool:
    """Under a directory the project writes at run time, which .gitignore keeps out."""
    ignored = (ROOT / ".gitignore").read_text().split()
    return any(path.startswith(entry.strip("/")) or path == entry for entry in ignored if entry)


def test_readme_cites_no_path_outside_the_repository() -> None:
    """A path the README cites is in this repository, or one the project writes at run time
    (var/, bench/results.json), or where the project itself looks for Asterisk."""
    allowed_outside = {"/opt/asterisk", *run.SBIN_DIRS, *(f"{d}/" for d in run.SBIN_DIRS)}
    wrong = []
    for cited in sorted(_cited_paths(README)):
        if cited.startswith("/"):
            # Web paths of the web app (/board, /agent, /api/...) are URLs, not files.
            if cited not in allowed_outside and not re.match(
                r"^/(api|board|tv|events|history|metrics|agent)", cited
            ):
                wrong.append(cited)
            continue
        if any(c in cited for c in "<>{}*|$") or cited.startswith(("PJSIP/", "AGI(")):
            continue  # a pattern, not a path
        if not (ROOT / cited).exists() and not _generated(cited):
            wrong.append(cited)
    assert wrong == []
