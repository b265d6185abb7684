"""Finding Asterisk, laying out a private instance, and the command lines that drive it.

A private instance lives in one directory (``[asterisk] directory``, default ``var/asterisk``):
``etc/`` (the rendered set), ``run/`` (pid file and console socket), ``log/`` (messages.log,
queue_log, CDR and CEL files), ``spool/``, ``lib/`` (astdb) and ``cache/``. Modules and sounds
are the installation's.

The binary is ``[asterisk] binary``, else ``$ASTERISK_BIN``, else ``asterisk`` on ``PATH`` (and
the sbin directories, which a non-root ``PATH`` often lacks, and ``/opt/asterisk/sbin``, where
the README's source build installs it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from callcenter.config import Settings

BINARY_ENV = "ASTERISK_BIN"

INSTALL_HINT = (
    "install Asterisk 20 or newer with chan_pjsip, app_queue and res_agi: Debian 12 has no "
    "package, so build Asterisk 20 or 22 from source (asterisk.org) with "
    "./configure --prefix=/opt/asterisk, and take the prompts from Debian's "
    "asterisk-core-sounds-en-gsm (README, Prerequisites); then set [asterisk] binary or "
    "ASTERISK_BIN if it is not on PATH or in /opt/asterisk/sbin"
)

#: Below the instance directory; log/cdr-* and log/cel-custom because the CDR and CEL writers
#: do not create their directories.
SUBDIRS = (
    "etc",
    "run",
    "log",
    "log/cdr-csv",
    "log/cdr-custom",
    "log/cel-custom",
    "spool",
    "lib",
    "lib/agi-bin",
    "cache",
)


class AsteriskNotFound(RuntimeError):
    """No usable Asterisk binary. The message says where we looked and how to install it."""


#: Searched after PATH: where packages and source builds install Asterisk, often missing from
#: a user's PATH (/opt/asterisk is the README's prefix for a source build).
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/opt/asterisk/sbin")


def find_binary(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    sbin_dirs: Sequence[str] = SBIN_DIRS,
) -> Path:
    """The Asterisk binary to run; :class:`AsteriskNotFound` when there is none."""
    env = os.environ if environ is None else environ
    for origin, value in (
        ("[asterisk] binary", settings.asterisk.binary),
        (BINARY_ENV, env.get(BINARY_ENV, "")),
    ):
        if value:
            path = Path(value)
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise AsteriskNotFound(f"{origin} = {value}: no executable there; {INSTALL_HINT}")
    search = os.pathsep.join([env.get("PATH", os.defpath), *sbin_dirs])
    found = shutil.which("asterisk", path=search)
    if found is None:
        raise AsteriskNotFound(f"Asterisk is not installed (not on PATH); {INSTALL_HINT}")
    return Path(found)


def installation_dirs(binary: Path) -> tuple[str, str]:
    """``(module_dir, data_dir)`` of the installation ``binary`` belongs to, or ``""`` each.

    For ``<prefix>/sbin/asterisk``: ``<prefix>/lib/asterisk/modules`` (or lib64) when it holds
    modules, and ``<prefix>/var/lib/asterisk`` when it holds sounds or music. An empty value
    leaves the directory out of asterisk.conf, so Asterisk uses the one compiled into it, which
    is right for packaged layouts such as Debian's (/usr/lib/<arch>/asterisk, /usr/share).
    """
    prefix = binary.resolve().parent.parent
    module_dir = ""
    for lib in ("lib", "lib64"):
        candidate = prefix / lib / "asterisk" / "modules"
        if candidate.is_dir() and any(candidate.glob("*.so")):
            module_dir = str(candidate)
            break
    data = prefix / "var" / "lib" / "asterisk"
    data_dir = str(data) if (data / "sounds").is_dir() or (data / "moh").is_dir() else ""
    return module_dir, data_dir


def instance_dir(settings: Settings) -> Path:
    """The private instance's directory, absolute (relative settings are from the cwd)."""
    return Path(settings.asterisk.directory).absolute()


def prepare(directory: Path) -> None:
    """Create the instance's directories (0750: logs and astdb are not for every user)."""
    for sub in SUBDIRS:
        (directory / sub).mkdir(mode=0o750, parents=True, exist_ok=True)


def config_file(directory: Path) -> Path:
    return directory / "etc" / "asterisk.conf"


def control_socket(directory: Path) -> Path:
    return directory / "run" / "asterisk.ctl"


def command_line(binary: Path, directory: Path, verbosity: int = 3) -> list[str]:
    """Asterisk in the foreground (-f), without colours (-n), on the instance's asterisk.conf."""
    argv = [str(binary), "-C", str(config_file(directory)), "-f", "-n"]
    if verbosity > 0:
        argv.append("-" + "v" * verbosity)
    return argv


def console_command(binary: Path, directory: Path, command: str) -> list[str]:
    """One CLI command over the instance's console socket (``asterisk -rx``)."""
    return [str(binary), "-C", str(config_file(directory)), "-rx", command]


def is_running(directory: Path, timeout: float = 1.0) -> bool:
    """Whether an Asterisk answers on the instance's console socket."""
    path = control_socket(directory)
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


#: [nodes.local] hosts that mean "the Asterisk on this machine".
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def private_instance(settings: Settings) -> tuple[Path | None, str]:
    """For `make run` / `callcenter run`: the binary to start a private Asterisk with, or
    ``None``, and a one-line reason either way.

    A private Asterisk is started when ``[nodes.local]`` points at this machine, none already
    runs in the instance directory, and a binary is installed; otherwise the reason says why
    not (an external node, already running, or how to install Asterisk).
    """
    local = [n for n in settings.nodes if n.name == "local"]
    if not local:
        return None, "no [nodes.local]: the Asterisk nodes are external, none is started"
    if local[0].host not in LOOPBACK_HOSTS:
        return None, f"[nodes.local] is at {local[0].host}: an external Asterisk, none is started"
    directory = instance_dir(settings)
    if is_running(directory):
        return None, f"an Asterisk already runs in {directory}"
    try:
        binary = find_binary(settings)
    except AsteriskNotFound as exc:
        return None, str(exc)
    return binary, f"starting a private Asterisk ({binary}) in {directory}"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux's
    ``PR_SET_PDEATHSIG``, which outlives ``execv``): the private Asterisk of `callcenter run`
    stops cleanly even when `callcenter run` is killed outright. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the call: do as it would have
        os.kill(os.getpid(), signal.SIGTERM)


def exec_foreground(argv: list[str]) -> NoReturn:
    """Become Asterisk (``execv``): signals such as SIGTERM reach it directly, and it shuts
    down cleanly on them; there is no parent of ours left to forward or to orphan."""
    os.execv(argv[0], argv)  # noqa: S606 - argv[0] is the resolved binary, no shell involved
