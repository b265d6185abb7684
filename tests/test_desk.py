"""The agent's desktop: its gates (an agent sees only their page; CSRF, Origin, passwords),
the screen-pop pushed when a call rings the agent, and documenting the call.

Runs the wallboard's application on a test server against the test database; MQTT messages
are handed to the feed's tap and the live state as the real feed does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import zoneinfo
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import customers as customer_store
from callcenter.crm import dispositions
from callcenter.db.models import Call, QueueVisit
from callcenter.wallboard import accounts
from callcenter.wallboard.app import Wallboard
from callcenter.wallboard.desk.pops import PopTracker
from tests.test_wallboard_support import (
    PASSWORD,
    add_user,
    agent_payload,
    call_payload,
    csrf_of,
    http,
    login,
    wallboard_settings,
)

Client = TestClient[Any, Any]
NODE = "pbx1"


# --- pure: which agent a call rings ------------------------------------------------------------


def test_a_call_pops_once_per_agent_and_is_forgotten_when_closed() -> None:
    t = PopTracker()
    base = {
        "type": "call",
        "node": NODE,
        "uniqueid": "1.1",
        "caller_number": "+12015550101",
        "queue": "sales",
        "queued_at": 100.0,
        "visit": 1,
        "ivr_path": "main:welcome[1]>sales",
    }
    assert t.on_call({**base, "ringing": []}, 1.0) == []
    (pop,) = t.on_call({**base, "ringing": ["alice"]}, 2.0)
    assert (pop.agent, pop.uniqueid, pop.queue, pop.queued_at, pop.at) == (
        "alice",
        "1.1",
        "sales",
        100.0,
        2.0,
    )
    assert t.on_call({**base, "ringing": ["alice"]}, 3.0) == []  # a repeat: no second pop
    (bob,) = t.on_call({**base, "ringing": ["alice", "bob"]}, 4.0)
    assert bob.agent == "bob"
    # Connected without a ring seen (a lost message): still one pop.
    (carol,) = t.on_call({**base, "ringing": [], "agent": "carol", "phase": "connected"}, 5.0)
    assert carol.agent == "carol"
    assert t.on_call({**base, "closed": True}, 6.0) == []
    (again,) = t.on_call({**base, "ringing": ["alice"]}, 7.0)  # a new visit after closing
    assert again.at == 7.0
    for bad in (
        {},
        {"type": "call"},
        {"type": "agent", "node": NODE, "uniqueid": "x"},
        {**base, "ringing": "alice"},
        {**base, "ringing": [1, None]},
    ):
        assert PopTracker().on_call(bad, 1.0) == []


# --- the web gates -----------------------------------------------------------------------------


@pytest.fixture
def desk_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.add_agent(s, name="bob", extension="1002", pin="2468")
        directory.join_queue(s, "sales", "alice")
        accounts.set_agent_password(s, "alice", PASSWORD)
        accounts.set_agent_password(s, "bob", PASSWORD + "-bob")
    return wallboard_settings(settings)


async def agent_login(client: Client, name: str = "alice", password: str = PASSWORD) -> str:
    page = await client.get("/agent/login")
    nonce = csrf_of(await page.text())
    resp = await client.post(
        "/agent/login",
        data={"name": name, "password": password, "csrf": nonce},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/agent"
    desk = await client.get("/agent")
    assert desk.status == 200
    return csrf_of(await desk.text())


async def test_an_agent_reaches_only_the_agent_page(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(desk_settings, clean_db) as (_, client):
        # Not logged in: the agent's login page (HTML), 401 (JSON and the stream).
        resp = await client.get("/agent", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/agent/login")
        assert (await client.get("/agent/events")).status == 401
        # Wrong password, unknown agent, a supervisor's password: refused alike.
        page = await client.get("/agent/login")
        nonce = csrf_of(await page.text())
        for name, password in (
            ("alice", "wrong-password"),
            ("nobody", PASSWORD),
            ("sam", PASSWORD),
        ):
            resp = await client.post(
                "/agent/login", data={"name": name, "password": password, "csrf": nonce}
            )
            assert resp.status == 401, name
            nonce = csrf_of(await resp.text())  # each login page binds a new nonce
        csrf = await agent_login(client)
        # The supervisors' board, its API, its stream and metrics are not for an agent.
        for path in ("/board", "/history"):
            resp = await client.get(path, allow_redirects=False)
            assert (resp.status, resp.headers.get("Location")) == (303, "/agent"), path
        for path in ("/api/v1/board", "/api/v1/agents", "/events", "/metrics"):
            resp = await client.get(path, headers={"Accept": "application/json"})
            assert resp.status == 403, path
        resp = await client.post(
            "/agents/pbx1/bob/pause", data={"csrf": csrf, "reason": "x"}, allow_redirects=False
        )
        assert resp.status in (303, 403), resp.status
        # A post without the CSRF token, or from another origin, is refused.
        no_token = await client.post("/agent/state/ready", json={})
        assert no_token.status == 403
        foreign = await client.post(
            "/agent/state/ready", json={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status == 403
        # A supervisor's session does not open the agent's page.
    async with http(desk_settings, clean_db) as (_, client):
        await login(client)
        resp = await client.get("/agent", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/agent/login")


async def read_events(resp: Any, wanted: int, timeout: float = 3.0) -> list[tuple[str, Any]]:
    """The first ``wanted`` server-sent events of a stream."""
    out: list[tuple[str, Any]] = []
    event = ""
    async with asyncio.timeout(timeout):
        while len(out) < wanted:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    return out


async def test_the_ring_pops_the_caller_with_their_history_and_the_call_is_documented(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    number = "+12015550101"
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    with Session(clean_db) as s, s.begin():
        customer = customer_store.create_customer(
            s, Normaliser("US"), name="Carol Caller", phones=[number]
        )
        customer_id = customer.id
        dispositions.add_code(
            s, dispositions.Owner(queue="sales"), "sold", label="Sold", effect="resolves"
        )
        s.add(
            Call(
                node=NODE,
                uniqueid="0.9",
                linkedid="0.9",
                direction="inbound",
                caller_number=number,
                started_at=earlier,
                queue="sales",
                agent="bob",
                outcome="answered",
            )
        )
    async with http(desk_settings, clean_db) as (wb, client):
        csrf = await agent_login(client)
        stream = await client.get("/agent/events")
        assert stream.status == 200
        state = wb.parts.state
        tap = wb.parts.desk.tap
        prefix = desk_settings.mqtt.topic_prefix
        for topic, payload in (
            (f"{prefix}/{NODE}/agents/alice", agent_payload(NODE, "alice", "ringing")),
            (
                f"{prefix}/{NODE}/calls/2.1",
                call_payload(
                    NODE,
                    "2.1",
                    caller_number=number,
                    ringing=["alice"],
                    queued_at=1.0,
                    visit=1,
                    ivr_path="main:welcome[1]>sales",
                ),
            ),
        ):
            tap(topic, payload)
            state.apply(topic, payload)
        got = await read_events(stream, 3)
        kinds = [k for k, _ in got]
        assert kinds == ["state", "pop", "history"], kinds
        pop, history = got[1][1], got[2][1]
        assert (pop["uniqueid"], pop["caller_number"], pop["queue"]) == ("2.1", number, "sales")
        assert history["customer"]["name"] == "Carol Caller"
        assert [c["uniqueid"] for c in history["calls"]] == ["0.9"]
        assert max(wb.parts.desk.latencies) < 0.15
        # The call is answered: the call log has the visit, and alice documents it.
        with Session(clean_db) as s, s.begin():
            now = dt.datetime.now(dt.UTC)
            s.add(
                Call(
                    node=NODE,
                    uniqueid="2.1",
                    linkedid="2.1",
                    direction="inbound",
                    caller_number=number,
                    started_at=now,
                    queue="sales",
                    agent="alice",
                    answered_at=now,
                    outcome="answered",
                )
            )
            s.add(
                QueueVisit(
                    node=NODE,
                    uniqueid="2.1",
                    linkedid="2.1",
                    visit=1,
                    queue="sales",
                    agent="alice",
                    queued_at=now,
                    answered_at=now,
                    outcome="answered",
                )
            )
        codes = await client.get(
            "/agent/codes",
            params={"node": NODE, "uniqueid": "2.1"},
            headers={"Accept": "application/json"},
        )
        assert [c["code"] for c in (await codes.json())["codes"]] == ["sold"]
        bad = await client.post(
            "/agent/dispose", json={"csrf": csrf, "node": NODE, "uniqueid": "2.1", "code": "nope"}
        )
        assert bad.status == 400
        assert "nope" in (await bad.json())["error"]
        case = await client.post(
            "/agent/case",
            json={
                "csrf": csrf,
                "customer_id": customer_id,
                "category": "complaint",
                "subject": "late delivery",
                "node": NODE,
                "uniqueid": "2.1",
            },
        )
        assert case.status == 200, await case.text()
        number_of_case = (await case.json())["case"]["number"]
        done = await client.post(
            "/agent/dispose",
            json={
                "csrf": csrf,
                "node": NODE,
                "uniqueid": "2.1",
                "code": "sold",
                "notes": "wants a refund",
                "case": number_of_case,
            },
        )
        assert done.status == 200, await done.text()
        # A case for an unknown customer: a clear error, nothing written.
        ghost = await client.post(
            "/agent/case", json={"csrf": csrf, "customer_id": 999999, "category": "question"}
        )
        assert ghost.status == 400
        stream.close()
    with Session(clean_db) as s:
        rows = s.execute(
            sa.text("SELECT agent, code, notes FROM call_dispositions WHERE uniqueid = '2.1'")
        ).all()
        assert [tuple(r) for r in rows] == [("alice", "sold", "wants a refund")]
        cases = s.execute(sa.text("SELECT count(*) FROM cases")).scalar()
        assert cases == 1
    # The same number calls again: the pop's history shows the open case and the last call's
    # disposition.
    wb2 = Wallboard(desk_settings, engine=clean_db, links={})
    history = await asyncio.to_thread(wb2.parts.desk.history, NODE, "3.1", number)
    assert [c["number"] for c in history["open_cases"]] == [number_of_case]
    last = next(c for c in history["calls"] if c["uniqueid"] == "2.1")
    assert last["dispositions"][0]["code"] == "sold"
    assert last["dispositions"][0]["case"] == number_of_case


class FakeLink:
    """Records the actions AgentControl sends; answers Success."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def send(self, action: dict[str, str], **_: Any) -> Any:
        self.sent.append(dict(action))

        class Reply:
            ok = True
            message = ""

        return Reply()


async def test_a_queue_that_needs_a_disposition_keeps_the_agent_paused_until_saved(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    with Session(clean_db) as s, s.begin():
        directory.update_queue(s, "sales", disposition_required=True)
        dispositions.add_code(s, dispositions.Owner(queue="sales"), "sold")
        now = dt.datetime.now(dt.UTC)
        s.add(
            Call(
                node=NODE,
                uniqueid="4.1",
                linkedid="4.1",
                direction="inbound",
                caller_number="+12015550101",
                started_at=now,
                queue="sales",
                agent="alice",
                answered_at=now,
                outcome="answered",
            )
        )
        s.add(
            QueueVisit(
                node=NODE,
                uniqueid="4.1",
                linkedid="4.1",
                visit=1,
                queue="sales",
                agent="alice",
                queued_at=now,
                answered_at=now,
                outcome="answered",
            )
        )
    link = FakeLink()
    async with http(desk_settings, clean_db, links={NODE: link}) as (wb, client):  # type: ignore[dict-item]
        csrf = await agent_login(client)
        prefix = desk_settings.mqtt.topic_prefix
        topic = f"{prefix}/{NODE}/agents/alice"

        def feed(payload: bytes) -> None:
            wb.parts.desk.tap(topic, payload)
            wb.parts.state.apply(topic, payload)

        feed(agent_payload(NODE, "alice", "on_call", call="4.1", call_queue="sales"))
        feed(agent_payload(NODE, "alice", "wrap_up"))
        for _ in range(50):
            if link.sent:
                break
            await asyncio.sleep(0.05)
        assert link.sent == [
            {
                "Action": "QueuePause",
                "Interface": "PJSIP/alice",
                "Paused": "true",
                "Reason": "documenting",
            }
        ]
        feed(agent_payload(NODE, "alice", "paused", reason="documenting"))
        done = await client.post(
            "/agent/dispose", json={"csrf": csrf, "node": NODE, "uniqueid": "4.1", "code": "sold"}
        )
        assert done.status == 200, await done.text()
        assert link.sent[-1] == {
            "Action": "QueuePause",
            "Interface": "PJSIP/alice",
            "Paused": "false",
        }
        # A call already documented, or of a queue without the rule: no pause.
        link.sent.clear()
        feed(agent_payload(NODE, "alice", "on_call", call="4.1", call_queue="sales"))
        feed(agent_payload(NODE, "alice", "available"))
        await asyncio.sleep(0.3)
        assert link.sent == []


async def test_a_callback_becomes_a_contact_of_the_callback_campaign_for_its_agent(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    from callcenter.campaigns import scheduling, store
    from callcenter.db.models_campaigns import Contact

    with Session(clean_db) as s, s.begin():
        store.add_campaign(s, "callbacks", mode="preview", queue="sales", region="US")
        store.start_campaign(
            s, "callbacks", dt.datetime.now(dt.UTC), customer_channel="Local/{number}@x"
        )
    async with http(desk_settings, clean_db) as (_, client):
        csrf = await agent_login(client)
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).isoformat()
        for body, error in (
            ({"number": "12", "at": soon, "for": "me"}, "number"),
            ({"number": "+12015550177", "at": "yesterday", "for": "me"}, "time"),
            ({"number": "+12015550177", "at": "2001-01-01T10:00+00:00", "for": "me"}, "passed"),
        ):
            bad = await client.post("/agent/callback", json={"csrf": csrf, **body})
            assert bad.status == 400
            assert error in (await bad.json())["error"]
        ok = await client.post(
            "/agent/callback",
            json={
                "csrf": csrf,
                "number": "+12015550177",
                "at": soon,
                "for": "me",
                "note": "after 5",
            },
        )
        assert ok.status == 200, await ok.text()
    with Session(clean_db) as s, s.begin():
        (contact,) = s.scalars(sa.select(Contact)).all()
        assert contact.phone == "+12015550177"
        assert contact.fields["callback_for"] == "alice"
        assert contact.fields["note"] == "after 5"
        campaign = store.get_campaign(s, "callbacks")
        # Tomorrow at noon in the number's own time zone (New York): inside the window.
        ny = zoneinfo.ZoneInfo("America/New_York")
        later = (dt.datetime.now(ny) + dt.timedelta(days=1)).replace(hour=12, minute=0)
        # Only alice's preview gets it, once it is due; bob's does not.
        assert (
            scheduling.preview_take(s, campaign, "bob", now=later, dialer="t", site_tz="UTC")
            is None
        )
        shown = scheduling.preview_take(s, campaign, "alice", now=later, dialer="t", site_tz="UTC")
        assert shown is not None
        assert shown.phone == "+12015550177"


async def test_transfer_to_a_queue_or_an_agent_over_ami(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    with Session(clean_db) as s, s.begin():
        now = dt.datetime.now(dt.UTC)
        s.add(
            Call(
                node=NODE,
                uniqueid="5.1",
                linkedid="5.1",
                direction="inbound",
                caller_number="+12015550101",
                started_at=now,
                queue="sales",
                agent="alice",
                agent_channel="PJSIP/1001-00000007",
                answered_at=now,
            )
        )
    link = FakeLink()
    async with http(desk_settings, clean_db, links={NODE: link}) as (wb, client):  # type: ignore[dict-item]
        csrf = await agent_login(client)
        idle = await client.post("/agent/transfer", json={"csrf": csrf, "queue": "sales"})
        assert idle.status == 409  # not on a call
        topic = f"{desk_settings.mqtt.topic_prefix}/{NODE}/agents/alice"
        wb.parts.state.apply(
            topic, agent_payload(NODE, "alice", "on_call", call="5.1", call_queue="sales")
        )
        for body, status in (
            ({"queue": "nope"}, 400),
            ({"queue": "sales", "agent": "bob"}, 400),
            ({"agent": "nobody"}, 400),
        ):
            bad = await client.post("/agent/transfer", json={"csrf": csrf, **body})
            assert bad.status == status, body
        assert link.sent == []
        ok = await client.post("/agent/transfer", json={"csrf": csrf, "queue": "sales"})
        assert ok.status == 200, await ok.text()
        ok = await client.post(
            "/agent/transfer", json={"csrf": csrf, "agent": "bob", "attended": "true"}
        )
        assert ok.status == 200, await ok.text()
    assert link.sent == [
        {
            "Action": "BlindTransfer",
            "Channel": "PJSIP/1001-00000007",
            "Context": "queue-transfer",
            "Exten": "sales",
        },
        {
            "Action": "Atxfer",
            "Channel": "PJSIP/1001-00000007",
            "Context": "agent-dial",
            "Exten": "1002",
        },
    ]


async def test_the_history_page_shows_the_days_documentation_and_cases(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    now = dt.datetime.now(dt.UTC)
    with Session(clean_db) as s, s.begin():
        s.execute(
            sa.text(
                "INSERT INTO call_dispositions (node, uniqueid, visit, queue, agent, notes, at,"
                " undocumented_at) VALUES ('pbx1', '7.1', 1, 'sales', 'alice', '', :t, :t)"
            ),
            {"t": now},
        )
    async with http(desk_settings, clean_db) as (_, client):
        await login(client)
        page = await client.get("/history")
        assert page.status == 200
        html = await page.text()
    assert "Documentation and cases" in html
    row = html[html.index("Calls not documented") :]
    assert '<td class="num">1</td>' in row[:200]
    assert "alice 1" in row[:400]


async def test_the_history_of_a_number_has_the_dialers_calls_to_it(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    """The dialer's calls carry the campaign's caller ID: they are found through the attempt
    that dialled the number."""
    import uuid

    from callcenter.campaigns import store
    from callcenter.db.models_campaigns import CampaignAttempt

    number = "+12015550188"
    now = dt.datetime.now(dt.UTC)
    channel = str(uuid.uuid4())
    with Session(clean_db) as s, s.begin():
        c = store.add_campaign(s, "renewals", mode="progressive", queue="sales", region="US")
        s.add(
            CampaignAttempt(
                campaign_id=c.id,
                phone=number,
                attempt_no=1,
                mode="progressive",
                channel_id=channel,
                phase="ended",
                outcome="connected",
                created_at=now,
                day=now.date(),
            )
        )
        s.add(
            Call(
                node=NODE,
                uniqueid=channel,
                linkedid=channel,
                direction="outbound",
                caller_number="+12015550100",
                started_at=now - dt.timedelta(hours=1),
                queue="sales",
                agent="bob",
                outcome="answered",
            )
        )
        s.add(
            Call(
                node=NODE,
                uniqueid="9.1",
                linkedid="9.1",
                direction="inbound",
                caller_number="2015550188",
                started_at=now - dt.timedelta(hours=2),
                queue="sales",
                agent="alice",
                outcome="answered",
            )
        )
    wb = Wallboard(desk_settings, engine=clean_db, links={})
    history = await asyncio.to_thread(wb.parts.desk.history, NODE, "10.1", "2015550188")
    assert [c["uniqueid"] for c in history["calls"]] == [channel, "9.1"]
    assert history["calls"][0]["direction"] == "outbound"


async def test_a_callback_code_books_the_callback_with_the_disposition_or_nothing(
    desk_settings: config.Settings, clean_db: Engine
) -> None:
    from callcenter.campaigns import store
    from callcenter.db.models_campaigns import Contact
    from callcenter.db.models_crm import CallDisposition

    now = dt.datetime.now(dt.UTC)
    with Session(clean_db) as s, s.begin():
        store.add_campaign(s, "callbacks", mode="preview", queue="sales", region="US")
        dispositions.add_code(s, dispositions.Owner(queue="sales"), "later", effect="callback")
        s.add(
            Call(
                node=NODE,
                uniqueid="8.1",
                linkedid="8.1",
                direction="inbound",
                caller_number="2015550199",
                started_at=now,
                queue="sales",
                agent="alice",
                answered_at=now,
                outcome="answered",
            )
        )
        s.add(
            QueueVisit(
                node=NODE,
                uniqueid="8.1",
                linkedid="8.1",
                visit=1,
                queue="sales",
                agent="alice",
                queued_at=now,
                answered_at=now,
                outcome="answered",
            )
        )
    async with http(desk_settings, clean_db) as (_, client):
        csrf = await agent_login(client)
        body = {
            "csrf": csrf,
            "node": NODE,
            "uniqueid": "8.1",
            "code": "later",
            "callback_number": "2015550199",
        }
        missing = await client.post("/agent/dispose", json=body)
        assert missing.status == 400
        assert "books a callback" in (await missing.json())["error"]
        with Session(clean_db) as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(CallDisposition)) == 0
        at = (now + dt.timedelta(hours=2)).isoformat()
        done = await client.post("/agent/dispose", json={**body, "callback_at": at})
        assert done.status == 200, await done.text()
        assert (await done.json())["disposition"]["callback"]["phone"] == "+12015550199"
    with Session(clean_db) as s:
        (contact,) = s.scalars(sa.select(Contact)).all()
        assert (contact.phone, contact.fields["callback_for"]) == ("+12015550199", "alice")
        assert contact.next_attempt_at is not None
        assert abs((contact.next_attempt_at - (now + dt.timedelta(hours=2))).total_seconds()) < 1
