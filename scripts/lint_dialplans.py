"""Lint the rendered dialplans with asterisklint (asterisklint-jjs) for Asterisk 22.

Renders the configuration set from the sample inputs (no database needed: two queues, agents,
trunks with and without DIDs, see callcenter/asterisk/sample.py) into a temporary directory
and runs ``asterisklint dialplan-check extensions.conf`` with ``ALINT_ASTERISK_VERSION=22``,
for both shapes of [from-trunk]. Exit status: 0 when asterisklint reports nothing, 1 on any
finding (printed), 2 when asterisklint is not installed. Used by ``make check``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from callcenter.asterisk import sample
from callcenter.asterisk.render import RenderError, RenderOptions, render


def _asterisklint() -> str | None:
    here = Path(sys.executable).parent
    return shutil.which("asterisklint", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")


def main() -> int:
    lint = _asterisklint()
    if lint is None:
        print("asterisklint not found: install the dev extras (pip install -e '.[dev]')")
        return 2
    status = 0
    for label, trunks in (("DIDs", sample.TRUNKS), ("any number", sample.TRUNKS[1:])):
        with tempfile.TemporaryDirectory(prefix="cc-lint-") as tmp:
            base = Path(tmp)
            try:
                files = render(
                    sample.settings(),
                    sample.AGENTS,
                    sample.QUEUES,
                    trunks,
                    RenderOptions(directory=base / "instance"),
                )
            except RenderError as exc:
                print(f"render failed: {exc}")
                return 1
            for name, data in files.items():
                (base / name).parent.mkdir(parents=True, exist_ok=True)
                (base / name).write_bytes(data)
            result = subprocess.run(
                [lint, "dialplan-check", "extensions.conf"],
                cwd=base,
                env={**os.environ, "ALINT_ASTERISK_VERSION": "22"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            findings = (result.stdout + result.stderr).strip()
            if result.returncode != 0 or findings:
                print(f"asterisklint ({label}):\n{findings.replace(tmp, '<rendered>')}")
                status = 1
    if status == 0:
        print("dialplans: asterisklint (Asterisk 22) found nothing")
    return status


if __name__ == "__main__":
    sys.exit(main())
