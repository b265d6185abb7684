"""The recordings on the web: the supervisors' pages, and the agent desktop's mute and record.

Who may do what:

- ``/recordings`` (the list), ``/recordings/{id}`` (player, facts, who listened, legal hold),
  ``/recordings/{id}/audio`` and ``/download``: a supervisor's or an administrator's session
  only. An agent's session is sent to its own desktop (as every board page does); a TV
  screen's session and API tokens get 403: a recording is personal data, and a screen shows
  no one's. Forms (legal hold, record an agent's call now) post with the session's CSRF
  token from our own origin.
- ``/agent/recording`` (GET: what records my call now; POST ``/mute``, ``/record``): the
  agent's own session, on the agent's own current call only. An agent never gets a
  recording's audio: no route here serves a file to an agent's session.

Files are served by row id, never by a name from the request; the row's path is resolved
under the recordings directory and refused if it would leave it (:func:`.paths.resolve`).
``/audio`` answers HTTP range requests (aiohttp's FileResponse: 206 with Content-Range, 416
past the end), so a browser's player can seek without downloading the whole file.

**The listens log.** Every ``/download`` is logged (``download``). A player fetches the audio
in several range requests (the start, then one per seek), so ``/audio`` logs a ``play`` only
for a request without a Range header or with a range starting at byte 0: one per time the
player (re)loads the file, none per seek.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.orm import Session

from callcenter import names
from callcenter.db.models import Call
from callcenter.db.models_quality import Recording
from callcenter.recordings import control, paths, policy, store
from callcenter.wallboard.auth import Visitor
from callcenter.wallboard.context import (
    in_session,
    parts,
    require,
    require_actor,
    supervisor_only,
)
from callcenter.wallboard.desk.views import agent_post, me, require_agent
from callcenter.wallboard.views import page, redirect

log = logging.getLogger(__name__)

#: Recordings on one page of the list.
PAGE_SIZE = 50
QUEUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RANGE_START_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-")
CONTENT_TYPE = "audio/wav"


# --- who is asking --------------------------------------------------------------------------


def require_supervisor(request: web.Request) -> Visitor:
    return supervisor_only(require(request), "recordings")


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if len(raw) > 18:
        raise web.HTTPNotFound(text="no such recording")
    return int(raw)


async def _recording(request: web.Request, recording_id: int) -> Recording:
    try:
        return await in_session(request, lambda s: store.get(s, recording_id))
    except store.RecordingError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


# --- formatting -----------------------------------------------------------------------------


def _clock(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _local(when: dt.datetime | None, request: web.Request) -> str:
    if when is None:
        return "-"
    return when.astimezone(parts(request).settings.site.tz).strftime("%Y-%m-%d %H:%M:%S")


def _row(request: web.Request, rec: Recording, now: dt.datetime) -> dict[str, Any]:
    v = store.view(rec, now)
    v["started"] = _local(rec.started_at, request)
    v["ended"] = _local(rec.ended_at, request)
    v["length"] = _clock(rec.duration_ms)
    v["muted_for"] = _clock(v["muted_ms"]) if v["mutes"] else ""
    v["playable"] = rec.state == "done"
    return v


# --- the list and one recording ---------------------------------------------------------------


def _filters(request: web.Request) -> tuple[store.Filters, dict[str, str]]:
    q = request.query
    agent = names.normalize(q.get("agent", "").strip())[: names.MAX_CHARS] or None
    queue = q.get("queue", "").strip() or None
    if queue is not None and not QUEUE_RE.match(queue):
        raise web.HTTPBadRequest(text="queue: a queue name (a-z, 0-9, _ or -)")
    day = q.get("day", "").strip() or None
    since = until = None
    if day is not None:
        if not DAY_RE.match(day):
            raise web.HTTPBadRequest(text="day: a date, YYYY-MM-DD")
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            raise web.HTTPBadRequest(text="day: a date, YYYY-MM-DD") from None
        tz = parts(request).settings.site.tz
        since = dt.datetime.combine(date, dt.time(), tzinfo=tz)
        until = since + dt.timedelta(days=1)
    shown = {"agent": agent or "", "queue": queue or "", "day": day or ""}
    return store.Filters(agent=agent, queue=queue, since=since, until=until), shown


async def list_page(request: web.Request) -> web.Response:
    visitor = require_supervisor(request)
    filters, shown = _filters(request)
    before = None
    if request.query.get("before"):
        try:
            before = store.Cursor.parse(request.query["before"])
        except store.RecordingError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    rows, cursor = await in_session(
        request, lambda s: store.page(s, filters, limit=PAGE_SIZE, before=before)
    )
    now = dt.datetime.now(dt.UTC)
    keep = {k: v for k, v in shown.items() if v}
    more = f"/recordings?{urlencode({**keep, 'before': cursor.token()})}" if cursor else ""
    first = f"/recordings?{urlencode(keep)}" if before is not None else ""
    return page(request, "recordings.html.j2", {
        **_base(request, visitor), "rows": [_row(request, r, now) for r in rows],
        "filters": shown, "more": more, "first": first,
        "message": request.query.get("msg", "")[:200],
    })  # fmt: skip


def _base(request: web.Request, visitor: Visitor) -> dict[str, Any]:
    return {
        "visitor": visitor.principal,
        "csrf": visitor.csrf or "",
        "nodes": parts(request).board.node_rows(),
    }


async def detail_page(request: web.Request) -> web.Response:
    visitor = require_supervisor(request)
    recording_id = _id(request)

    def read(s: Session) -> tuple[Recording, list[dict[str, Any]]]:
        rec = store.get(s, recording_id)
        return rec, [store.listen_view(x) for x in store.listens(s, recording_id)]

    try:
        rec, heard = await in_session(request, read)
    except store.RecordingError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    for listen in heard:
        listen["when"] = _local(listen["at"], request)
    return page(request, "recording.html.j2", {
        **_base(request, visitor), "rec": _row(request, rec, dt.datetime.now(dt.UTC)),
        "listens": heard, "message": request.query.get("msg", "")[:200],
    })  # fmt: skip


async def hold(request: web.Request) -> web.Response:
    """Put the recording on legal hold (``action`` hold, with ``reason``) or release it."""
    form = await request.post()
    visitor = require_actor(request, str(form.get("csrf", "")))
    require_supervisor(request)
    recording_id = _id(request)
    release = form.get("action") == "release"
    reason = str(form.get("reason", ""))

    def write(s: Session) -> None:
        if release:
            store.release(s, recording_id)
        else:
            store.hold(s, recording_id, reason)

    try:
        await in_session(request, write, write=True)
    except store.RecordingError as exc:
        return redirect(f"/recordings/{recording_id}?{urlencode({'msg': str(exc)})}")
    what = "released from legal hold" if release else "on legal hold"
    log.info("recordings: %s put recording %d %s", visitor.principal.name, recording_id, what)
    return redirect(f"/recordings/{recording_id}?{urlencode({'msg': f'Recording {what}.'})}")


# --- the audio --------------------------------------------------------------------------------


def logs_a_listen(request: web.Request) -> bool:
    """Whether this request of the audio counts as one listen: no Range header, or a range
    from byte 0 (a player loading the file; its seeks ask for later bytes)."""
    if request.method == "HEAD":
        return False
    header = request.headers.get("Range")
    if header is None:
        return True
    m = RANGE_START_RE.match(header)
    return m is not None and m.group(1) != "" and int(m.group(1)) == 0


async def _serve(request: web.Request, action: str) -> web.StreamResponse:
    visitor = require_supervisor(request)
    recording_id = _id(request)
    rec = await _recording(request, recording_id)
    if rec.state == "purged":
        raise web.HTTPGone(text=f"recording {recording_id} was purged: its file is gone")
    if rec.state == "missing":
        raise web.HTTPNotFound(text=f"recording {recording_id} has no file (it never closed)")
    if rec.state != "done":
        raise web.HTTPConflict(text=f"recording {recording_id} is still being recorded")
    root = paths.root(parts(request).settings)
    try:
        path = paths.resolve(root, rec.path)
    except paths.PathError as exc:
        log.warning("recordings: recording %d: %s", recording_id, exc)
        raise web.HTTPNotFound(text=f"recording {recording_id} has no file") from None
    if not path.is_file():
        raise web.HTTPNotFound(text=f"recording {recording_id}'s file is not there")
    if action == "download" or logs_a_listen(request):
        user, remote = visitor.principal.name, request.remote or ""
        await in_session(
            request,
            lambda s: store.log_listen(s, recording_id, user, action, remote),
            write=True,
        )
    headers = {"Content-Type": CONTENT_TYPE, "Cache-Control": "private, no-store"}
    if action == "download":
        ext = rec.path.rsplit(".", 1)[-1]
        headers["Content-Disposition"] = f'attachment; filename="recording-{recording_id}.{ext}"'
    return web.FileResponse(path, headers=headers)


async def audio(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "play")


async def download(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "download")


# --- recording a call now, muting it --------------------------------------------------------


def call_status(s: Session, node: str, uniqueid: str, agent: str | None) -> dict[str, Any]:
    """What records the call now, and what may be done: ``recording``/``muted`` (the agent's
    own recordings of it when ``agent`` is given), the policy, and ``can_record`` (on
    demand, nothing recording yet). ``record_channel``: the agent's leg (call log);
    ``mute_channel``: the leg a recording runs on."""
    rule, whose = store.policy_for_call(s, node, uniqueid)
    running = [r for r in store.active(s, node, uniqueid) if agent is None or r.agent == agent]
    leg = s.scalar(
        sa.select(Call.agent_channel).where(Call.node == node, Call.uniqueid == uniqueid)
    )
    return {
        "node": node,
        "uniqueid": uniqueid,
        "policy": rule.policy,
        "whose": whose,
        "recording": bool(running),
        "muted": any(store.muted_now(r) for r in running),
        "can_record": policy.may_start_on_demand(rule, bool(running)) is None,
        "why_not": policy.may_start_on_demand(rule, bool(running)) or "",
        "record_channel": leg or "",
        "mute_channel": running[0].channel if running else "",
    }


def _link(request: web.Request, node: str) -> Any:
    link = parts(request).control.links.get(node)
    if link is None:
        raise control.RecordingControlError(404, f"node {node} is not configured")
    return link


async def start_recording(request: web.Request, status: dict[str, Any], by: str) -> None:
    """Record the call of ``status`` now, for ``by``; RecordingControlError says why not."""
    if not status["can_record"]:
        raise control.RecordingControlError(409, status["why_not"])
    if not status["record_channel"]:
        raise control.RecordingControlError(
            409, "the call log does not know the agent's channel yet: try again in a second"
        )
    code = parts(request).settings.recording.demand_code
    await control.record_now(_link(request, status["node"]), status["record_channel"], by, code)
    log.info("recordings: %s started recording call %s on %s", by, status["uniqueid"],
             status["node"])  # fmt: skip


async def set_mute(request: web.Request, status: dict[str, Any], on: bool, by: str) -> None:
    if not status["recording"]:
        raise control.RecordingControlError(409, "nothing records this call")
    await control.mute(_link(request, status["node"]), status["mute_channel"], on)
    log.info("recordings: %s %s the recording of call %s", by, "muted" if on else "resumed",
             status["uniqueid"])  # fmt: skip


async def record_agent(request: web.Request) -> web.Response:
    """A supervisor records an agent's current call now (its policy must be on demand)."""
    form = await request.post()
    visitor = require_actor(request, str(form.get("csrf", "")))
    require_supervisor(request)
    name = names.normalize(str(form.get("agent", "")).strip())[: names.MAX_CHARS]
    live = next(
        (a for a in parts(request).state.agents.values()
         if a.agent == name and a.state == "on_call" and a.call),
        None,
    )  # fmt: skip
    if live is None or live.call is None:
        msg = f"{name or 'nobody'} is on no call now"
    else:
        node, call = live.node, live.call
        status = await in_session(request, lambda s: call_status(s, node, call, None))
        try:
            await start_recording(request, status, visitor.principal.name)
            msg = f"Recording {name}'s call: it appears in the list in a moment."
        except control.RecordingControlError as exc:
            msg = f"Cannot record {name}'s call: {exc}"
    return redirect(f"/recordings?{urlencode({'msg': msg})}")


# --- the agent's desktop ----------------------------------------------------------------------


def _fail(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def _my_call(request: web.Request, name: str) -> dict[str, Any] | None:
    live = me(request, name)
    if live is None or live.state != "on_call" or not live.call:
        return None
    node, call = live.node, live.call
    return await in_session(request, lambda s: call_status(s, node, call, name))


def _public(status: dict[str, Any] | None) -> dict[str, Any]:
    if status is None:
        return {"ok": True, "call": None}
    keep = ("node", "uniqueid", "policy", "recording", "muted", "can_record")
    return {"ok": True, "call": {k: status[k] for k in keep}}


async def agent_status(request: web.Request) -> web.Response:
    """What records the agent's current call (the desk shows its buttons from this)."""
    visitor = require_agent(request)
    return web.json_response(_public(await _my_call(request, visitor.principal.name)))


async def agent_act(request: web.Request) -> web.Response:
    """``mute`` (with ``on`` true/false) or ``record`` the agent's own current call."""
    visitor, form = await agent_post(request)
    name = visitor.principal.name
    status = await _my_call(request, name)
    if status is None:
        return _fail(409, "you are on no call")
    try:
        if request.match_info["action"] == "record":
            await start_recording(request, status, name)
            status = {**status, "recording": True, "can_record": False}
        else:
            on = form.get("on", "true") == "true"
            await set_mute(request, status, on, name)
            status = {**status, "muted": on}
    except control.RecordingControlError as exc:
        return _fail(exc.status, str(exc))
    return web.json_response(_public(status))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/recordings", list_page),
        web.post("/recordings/record", record_agent),
        web.get(r"/recordings/{id:\d+}", detail_page),
        web.post(r"/recordings/{id:\d+}/hold", hold),
        web.get(r"/recordings/{id:\d+}/audio", audio),
        web.get(r"/recordings/{id:\d+}/download", download),
        web.get("/agent/recording", agent_status),
        web.post(r"/agent/recording/{action:mute|record}", agent_act),
    ]
