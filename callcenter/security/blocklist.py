"""The private Asterisk's SIP blocklist: acl.conf rendered from the blocks, written, reloaded.

Only acl.conf changes (:func:`callcenter.asterisk.render.render_acl`, the same bytes as a
whole render), then ``module reload acl`` over the console socket: the named ACL
``[sip-blocklist]`` is read again and res_pjsip_acl, told of the change, re-reads pjsip.conf's
``type = acl`` object that uses it. Checked on Asterisk 22.10.1: the next REGISTER from a
blocked address gets 403, an allowed one still registers, no res_pjsip reload needed (which
would also reload every endpoint). Not over AMI: its ``Command`` action needs the ``command``
class, which the bridge's AMI user is denied on purpose (it is a shell); the console socket is
the one ``callcenter asterisk reload`` uses, for the same reason.

Only the private instance (``[nodes.local]`` on this machine, in ``[asterisk] directory``)
can be changed this way; blocks of other nodes are alerts and rows in the table only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from callcenter.asterisk import files, reload, run
from callcenter.asterisk.render import RenderError, render_acl
from callcenter.config import Settings

ACL_FILE = "acl.conf"
#: What ``module reload`` takes for acl.conf (callcenter.asterisk.reload.RELOAD_MODULE).
ACL_MODULE = reload.RELOAD_MODULE[ACL_FILE] or "acl"


class BlocklistError(RuntimeError):
    """The blocklist could not be applied; the message says why, for operators."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What :func:`apply` did: ``written`` a new acl.conf, ``reloaded`` it in a running
    Asterisk; ``detail`` says so in words."""

    written: bool
    reloaded: bool
    detail: str


def private_node(settings: Settings) -> str | None:
    """The node whose Asterisk is the private instance (``local`` on this machine), or None."""
    for node in settings.nodes:
        if node.name == "local" and node.host in run.LOOPBACK_HOSTS:
            return node.name
    return None


def apply(settings: Settings, blocked: Iterable[str], *, directory: Path | None = None) -> Applied:
    """Make the private instance refuse exactly ``blocked`` (and the allow-list never).
    Writes acl.conf only when its bytes change; reloads only a running Asterisk (one that is
    not running reads the file when it starts, as ``callcenter run`` renders it from the table
    anyway). :class:`BlocklistError` when the file cannot be written or the reload fails."""
    where = directory if directory is not None else run.instance_dir(settings)
    etc = where / "etc"
    if private_node(settings) is None:
        return Applied(False, False, "no [nodes.local] on this machine: nothing to change here")
    if not etc.is_dir():
        return Applied(False, False, f"no private Asterisk in {where} yet: it starts with these")
    path = etc / ACL_FILE
    try:
        data = render_acl(settings, blocked)
        old = path.read_bytes() if path.exists() else b""
        if old == data:
            return Applied(False, False, f"{path} already says so")
        files.write_set({ACL_FILE: data}, etc)
    except (RenderError, OSError) as exc:
        raise BlocklistError(f"cannot write {path}: {exc}") from exc
    if not run.is_running(where):
        return Applied(True, False, f"wrote {path}; Asterisk is not running there")
    try:
        binary = run.find_binary(settings)
        reload.reload_modules(binary, where, [ACL_MODULE])
    except (run.AsteriskNotFound, reload.ReloadError, OSError) as exc:
        # Put the old file back: the next try then finds a change to write and reload again.
        with contextlib.suppress(OSError):
            files.write_set({ACL_FILE: old}, etc)
        raise BlocklistError(f"could not reload {path}: {exc}") from exc
    return Applied(True, True, f"wrote {path} and reloaded it (module reload {ACL_MODULE})")
