"""The recordings on the web: who may (supervisors only; agents, screens and API tokens not),
playing with HTTP ranges (206, 416), the listens log, legal hold, no way out of the
recordings directory, and the agent desktop's mute and record buttons over AMI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory, tokens
from callcenter.campaigns import store as campaign_store
from callcenter.db.models import Call
from callcenter.db.models_campaigns import CampaignAttempt
from callcenter.db.models_quality import Recording, RecordingListen
from callcenter.recordings import store
from callcenter.wallboard import accounts
from tests.test_recordings_bridge import closed_wav
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    add_user,
    agent_payload,
    csrf_of,
    http,
    login,
    wallboard_settings,
)

Client = TestClient[Any, Any]
NODE = "pbx1"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def rec_settings(settings: config.Settings, clean_db: Engine, tmp_path: Path) -> config.Settings:
    add_user(clean_db)
    add_user(clean_db, "ada", "admin")
    with Session(clean_db) as session, session.begin():
        directory.add_queue(session, "sales", record_policy="on_demand")
        directory.add_queue(session, "care", record_policy="all")
        directory.add_agent(session, name="alice", extension="1001", pin="2468")
        directory.join_queue(session, "sales", "alice")
        accounts.set_agent_password(session, "alice", PASSWORD)
    return dataclasses.replace(
        wallboard_settings(settings),
        recording=config.RecordingSettings(dir=str(tmp_path / "recordings")),
    )


def add_recording(
    engine: Engine,
    root: Path,
    *,
    path: str = "2026/12/01/1.1_1.2.wav",
    seconds: float = 3.0,
    state: str = "done",
    started: dt.datetime = T0,
    agent: str = "alice",
    queue: str = "care",
    uniqueid: str = "1.1",
    write: bool = True,
    **kw: Any,
) -> int:
    size = closed_wav(root / path, seconds) if state == "done" and write else None
    with Session(engine) as s, s.begin():
        rec = Recording(
            node=NODE, uniqueid=uniqueid, linkedid=uniqueid, visit=1, queue=queue,
            agent=agent, channel="PJSIP/1001-00000001", path=path, reason="policy",
            state=state, started_at=started,
            ended_at=started + dt.timedelta(seconds=seconds) if state != "recording" else None,
            duration_ms=int(seconds * 1000) if state == "done" else None, size_bytes=size,
            sha256="ab" * 32 if state == "done" else None, **kw,
        )  # fmt: skip
        s.add(rec)
        s.flush()
        return rec.id


def listens(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(RecordingListen.user_name, RecordingListen.action).order_by(
                RecordingListen.id
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def agent_login(client: Client, name: str = "alice") -> str:
    page = await client.get("/agent/login")
    resp = await client.post(
        "/agent/login",
        data={"name": name, "password": PASSWORD, "csrf": csrf_of(await page.text())},
        allow_redirects=False,
    )
    assert resp.status == 303
    return csrf_of(await (await client.get("/agent")).text())


# --- who may ----------------------------------------------------------------------------------


async def test_only_supervisors_reach_recordings(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    rid = add_recording(clean_db, tmp_path / "recordings")
    pages = ["/recordings", f"/recordings/{rid}", f"/recordings/{rid}/audio",
             f"/recordings/{rid}/download"]  # fmt: skip
    tv = add_token(clean_db, "lobby")
    with Session(clean_db) as s, s.begin():
        api_read = tokens.add_token(s, "bi", "read")[1]
        api_write = tokens.add_token(s, "crm", "write")[1]
    async with http(rec_settings, clean_db) as (_, client):
        for path in pages:
            resp = await client.get(path, allow_redirects=False)
            assert (resp.status, resp.headers["Location"]) == (303, "/login"), path
            for raw in (tv, api_read, api_write):
                resp = await client.get(path, headers={"Authorization": f"Bearer {raw}"})
                assert resp.status == 403, (path, raw[:6])
    async with http(rec_settings, clean_db) as (_, client):
        assert (await client.get(f"/tv?token={tv}", allow_redirects=False)).status == 303
        board = await (await client.get("/board")).text()
        assert 'href="/recordings"' not in board
        for path in pages:
            assert (await client.get(path)).status == 403, path
    # An agent never reaches a recording: the agent's desktop instead, never the audio.
    async with http(rec_settings, clean_db) as (_, client):
        csrf = await agent_login(client)
        for path in pages:
            resp = await client.get(path, allow_redirects=False)
            assert (resp.status, resp.headers["Location"]) == (303, "/agent"), path
        resp = await client.post(f"/recordings/{rid}/hold", allow_redirects=False,
                                 data={"csrf": csrf, "action": "hold", "reason": "x"})  # fmt: skip
        assert resp.status in (303, 403)
        assert resp.headers.get("Location") != f"/recordings/{rid}"
    assert listens(clean_db) == []
    for user in ("sam", "ada"):
        async with http(rec_settings, clean_db) as (_, client):
            await login(client, user)
            assert 'href="/recordings"' in await (await client.get("/board")).text()
            for path in pages[:2]:
                assert (await client.get(path)).status == 200, (user, path)


# --- playing ------------------------------------------------------------------------------------


async def test_ranges_seek_and_the_listens_log(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    rid = add_recording(clean_db, root, seconds=3.0, muted_ms=1500, mutes=1)
    whole = (root / "2026/12/01/1.1_1.2.wav").read_bytes()
    async with http(rec_settings, clean_db) as (_, client):
        await login(client)
        detail = await (await client.get(f"/recordings/{rid}")).text()
        assert f'src="/recordings/{rid}/audio"' in detail
        assert f'href="/qa/evaluate/{rid}"' in detail
        assert "0:01 in all" in detail  # muted time said, so a silence is understood
        # A player loads the file (range from 0): one listen.
        resp = await client.get(f"/recordings/{rid}/audio", headers={"Range": "bytes=0-"})
        assert resp.status == 206
        assert resp.headers["Content-Type"] == "audio/wav"
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert await resp.read() == whole
        # Seeking into the middle: bytes there, no new listen.
        mid = len(whole) // 2
        resp = await client.get(f"/recordings/{rid}/audio",
                                headers={"Range": f"bytes={mid}-{mid + 999}"})  # fmt: skip
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {mid}-{mid + 999}/{len(whole)}"
        assert await resp.read() == whole[mid : mid + 1000]
        # Past the end: 416 with the length.
        resp = await client.get(f"/recordings/{rid}/audio",
                                headers={"Range": f"bytes={len(whole) + 10}-"})  # fmt: skip
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{len(whole)}"
        # A whole request: a listen; a download: a download.
        resp = await client.get(f"/recordings/{rid}/audio")
        assert resp.status == 200
        assert await resp.read() == whole
        resp = await client.get(f"/recordings/{rid}/download")
        assert resp.status == 200
        assert resp.headers["Content-Disposition"] == f'attachment; filename="recording-{rid}.wav"'
        assert listens(clean_db) == [("sam", "play"), ("sam", "play"), ("sam", "download")]
        detail = await (await client.get(f"/recordings/{rid}")).text()
        assert detail.count("<td>sam</td>") == 3


async def test_files_are_never_served_from_outside_the_directory(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    secret = tmp_path / "secret.wav"
    closed_wav(secret, 1.0)
    (root / "2026" / "12").mkdir(parents=True)
    (root / "2026" / "12" / "02").symlink_to(tmp_path)  # a link pointing out
    evil = [
        add_recording(clean_db, root, path="../secret.wav", write=False, uniqueid="9.1"),
        add_recording(clean_db, root, path="2026/12/02/secret.wav", write=False, uniqueid="9.2"),
    ]
    gone = add_recording(clean_db, root, path="2026/12/01/2.1_2.2.wav", state="purged",
                         uniqueid="2.1")  # fmt: skip
    missing = add_recording(clean_db, root, path="2026/12/01/3.1_3.2.wav", state="missing",
                            uniqueid="3.1")  # fmt: skip
    live = add_recording(clean_db, root, path="2026/12/01/4.1_4.2.wav", state="recording",
                         uniqueid="4.1")  # fmt: skip
    async with http(rec_settings, clean_db) as (_, client):
        await login(client)
        for rid in evil:
            resp = await client.get(f"/recordings/{rid}/audio")
            assert resp.status == 404, rid
            assert await resp.read() != secret.read_bytes()
        assert (await client.get(f"/recordings/{gone}/audio")).status == 410
        assert (await client.get(f"/recordings/{missing}/audio")).status == 404
        assert (await client.get(f"/recordings/{live}/audio")).status == 409
        for path in ("/recordings/99999/audio", "/recordings/99999", "/recordings/../etc/passwd",
                     "/recordings/%2e%2e/secret.wav/audio"):  # fmt: skip
            assert (await client.get(path)).status == 404, path
    assert listens(clean_db) == []


# --- the list, legal hold -----------------------------------------------------------------------


async def test_the_list_filters_and_pages_newest_first(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    for i in range(60):
        add_recording(clean_db, root, path=f"2026/12/01/{i}.1_{i}.2.wav", seconds=0.1,
                      started=T0 + dt.timedelta(minutes=i), uniqueid=f"{i}.1",
                      agent="alice" if i % 2 else "bob")  # fmt: skip
    async with http(rec_settings, clean_db) as (_, client):
        await login(client)
        html = await (await client.get("/recordings")).text()
        ids = [int(x) for x in re.findall(r'<tr data-id="(\d+)"', html)]
        assert ids == list(range(60, 10, -1))
        older = re.search(r'id="rec-older" href="([^"]+)"', html)
        assert older is not None
        html = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
        ids = [int(x) for x in re.findall(r'<tr data-id="(\d+)"', html)]
        assert ids == list(range(10, 0, -1))
        assert 'id="rec-older"' not in html
        html = await (await client.get("/recordings?agent=bob&day=2026-12-01")).text()
        ids = [int(x) for x in re.findall(r'<tr data-id="(\d+)"', html)]
        assert len(ids) == 30
        assert all(i % 2 == 1 for i in ids)
        assert (
            "No recordings match" in await (await client.get("/recordings?day=2026-11-30")).text()
        )
        for bad in ("queue=NOT+A+QUEUE", "day=yesterday", "before=xyz"):
            assert (await client.get(f"/recordings?{bad}")).status == 400, bad


async def test_legal_hold_from_the_page(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    rid = add_recording(clean_db, tmp_path / "recordings")
    async with http(rec_settings, clean_db) as (_, client):
        await login(client)
        csrf = csrf_of(await (await client.get(f"/recordings/{rid}")).text())
        no_csrf = await client.post(f"/recordings/{rid}/hold",
                                    data={"action": "hold", "reason": "claim 7"})  # fmt: skip
        assert no_csrf.status == 403
        form = {"csrf": csrf, "action": "hold", "reason": "claim 7"}
        resp = await client.post(f"/recordings/{rid}/hold", data=form)
        assert resp.status == 200
        assert "On legal hold: claim 7" in await resp.text()
        with Session(clean_db) as s:
            assert store.get(s, rid).legal_hold
        resp = await client.post(f"/recordings/{rid}/hold",
                                 data={"csrf": csrf, "action": "release"})  # fmt: skip
        assert "Not on hold" in await resp.text()
        resp = await client.post(f"/recordings/{rid}/hold",
                                 data={"csrf": csrf, "action": "hold", "reason": " "})  # fmt: skip
        assert "needs a reason" in await resp.text()


# --- acting on a live call ----------------------------------------------------------------------


class FakeLink:
    """Records the actions sent over AMI; answers Success."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def send(self, action: dict[str, str], **_: Any) -> Any:
        self.sent.append(dict(action))

        class Reply:
            ok = True
            message = ""

        return Reply()


def on_call(engine: Engine, uniqueid: str, queue: str) -> None:
    with Session(engine) as s, s.begin():
        s.add(Call(node=NODE, uniqueid=uniqueid, linkedid=uniqueid, direction="inbound",
                   caller_number="+12015550101", started_at=T0, queue=queue, agent="alice",
                   agent_channel="PJSIP/1001-00000009", answered_at=T0))  # fmt: skip


async def test_the_agent_records_on_demand_and_mutes(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    on_call(clean_db, "5.1", "sales")  # sales records on demand
    link = FakeLink()
    async with http(rec_settings, clean_db, links={NODE: link}) as (wb, client):  # type: ignore[dict-item]
        csrf = await agent_login(client)
        idle = await client.get("/agent/recording")
        assert (await idle.json()) == {"ok": True, "call": None}
        assert (await client.post("/agent/recording/record", json={"csrf": csrf})).status == 409
        topic = f"{rec_settings.mqtt.topic_prefix}/{NODE}/agents/alice"
        wb.parts.state.apply(topic, agent_payload(NODE, "alice", "on_call", call="5.1",
                                                  call_queue="sales"))  # fmt: skip
        status = (await (await client.get("/agent/recording")).json())["call"]
        assert status == {"node": NODE, "uniqueid": "5.1", "policy": "on_demand",
                          "recording": False, "muted": False, "can_record": True}  # fmt: skip
        # Nothing records yet: mute says so, sends nothing.
        assert (await client.post("/agent/recording/mute",
                                  json={"csrf": csrf, "on": "true"})).status == 409  # fmt: skip
        assert (await client.post("/agent/recording/record", json={})).status == 403  # no CSRF
        assert link.sent == []
        resp = await client.post("/agent/recording/record", json={"csrf": csrf})
        assert resp.status == 200, await resp.text()
        assert link.sent == [
            {"Action": "Setvar", "Channel": "PJSIP/1001-00000009",
             "Variable": "REC_REQUESTED_BY", "Value": "alice"},
            {"Action": "PlayDTMF", "Channel": "PJSIP/1001-00000009", "Digit": "*",
             "Duration": "100", "Receive": "yes"},
            {"Action": "PlayDTMF", "Channel": "PJSIP/1001-00000009", "Digit": "9",
             "Duration": "100", "Receive": "yes"},
        ]  # fmt: skip
        # The bridge made the row (here: the test); now it records, and may be muted.
        add_recording(clean_db, tmp_path / "recordings", state="recording", queue="sales",
                      uniqueid="5.1", path="2026/12/01/5.1_5.2.wav")  # fmt: skip
        link.sent.clear()
        status = (await (await client.get("/agent/recording")).json())["call"]
        assert (status["recording"], status["can_record"]) == (True, False)
        assert (await client.post("/agent/recording/record", json={"csrf": csrf})).status == 409
        resp = await client.post("/agent/recording/mute", json={"csrf": csrf, "on": "true"})
        assert (await resp.json())["call"]["muted"] is True
        resp = await client.post("/agent/recording/mute", json={"csrf": csrf, "on": "false"})
        assert (await resp.json())["call"]["muted"] is False
        assert [(a["Action"], a["Channel"], a["Direction"], a["State"]) for a in link.sent] == [
            ("MixMonitorMute", "PJSIP/1001-00000001", "both", "1"),
            ("MixMonitorMute", "PJSIP/1001-00000001", "both", "0"),
        ]
        # The agent still gets no audio.
        resp = await client.get("/recordings/1/audio", allow_redirects=False)
        assert resp.status == 303


async def test_a_supervisor_records_an_agents_call_and_the_policy_decides(
    rec_settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    on_call(clean_db, "6.1", "care")  # care records everything: nothing to start on demand
    link = FakeLink()
    async with http(rec_settings, clean_db, links={NODE: link}) as (wb, client):  # type: ignore[dict-item]
        csrf = await login(client)
        resp = await client.post("/recordings/record", data={"csrf": csrf, "agent": "alice"})
        assert "alice is on no call" in await resp.text()
        topic = f"{rec_settings.mqtt.topic_prefix}/{NODE}/agents/alice"
        wb.parts.state.apply(topic, agent_payload(NODE, "alice", "on_call", call="6.1",
                                                  call_queue="care"))  # fmt: skip
        resp = await client.post("/recordings/record", data={"csrf": csrf, "agent": "alice"})
        assert "policy is all, not on demand" in await resp.text()
        assert link.sent == []
        # A campaign's call follows the campaign's policy, not its queue's.
        with Session(clean_db) as s, s.begin():
            c = campaign_store.add_campaign(s, "spring", mode="progressive", queue="care",
                                            record_policy="on_demand")  # fmt: skip
            s.add(CampaignAttempt(campaign_id=c.id, channel_id="6.1", phone="+12015550101",
                                  attempt_no=1, mode="progressive", phase="connected",
                                  outcome="connected", dialer="t", created_at=T0,
                                  day=T0.date()))  # fmt: skip
        resp = await client.post("/recordings/record", data={"csrf": csrf, "agent": "alice"})
        assert "Recording alice&#39;s call" in await resp.text()
        assert [a["Action"] for a in link.sent] == ["Setvar", "PlayDTMF", "PlayDTMF"]
        assert link.sent[0]["Value"] == "sam"
