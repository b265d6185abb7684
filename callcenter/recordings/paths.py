"""Where recordings live: ``<recordings dir>/YYYY/MM/DD/<call uniqueid>_<leg uniqueid>.<fmt>``.

The dialplan makes the name (``[recording-start]``: the day in the site's time zone, the
caller's uniqueid, the agent leg's uniqueid) and reports it relative to the recordings
directory in ``UserEvent(CallRecording)``; the row keeps that relative path. Uniqueids are
``<epoch>.<counter>`` (with Asterisk's ``systemname`` as a prefix where one is set: set a
distinct one per node when several nodes write into one directory).

A path read back from the database or an event is only ever opened through :func:`resolve`,
which refuses anything that is not of that shape or that would leave the directory (``..``,
an absolute path, a symbolic link pointing out): the web app serves files by row id, never
by a name from the request, and still checks.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from callcenter.config import Settings

#: Asterisk's file formats a browser plays and Python's ``wave`` reads: ``wav`` is 16-bit
#: PCM at 8 kHz, ``wav16`` the same at 16 kHz (format_wav.c; the file ends in ``.wav16``).
FORMATS = ("wav", "wav16")

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
RELATIVE_RE = re.compile(rf"^(\d{{4}})/(\d{{2}})/(\d{{2}})/{_NAME}\.(?:wav|wav16)$")


class PathError(ValueError):
    """A recording path that is not ours to open; the message says why."""


def check_relative(path: str) -> str:
    """``path`` if it is a recording path relative to the directory (``YYYY/MM/DD/name.wav``
    with a real date); else :class:`PathError`."""
    m = RELATIVE_RE.match(path)
    if m is None or ".." in path:
        raise PathError(f"not a recording path: {path[:80]!r}")
    try:
        dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise PathError(f"not a date in a recording path: {path[:80]!r}") from None
    return path


def relative_path(day: dt.date, call_uniqueid: str, leg_uniqueid: str, fmt: str = "wav") -> str:
    """The path the dialplan gives a recording of ``leg_uniqueid`` (the agent's leg) in the
    call ``call_uniqueid`` started on ``day`` (the site's day). Mirrors ``[recording-start]``."""
    if fmt not in FORMATS:
        raise PathError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    keep = re.compile(r"[^0-9A-Za-z._]")
    name = f"{keep.sub('', call_uniqueid)}_{keep.sub('', leg_uniqueid)}"
    return check_relative(f"{day:%Y/%m/%d}/{name}.{fmt}")


def leg_of(path: str) -> str:
    """The uniqueid of the recorded leg, from a path :func:`relative_path` made (after the
    last ``_`` of the name, without the extension): how a recording the database holds is
    matched again to its channel after a restart of the bridge. An Asterisk ``systemname``
    with a ``_`` in it would defeat this; such recordings then end at the next resync."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.rsplit("_", 1)[-1] if "_" in stem else ""


def resolve(root: Path, relative: str) -> Path:
    """The file ``relative`` names under ``root``, resolved (symbolic links followed); a
    :class:`PathError` when ``relative`` is not a recording path or the result is not inside
    ``root``. The file need not exist."""
    check_relative(relative)
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PathError(f"{relative[:80]!r} is outside the recordings directory")
    return target


def root(settings: Settings) -> Path:
    """The recordings directory, absolute: ``[recording] dir``, else the private instance's
    ``<[asterisk] directory>/recordings`` (relative settings are from the working directory,
    as :func:`callcenter.asterisk.run.instance_dir`). What the dialplan writes into and the
    bridge, the CLI and the web app read from: on a remote node, mount it at the same path."""
    if settings.recording.dir:
        return Path(settings.recording.dir).absolute()
    return Path(settings.asterisk.directory).absolute() / "recordings"
