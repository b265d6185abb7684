"""The CRM's REST API against the real database: customers, cases, calls and dispositions
under /api/v1, each answer checked against values set up here; who may read and write (API
tokens by scope, a supervisor's session with its CSRF token; never a TV token nor an agent);
keyset pages; hostile input answered with a 4xx and one line, never a 5xx (also a seeded
property-based run over every endpoint); every answer as the OpenAPI document says."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import urllib.parse
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory, tokens
from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.crm import documentation
from callcenter.crm.dispositions import Owner, add_code
from callcenter.db.models import Call
from callcenter.wallboard import accounts
from callcenter.wallboard.openapi import SCHEMAS, crm_paths
from tests.calllog import with_visit
from tests.conftest import count
from tests.test_wallboard_api import conforms
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    add_user,
    csrf_of,
    http,
    login,
    wallboard_settings,
)

UTC = dt.UTC
Client = TestClient[Any, Any]
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
US = Normaliser("US")


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).isoformat()


@pytest.fixture
def crm_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    """Supervisor sam; queues sales (codes sale, later) and support (fixed); agents alice
    (with a desktop password) and bob."""
    add_user(clean_db)
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_queue(s, "support")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.add_agent(s, name="bob", extension="1002", pin="2468")
        accounts.set_agent_password(s, "alice", PASSWORD)
        add_code(s, Owner(queue="sales"), "sale", label="Sold", effect="resolves")
        add_code(s, Owner(queue="sales"), "later", effect="callback")
        add_code(s, Owner(queue="support"), "fixed", effect="resolves")
    return wallboard_settings(settings)


def bearer(engine: Engine, name: str, scope: str) -> dict[str, str]:
    with Session(engine) as s, s.begin():
        raw = tokens.add_token(s, name, scope)[1]
    return {"Authorization": f"Bearer {raw}"}


def add_call(
    engine: Engine,
    uniqueid: str,
    *,
    caller: str,
    started: dt.datetime,
    queue: str = "sales",
    agent: str | None = "alice",
    node: str = "pbx1",
) -> None:
    """A call and its queue visit as the bridge writes them: answered by ``agent`` after 10
    seconds' wait and 120 of talk, or abandoned (no agent)."""
    answered = started + dt.timedelta(seconds=15) if agent else None
    call = Call(
        node=node, uniqueid=uniqueid, linkedid=uniqueid, caller_number=caller,
        started_at=started, queued_at=started + dt.timedelta(seconds=5), answered_at=answered,
        ended_at=started + dt.timedelta(seconds=135), wait_seconds=10.0,
        talk_seconds=120.0 if agent else None, queue=queue, agent=agent,
        outcome="answered" if agent else "abandoned", wrapup_seconds=30.0,
    )  # fmt: skip
    with Session(engine) as s, s.begin():
        s.add_all(with_visit([call]))


def add_customer(engine: Engine, name: str, *phones: str, crm_id: str | None = None) -> int:
    with Session(engine) as s, s.begin():
        return customer_store.create_customer(s, US, name=name, phones=phones, crm_id=crm_id).id


async def error_of(resp: Any, status: int) -> str:
    """The one-line error of a refused request."""
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}
    assert "\n" not in body["error"]
    return str(body["error"])


async def agent_login(client: Client) -> str:
    page = await client.get("/agent/login")
    nonce = csrf_of(await page.text())
    resp = await client.post(
        "/agent/login",
        data={"name": "alice", "password": PASSWORD, "csrf": nonce},
        allow_redirects=False,
    )
    assert (resp.status, resp.headers["Location"]) == (303, "/agent")
    return csrf_of(await (await client.get("/agent")).text())


# --- customers ---------------------------------------------------------------------------------


async def test_customers_are_created_read_with_their_history_changed_and_listed(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write, read = bearer(clean_db, "crm", "write"), bearer(clean_db, "bi", "read")
    # Ada's calls, under two forms of her number, and somebody else's.
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=2))
    add_call(clean_db, "c2", caller="+12125550100", started=ago(hours=1), queue="support",
             agent="bob")  # fmt: skip
    add_call(clean_db, "c3", caller="3125550199", started=ago(minutes=30))
    with Session(clean_db) as s, s.begin():
        documentation.dispose(s, node="pbx1", uniqueid="c1", agent="alice", code="sale",
                              now=ago(minutes=100), notes="bought two")  # fmt: skip
    async with http(crm_settings, clean_db) as (_wb, client):
        resp = await client.post("/api/v1/customers", headers=write, json={
            "name": " Ada Lovelace ", "phones": ["(212) 555-0100", "+44 20 7946 0958"],
            "email": "ada@example.com", "crm_id": "SF-1", "fields": {"tier": "gold", "seats": 12},
        })  # fmt: skip
        assert resp.status == 201, await resp.text()
        created = (await resp.json())["customer"]
        ada = created["id"]
        assert resp.headers["Location"] == f"/api/v1/customers/{ada}"
        assert {k: v for k, v in created.items() if not k.endswith("_at")} == {
            "id": ada, "name": "Ada Lovelace", "phones": ["+12125550100", "+442079460958"],
            "email": "ada@example.com", "crm_id": "SF-1", "fields": {"tier": "gold", "seats": 12},
        }  # fmt: skip
        assert dt.datetime.fromisoformat(created["created_at"]).utcoffset() == dt.timedelta(0)
        with Session(clean_db) as s, s.begin():
            case = case_store.create_case(s, customer_id=ada, category="complaint", actor="sam",
                                          now=ago(minutes=20), subject="Slow line")  # fmt: skip
            number = case.number

        resp = await client.get(f"/api/v1/customers/{ada}", headers=read)
        assert resp.status == 200
        history = await resp.json()
        assert history["customer"] == created
        assert history["numbers"] == ["+12125550100", "+442079460958"]
        assert [c["uniqueid"] for c in history["calls"]] == ["c2", "c1"]
        c1 = history["calls"][1]
        assert (c1["caller_number"], c1["queue"], c1["agent"], c1["outcome"]) == (
            "2125550100", "sales", "alice", "answered")  # fmt: skip
        assert c1["started_at"] == iso(ago(hours=2))
        assert c1["dispositions"] == [{
            "visit": 1, "agent": "alice", "code": "sale", "effect": "resolves",
            "notes": "bought two", "case": None, "at": iso(ago(minutes=100)),
            "undocumented": False,
        }]  # fmt: skip
        assert history["calls"][0]["dispositions"] == []
        assert [(c["number"], c["subject"], c["status"]) for c in history["open_cases"]] == [
            (number, "Slow line", "open")]  # fmt: skip
        only_one = await (await client.get(f"/api/v1/customers/{ada}?calls=1", headers=read)).json()
        assert [c["uniqueid"] for c in only_one["calls"]] == ["c2"]

        # A change: fields merged (null removes one), the CRM id cleared, numbers replaced.
        resp = await client.patch(f"/api/v1/customers/{ada}", headers=write, json={
            "name": "Ada King", "fields": {"seats": None, "plan": "annual"}, "crm_id": None,
            "phones": ["+1 212 555 0100"],
        })  # fmt: skip
        assert resp.status == 200, await resp.text()
        changed = (await resp.json())["customer"]
        assert (changed["name"], changed["phones"], changed["email"], changed["crm_id"]) == (
            "Ada King", ["+12125550100"], "ada@example.com", None)  # fmt: skip
        assert changed["fields"] == {"tier": "gold", "plan": "annual"}
        # Nothing given, nothing changed.
        same = await client.patch(f"/api/v1/customers/{ada}", headers=write, json={})
        assert (await same.json())["customer"]["fields"] == {"tier": "gold", "plan": "annual"}

        bob = (await (await client.post("/api/v1/customers", headers=write, json={
            "name": "Bob Babbage", "phones": ["3125550150"], "crm_id": "SF-2"})).json()
        )["customer"]["id"]  # fmt: skip
        carl = (await (await client.post("/api/v1/customers", headers=write, json={
            "name": "Carl 100% Sure"})).json())["customer"]["id"]  # fmt: skip

        async def ids(query: str) -> list[int]:
            resp = await client.get(f"/api/v1/customers{query}", headers=read)
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert body["next"] is None
            return [c["id"] for c in body["customers"]]

        assert await ids("") == [ada, bob, carl]
        assert await ids("?search=babb") == [bob]
        assert await ids("?search=" + urllib.parse.quote("(212) 555-0100")) == [ada]
        assert await ids("?phone=2125550100") == [ada]
        assert await ids("?phone=%2B13125550150") == [bob]
        assert await ids("?crm_id=SF-2") == [bob]
        assert await ids("?crm_id=SF") == []  # exact
        assert await ids("?search=%25") == [carl]  # a literal "%", not a wildcard
        assert await ids("?search=_") == []

        # A number that is another customer's, a taken CRM id: 400, nothing written.
        taken = await client.post("/api/v1/customers", headers=write,
                                  json={"name": "Eve", "phones": ["212-555-0100"]})  # fmt: skip
        assert await error_of(taken, 400) == f"+12125550100 already belongs to customer {ada}"
        taken = await client.patch(f"/api/v1/customers/{ada}", headers=write,
                                   json={"crm_id": "SF-2"})  # fmt: skip
        assert await error_of(taken, 400) == f"CRM id 'SF-2' is customer {bob}'s already"
        nobody = await client.post("/api/v1/customers", headers=write, json={"email": ""})
        assert await error_of(nobody, 400) == "a customer needs a name or a phone number"
        for missing in ("999999", "0", "abc", "99999999999999999999999"):
            resp = await client.get(f"/api/v1/customers/{missing}", headers=read)
            assert (await error_of(resp, 404)).startswith("no customer with id")
            resp = await client.patch(f"/api/v1/customers/{missing}", headers=write, json={})
            assert resp.status == 404
    assert count(clean_db, "customers") == 3


# --- cases -------------------------------------------------------------------------------------


async def test_cases_are_opened_changed_and_listed_with_their_timeline(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write, read = bearer(clean_db, "crm", "write"), bearer(clean_db, "bi", "read")
    ada = add_customer(clean_db, "Ada", "+12125550100")
    bob = add_customer(clean_db, "Bob")
    async with http(crm_settings, clean_db) as (_wb, client):
        resp = await client.post("/api/v1/cases", headers=write, json={
            "customer_id": ada, "category": "complaint", "priority": "high", "owner": "alice",
            "subject": "Router broken", "due_at": "2030-01-02T10:00:00+01:00",
            "note": "called twice",
        })  # fmt: skip
        assert resp.status == 201, await resp.text()
        first = await resp.json()
        case = first["case"]
        number = case["number"]
        assert re.fullmatch(r"C-\d{6}", number)
        assert resp.headers["Location"] == f"/api/v1/cases/{number}"
        assert {k: v for k, v in case.items() if k not in ("created_at", "updated_at")} == {
            "number": number, "customer_id": ada, "customer": "Ada", "category": "complaint",
            "priority": "high", "status": "open", "owner": "alice", "subject": "Router broken",
            "due_at": "2030-01-02T09:00:00+00:00", "resolution": "", "created_by": "api:crm",
            "resolved_at": None, "closed_at": None, "calls": 0,
        }  # fmt: skip
        assert [(e["kind"], e["actor"]) for e in first["timeline"]] == [
            ("created", "api:crm"), ("note", "api:crm")]  # fmt: skip
        assert first["timeline"][1]["data"] == {"text": "called twice"}
        assert await (await client.get(f"/api/v1/cases/{number}", headers=read)).json() == first
        again = await client.get(f"/api/v1/cases/{number.lower()}", headers=read)
        assert (await again.json())["case"]["number"] == number

        resp = await client.patch(f"/api/v1/cases/{number}", headers=write, json={
            "status": "resolved", "resolution": "Replaced the router", "owner": None,
            "note": "sent a new one",
        })  # fmt: skip
        assert resp.status == 200, await resp.text()
        resolved = await resp.json()
        assert (resolved["case"]["status"], resolved["case"]["resolution"]) == (
            "resolved", "Replaced the router")  # fmt: skip
        assert resolved["case"]["owner"] is None
        assert resolved["case"]["resolved_at"] is not None
        assert [e["kind"] for e in resolved["timeline"]] == [
            "created", "note", "status", "owner", "note"]  # fmt: skip
        assert resolved["timeline"][2]["data"] == {
            "from": "open", "to": "resolved", "resolution": "Replaced the router"}  # fmt: skip
        refused = await client.patch(f"/api/v1/cases/{number}", headers=write,
                                     json={"status": "pending"})  # fmt: skip
        assert await error_of(refused, 400) == (
            "a case that is resolved cannot become pending: it goes only to open or closed"
        )
        cleared = await client.patch(f"/api/v1/cases/{number}", headers=write,
                                     json={"due_at": None})  # fmt: skip
        cleared_case = await cleared.json()
        assert cleared_case["case"]["due_at"] is None
        assert cleared_case["timeline"][-1]["kind"] == "due"

        second = await client.post("/api/v1/cases", headers=write,
                                   json={"customer_id": bob, "category": "question"})  # fmt: skip
        other = (await second.json())["case"]
        assert (other["priority"], other["owner"], other["due_at"]) == ("normal", None, None)

        async def numbers(query: str) -> list[str]:
            resp = await client.get(f"/api/v1/cases{query}", headers=read)
            assert resp.status == 200, await resp.text()
            return [c["number"] for c in (await resp.json())["cases"]]

        assert await numbers("") == [other["number"], number]  # newest first
        assert await numbers("?status=open") == [other["number"]]
        assert await numbers("?status=resolved,open") == [other["number"], number]
        assert await numbers("?status=open&status=resolved") == [other["number"], number]
        assert await numbers(f"?customer={ada}") == [number]
        assert await numbers("?owner=alice") == []

        for body, message in (
            ({"customer_id": 999999, "category": "question"},
             "no customer with id 999999: a case is a customer's"),
            ({"customer_id": ada, "category": "gossip"},
             "category 'gossip' is not one of question, request, complaint, incident "
             "(cases categories add NAME)"),
            ({"customer_id": ada, "category": "question", "owner": "zed"},
             "owner 'zed' is neither an agent nor a wallboard user"),
            ({"customer_id": ada, "category": "question", "priority": "asap"},
             "priority 'asap' is not one of low, normal, high, urgent"),
            ({"category": "question"}, "customer_id is required: a case is a customer's"),
            ({"customer_id": ada}, "category is required"),
        ):  # fmt: skip
            resp = await client.post("/api/v1/cases", headers=write, json=body)
            assert await error_of(resp, 400) == message
        bad_status = await client.get("/api/v1/cases?status=done", headers=read)
        assert (await error_of(bad_status, 400)).startswith("status 'done' is not one of")
        for missing in ("C-999999", "garbage", "C-" + "9" * 30):
            resp = await client.get(f"/api/v1/cases/{missing}", headers=read)
            assert (await error_of(resp, 404)).startswith("no case")
            resp = await client.patch(f"/api/v1/cases/{missing}", headers=write, json={})
            assert resp.status == 404
    assert count(clean_db, "cases") == 2


# --- calls and dispositions --------------------------------------------------------------------


async def test_calls_with_their_visits_and_dispositions_given_on_behalf_of_an_agent(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write, read = bearer(clean_db, "crm", "write"), bearer(clean_db, "bi", "read")
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=3))
    add_call(clean_db, "c2", caller="+12125550100", started=ago(hours=2), queue="support",
             agent="bob")  # fmt: skip
    add_call(clean_db, "c3", caller="3125550199", started=ago(hours=1), node="pbx2")
    add_call(clean_db, "c4", caller="2125550100", started=ago(minutes=30), agent=None)
    ada = add_customer(clean_db, "Ada", "+12125550100")
    with Session(clean_db) as s, s.begin():
        number = case_store.create_case(s, customer_id=ada, category="request", actor="sam",
                                        now=ago(hours=4)).number  # fmt: skip
    async with http(crm_settings, clean_db) as (_wb, client):

        async def uniqueids(query: str) -> list[str]:
            resp = await client.get(f"/api/v1/calls{query}", headers=read)
            assert resp.status == 200, await resp.text()
            return [c["uniqueid"] for c in (await resp.json())["calls"]]

        assert await uniqueids("") == ["c4", "c3", "c2", "c1"]
        assert await uniqueids("?queue=sales") == ["c4", "c3", "c1"]
        assert await uniqueids("?agent=alice") == ["c3", "c1"]
        assert await uniqueids("?caller=" + urllib.parse.quote("+1 212-555-0100")) == [
            "c4", "c2", "c1"]  # fmt: skip
        since = urllib.parse.quote(iso(ago(hours=2)))
        assert await uniqueids(f"?since={since}") == ["c4", "c3", "c2"]
        assert await uniqueids(f"?until={since}") == ["c1"]
        # The same time with its "+" unencoded (a space when decoded), and in another zone.
        assert await uniqueids("?since=2026-12-01T10:00:00+00:00") == ["c4", "c3", "c2"]
        assert await uniqueids("?since=2026-12-01T05:00:00-05:00") == ["c4", "c3", "c2"]
        assert await uniqueids("?direction=outbound") == []

        resp = await client.get("/api/v1/calls/pbx1/c1", headers=read)
        assert resp.status == 200
        detail = await resp.json()
        call = detail["call"]
        assert (call["node"], call["caller_number"], call["queue"], call["agent"]) == (
            "pbx1", "2125550100", "sales", "alice")  # fmt: skip
        assert (call["outcome"], call["wait_seconds"], call["talk_seconds"]) == (
            "answered", 10.0, 120.0)  # fmt: skip
        assert call["started_at"] == iso(ago(hours=3))
        assert call["answered_at"] == iso(ago(hours=3) + dt.timedelta(seconds=15))
        assert [(v["visit"], v["queue"], v["agent"]) for v in detail["visits"]] == [
            (1, "sales", "alice")]  # fmt: skip
        assert detail["dispositions"] == []
        for path in ("/api/v1/calls/pbx1/nope", "/api/v1/calls/pbx2/c1"):
            assert (await error_of(await client.get(path, headers=read), 404)).startswith("no call")

        # The CRM documents alice's call on behalf of bob, tying it to Ada's case.
        resp = await client.post("/api/v1/calls/pbx1/c1/dispositions", headers=write, json={
            "agent": "bob", "code": "SALE", "notes": " documented by the CRM ", "case": number,
        })  # fmt: skip
        assert resp.status == 201, await resp.text()
        given = (await resp.json())["disposition"]
        assert {k: v for k, v in given.items() if k != "at"} == {
            "node": "pbx1", "uniqueid": "c1", "visit": 1, "queue": "sales", "campaign_id": None,
            "agent": "bob", "code": "sale", "effect": "resolves",
            "notes": "documented by the CRM", "case": number, "undocumented_at": None,
        }  # fmt: skip
        detail = await (await client.get("/api/v1/calls/pbx1/c1", headers=read)).json()
        assert detail["dispositions"] == [given]
        case = await (await client.get(f"/api/v1/cases/{number}", headers=read)).json()
        assert case["case"]["calls"] == 1
        assert [(e["kind"], e["actor"], e["uniqueid"]) for e in case["timeline"]] == [
            ("created", "sam", None),
            ("call", "bob", "c1"),
            ("disposition", "bob", None),
        ]
        assert case["timeline"][2]["data"]["code"] == "sale"

        for body, status, message in (
            ({"code": "sale"}, 400, "agent is required: the agent the disposition is credited to"),
            ({"agent": "zed", "code": "sale"}, 400, "no agent named 'zed'"),
            ({"agent": "bob", "code": "fixed"}, 400,
             "queue sales has no disposition code 'fixed' (its codes: later, sale)"),
            ({"agent": "bob", "code": "sale", "visit": 7}, 400,
             "call c1 on pbx1 has no queue visit 7"),
            ({"agent": "bob", "code": "sale", "case": "C-999999"}, 400, "no case C-999999"),
            ({"agent": "bob"}, 400, "code is required"),
        ):  # fmt: skip
            resp = await client.post("/api/v1/calls/pbx1/c1/dispositions", headers=write,
                                     json=body)  # fmt: skip
            assert await error_of(resp, status) == message
        resp = await client.post("/api/v1/calls/pbx1/nope/dispositions", headers=write,
                                 json={"agent": "bob", "code": "sale"})  # fmt: skip
        assert (await error_of(resp, 404)).startswith("no call 'nope' on node 'pbx1'")
        assert count(clean_db, "call_dispositions") == 1

        resp = await client.post("/api/v1/calls/pbx1/c2/dispositions", headers=write,
                                 json={"agent": "bob", "code": "fixed"})  # fmt: skip
        assert resp.status == 201

        async def listed(query: str) -> list[tuple[str, str]]:
            resp = await client.get(f"/api/v1/dispositions{query}", headers=read)
            assert resp.status == 200, await resp.text()
            return [(d["uniqueid"], d["code"]) for d in (await resp.json())["dispositions"]]

        assert await listed("") == [("c2", "fixed"), ("c1", "sale")]
        assert await listed("?code=FIXED") == [("c2", "fixed")]
        assert await listed("?queue=sales") == [("c1", "sale")]
        assert await listed("?agent=bob") == [("c2", "fixed"), ("c1", "sale")]
        assert await listed("?agent=alice") == []
        assert await listed("?since=tomorrow") == []
        assert await listed("?until=2000-01-01") == []


# --- who may ------------------------------------------------------------------------------------


async def test_scopes_tokens_and_sessions(crm_settings: config.Settings, clean_db: Engine) -> None:
    read, write = bearer(clean_db, "bi", "read"), bearer(clean_db, "crm", "write")
    gone = bearer(clean_db, "old", "write")
    with Session(clean_db) as s, s.begin():
        tokens.revoke_token(s, "old")
    tv_raw = add_token(clean_db, "lobby")
    tv = {"Authorization": f"Bearer {tv_raw}"}
    ada = add_customer(clean_db, "Ada", "+12125550100")
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=1))
    reads = ["/api/v1/customers", f"/api/v1/customers/{ada}", "/api/v1/cases",
             "/api/v1/calls", "/api/v1/calls/pbx1/c1", "/api/v1/dispositions"]  # fmt: skip
    new_customer = {"name": "Bob"}
    async with http(crm_settings, clean_db) as (_wb, client):
        for path in reads:
            nobody = await client.get(path)
            assert (nobody.status, nobody.headers["WWW-Authenticate"]) == (
                401, 'Bearer realm="wallboard"')  # fmt: skip
            assert (await client.get(path, headers=gone)).status == 401
            assert (await error_of(await client.get(path, headers=tv), 403)).startswith(
                "a screen's token does not reach the CRM's data"
            )
            assert (await client.get(path, headers=read)).status == 200, path
            assert (await client.get(path, headers=write)).status == 200, path
        writes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/api/v1/customers", new_customer),
            ("PATCH", f"/api/v1/customers/{ada}", {"name": "Ada K"}),
            ("POST", "/api/v1/cases", {"customer_id": ada, "category": "question"}),
            ("PATCH", "/api/v1/cases/C-000001", {"note": "x"}),
            ("POST", "/api/v1/calls/pbx1/c1/dispositions", {"agent": "bob", "code": "sale"}),
        ]
        for method, path, body in writes:
            assert (await client.request(method, path, json=body)).status == 401
            assert (await client.request(method, path, json=body, headers=gone)).status == 401
            assert (await client.request(method, path, json=body, headers=tv)).status == 403
            refused = await client.request(method, path, json=body, headers=read)
            assert await error_of(refused, 403) == (
                "this API token may only read; write needs a token of scope write"
            )
            # The scope is checked before the body: a read token learns nothing from it.
            garbage = await client.request(method, path, data=b"{", headers=read)
            assert garbage.status == 403
        assert count(clean_db, "customers") == 1
        # A write token needs no CSRF token (no cookie a browser sends on its own).
        resp = await client.post("/api/v1/customers", json=new_customer, headers=write)
        assert resp.status == 201

        # An agent's session: the desktop only.
        token = await agent_login(client)
        for path in reads[:2]:
            resp = await client.get(path)
            assert await error_of(resp, 403) == (
                "an agent's session reaches the agent's desktop only"
            )
        resp = await client.post("/api/v1/customers", json=new_customer,
                                 headers={"X-CSRF-Token": token})  # fmt: skip
        assert resp.status == 403
        client.session.cookie_jar.clear()

        # A screen's session (from /tv?token=): no CRM data either.
        entry = await client.get(f"/tv?token={tv_raw}", allow_redirects=False)
        assert entry.status in (302, 303)
        assert (await client.get("/api/v1/board")).status == 200
        assert (await client.get("/api/v1/customers")).status == 403
        client.session.cookie_jar.clear()

        # A supervisor's session reads; writes with its CSRF token from our own origin.
        csrf = await login(client)
        for path in reads:
            assert (await client.get(path)).status == 200, path
        no_csrf = await client.post("/api/v1/customers", json=new_customer)
        assert (await error_of(no_csrf, 403)).startswith("the session's CSRF token is missing")
        wrong = await client.post("/api/v1/customers", json=new_customer,
                                  headers={"X-CSRF-Token": csrf + "x"})  # fmt: skip
        assert wrong.status == 403
        foreign = await client.post("/api/v1/customers", json=new_customer, headers={
            "X-CSRF-Token": csrf, "Origin": "https://evil.example"})  # fmt: skip
        assert foreign.status == 403
        assert count(clean_db, "customers") == 2
        resp = await client.post("/api/v1/cases", headers={"X-CSRF-Token": csrf},
                                 json={"customer_id": ada, "category": "question"})  # fmt: skip
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["case"]["created_by"] == "sam"


# --- pages ---------------------------------------------------------------------------------------


async def test_keyset_pages_neither_skip_nor_repeat(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    read = bearer(clean_db, "bi", "read")
    customers = [add_customer(clean_db, f"Customer {i}") for i in range(7)]
    # Cases and calls with one time each: the id breaks the ties.
    with Session(clean_db) as s, s.begin():
        cases = [case_store.create_case(s, customer_id=customers[0], category="question",
                                        actor="sam", now=NOW).number for _ in range(5)]  # fmt: skip
    for i in range(5):
        add_call(clean_db, f"t{i}", caller="2125550100", started=NOW)
    async with http(crm_settings, clean_db) as (_wb, client):

        async def walk(path: str, key: str, field: str, limit: int) -> list[list[Any]]:
            pages: list[list[Any]] = []
            after = ""
            while True:
                resp = await client.get(f"{path}?limit={limit}{after}", headers=read)
                assert resp.status == 200, await resp.text()
                body = await resp.json()
                pages.append([row[field] for row in body[key]])
                if body["next"] is None:
                    return pages
                after = "&after=" + urllib.parse.quote(body["next"])

        pages = await walk("/api/v1/customers", "customers", "id", 3)
        assert pages == [customers[:3], customers[3:6], customers[6:]]
        assert await walk("/api/v1/cases", "cases", "number", 2) == [
            cases[4:2:-1], cases[2:0:-1], cases[:1]]  # fmt: skip
        calls = await walk("/api/v1/calls", "calls", "uniqueid", 2)
        assert calls == [["t4", "t3"], ["t2", "t1"], ["t0"]]
        # Exactly a page's worth: the last page says so by its empty successor.
        assert await walk("/api/v1/customers", "customers", "id", 7) == [customers]
        big = await client.get("/api/v1/customers?limit=500", headers=read)
        assert big.status == 200

        first = await (await client.get("/api/v1/customers?limit=3", headers=read)).json()
        cases_cursor = (await (await client.get("/api/v1/cases?limit=1", headers=read)).json())[
            "next"
        ]

        def cursor(value: Any) -> str:
            raw = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
            return urllib.parse.quote(raw)

        for after in (
            "garbage", "%00", cursor(["customers", -1]), cursor(["customers", True]),
            cursor(["customers", "1"]), cursor(["customers"]), cursor({"customers": 1}),
            urllib.parse.quote(cases_cursor), "x" * 400, cursor(["customers", 2**64]),
        ):  # fmt: skip
            resp = await client.get(f"/api/v1/customers?after={after}", headers=read)
            assert resp.status == 400, (after, await resp.text())
        for after in (cursor(["cases", "yesterday", 1]), cursor(["cases", "2026-12-01T12:00", 1]),
                      urllib.parse.quote(first["next"])):  # fmt: skip
            resp = await client.get(f"/api/v1/cases?after={after}", headers=read)
            assert resp.status == 400, (after, await resp.text())
        for limit in ("0", "501", "abc", "-1", "1.5", "9" * 30):
            resp = await client.get(f"/api/v1/calls?limit={limit}", headers=read)
            assert await error_of(resp, 400) == (
                f"limit must be a whole number from 1 to 500, not {limit!r}"
            )


# --- hostile input -------------------------------------------------------------------------------


async def test_hostile_input_is_refused_in_one_line_never_a_500(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write = bearer(clean_db, "crm", "write")
    ada = add_customer(clean_db, "Ada", "+12125550100")
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=1))
    post = "/api/v1/customers"
    async with http(crm_settings, clean_db) as (_wb, client):
        for data, message in (
            (b"not json", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
            (b"", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
            (b"[1, 2]", "the body must be a JSON object"),
            (b'"name"', "the body must be a JSON object"),
            (b'{"name": NaN}', "the body is not JSON: NaN is not a JSON number"),
            (b'{"fields": {"n": 1e400}}', "fields.n is not a finite number"),
            (b'{"name": 5}', "name must be a string"),
            (b'{"name": null}', "name must be a string"),
            (b'{"phones": "2125550100"}', "phones must be a list of strings"),
            (b'{"phones": [2125550100]}', "phones must be a list of strings"),
            (b'{"name": "x", "nickname": "y"}',
             "unknown field 'nickname' (known: name, phones, email, crm_id, fields)"),
            (b'{"name": "a\\u0000b"}', "name holds a NUL character"),
            (b'{"name": "\\ud800"}', "name is not valid Unicode text"),
            (b'{"fields": {"k\\u0000": "v"}}', "fields holds a NUL character"),
            (b"\xff\xfe{}", "the body is not UTF-8 text"),
            (b'{"fields": ' + b"[" * 30000 + b"]" * 30000 + b"}", "the body is nested too deeply"),
            (b'{"fields": {"a": {"b": 1}}}', "field 'a' must be a string, a number or a boolean"),
            (b'{"fields": []}', "fields must be an object"),
            (b'{"phones": ["not a number"]}',
             "phone: 'not a number' is not a phone number (not a number)"),
            (b'{"email": "nope"}', "e-mail 'nope' is not an e-mail address (name@domain)"),
            (json.dumps({"phones": ["1"] * 101}).encode(),
             "phones: at most 20 numbers (a list of 101)"),
            (b'{"name": "' + b"x" * 201 + b'"}',
             "name 'xxxxxxxxxxxxxxxxxxxx'... is longer than 200 characters"),
        ):  # fmt: skip
            resp = await client.post(post, data=data, headers=write)
            assert await error_of(resp, 400) == message, data[:40]
        huge = await client.post(post, json={"name": "x" * 70_000}, headers=write)
        assert (await error_of(huge, 413)).startswith("Maximum request body size")
        assert count(clean_db, "customers") == 1

        # SQL in values is only text.
        sql = "Robert'); DROP TABLE customers; --"
        resp = await client.post(post, json={"name": sql, "fields": {"x'--": "1 OR 1=1"}},
                                 headers=write)  # fmt: skip
        assert resp.status == 201
        found = await client.get(f"{post}?search={urllib.parse.quote(sql)}", headers=write)
        assert [c["name"] for c in (await found.json())["customers"]] == [sql]
        assert count(clean_db, "customers") == 2

        gets: list[tuple[str, int, str | None]] = [
            (f"{post}?search=%00", 400, "search holds a NUL character"),
            (f"{post}?sort=name", 400, "unknown query parameter 'sort' (this endpoint takes: "
             "after, crm_id, limit, phone, search)"),
            (f"{post}?limit=1&limit=2", 400, "query parameter limit is given more than once"),
            (f"{post}?phone=12", 400, None),
            (f"/api/v1/customers/{ada}?calls=501", 400,
             "calls must be a whole number from 0 to 500, not '501'"),
            ("/api/v1/calls?since=soon", 400, None),
            ("/api/v1/calls?since=-99999999999d", 400, "since '-99999999999d' is out of range"),
            ("/api/v1/calls?until=0001-01-01T00:00:00%2B14:00", 400, None),
            ("/api/v1/calls?direction=sideways", 400, None),
            ("/api/v1/calls?caller=%27%20OR%201%3D1%20--", 200, None),
            ("/api/v1/cases?customer=abc", 400, None),
            ("/api/v1/cases?customer=99999999999999999999", 400, None),
            ("/api/v1/cases/C-%00", 400, "the case number holds a NUL character"),
            ("/api/v1/calls/pbx1/c%001", 400, "uniqueid holds a NUL character"),
            ("/api/v1/calls/" + "n" * 500 + "/c1", 404, None),
            ("/api/v1/dispositions?code=%27%3B%20DROP%20TABLE%20calls", 200, None),
        ]  # fmt: skip
        for path, status, expected in gets:
            resp = await client.get(path, headers=write)
            if status == 200:
                assert resp.status == 200, await resp.text()
                continue
            got = await error_of(resp, status)
            assert expected is None or got == expected, (path, got)

        case_post = "/api/v1/cases"
        cases: list[tuple[dict[str, Any], str | None]] = [
            ({"customer_id": "1", "category": "question"},
             "customer_id must be a whole number from 1 to 9223372036854775807"),
            ({"customer_id": True, "category": "question"}, None),
            ({"customer_id": 1.0, "category": "question"}, None),
            ({"customer_id": 2**70, "category": "question"}, None),
            ({"customer_id": ada, "category": "question", "due_at": "+99999999999d"},
             "due_at '+99999999999d' is out of range"),
            ({"customer_id": ada, "category": "question", "due_at": "soon"}, None),
            ({"customer_id": ada, "category": "question", "due_at": 5},
             "due_at must be a string or null"),
            ({"customer_id": ada, "category": ["question"]}, "category must be a string"),
            ({"customer_id": ada, "category": "question", "subject": "s" * 201},
             "subject is longer than 200 characters"),
        ]  # fmt: skip
        for body, expected in cases:
            got = await error_of(await client.post(case_post, json=body, headers=write), 400)
            assert expected is None or got == expected, (body, got)
        dispose = "/api/v1/calls/pbx1/c1/dispositions"
        disposals: list[dict[str, Any]] = [
            {"agent": "alice", "code": "sale", "visit": -1},
            {"agent": "alice", "code": "sale", "visit": "1"},
            {"agent": "alice", "code": "sale", "visit": 40000},
            {"agent": "alice", "code": "no good"},
            {"agent": ["alice"], "code": "sale"},
            {"agent": "alice", "code": "sale", "notes": "n" * 10_001},
        ]
        for body in disposals:
            assert (await client.post(dispose, json=body, headers=write)).status == 400, body
        patch = await client.patch("/api/v1/cases/C-000001", json={"status": 3}, headers=write)
        assert patch.status in (400, 404)
        assert count(clean_db, "cases") == 0
        assert count(clean_db, "call_dispositions") == 0


# --- the document ---------------------------------------------------------------------------------


async def test_every_crm_answer_is_as_the_openapi_document_says(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write = bearer(clean_db, "crm", "write")
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=1))
    async with http(crm_settings, clean_db) as (_wb, client):
        doc = await (await client.get("/api/openapi.json")).json()

        def schema(path: str, method: str, status: str) -> dict[str, Any]:
            responses = doc["paths"][path][method]["responses"]
            return dict(responses[status]["content"]["application/json"]["schema"])

        async def check(method: str, url: str, path: str, status: int, **kw: Any) -> Any:
            resp = await client.request(method, url, headers=write, **kw)
            assert resp.status == status, await resp.text()
            body = await resp.json()
            conforms(body, schema(path, method.lower(), str(status)), doc, url)
            return body

        made = await check(
            "POST",
            "/api/v1/customers",
            "/api/v1/customers",
            201,
            json={"name": "Ada", "phones": ["2125550100"], "fields": {"a": 1}},
        )
        ada = made["customer"]["id"]
        case = await check(
            "POST",
            "/api/v1/cases",
            "/api/v1/cases",
            201,
            json={"customer_id": ada, "category": "question", "due_at": "+2d", "note": "n"},
        )
        number = case["case"]["number"]
        await check(
            "POST",
            "/api/v1/calls/pbx1/c1/dispositions",
            "/api/v1/calls/{node}/{uniqueid}/dispositions",
            201,
            json={"agent": "alice", "code": "sale", "case": number},
        )
        await check(
            "PATCH",
            f"/api/v1/customers/{ada}",
            "/api/v1/customers/{id}",
            200,
            json={"email": "ada@example.com"},
        )
        await check(
            "PATCH",
            f"/api/v1/cases/{number}",
            "/api/v1/cases/{number}",
            200,
            json={"status": "resolved", "resolution": "done"},
        )
        for url, path in (
            ("/api/v1/customers", "/api/v1/customers"),
            (f"/api/v1/customers/{ada}", "/api/v1/customers/{id}"),
            ("/api/v1/cases", "/api/v1/cases"),
            (f"/api/v1/cases/{number}", "/api/v1/cases/{number}"),
            ("/api/v1/calls", "/api/v1/calls"),
            ("/api/v1/calls/pbx1/c1", "/api/v1/calls/{node}/{uniqueid}"),
            ("/api/v1/dispositions", "/api/v1/dispositions"),
        ):  # fmt: skip
            body = await check("GET", url, path, 200)
            assert any(v for v in body.values() if isinstance(v, list | dict)), url
        # The errors too.
        resp = await client.get("/api/v1/cases/C-999999", headers=write)
        conforms(await resp.json(), schema("/api/v1/cases/{number}", "get", "404"), doc)
        # Each CRM operation documents its parameters: the ones the handler refuses others.
        for path, spec in crm_paths().items():
            assert doc["paths"][path] == spec
            for method, op in spec.items():
                names = {p["name"] for p in op["parameters"] if p["in"] == "query"}
                if method == "get" and names:
                    url = re.sub(r"\{\w+\}", "x", path)
                    resp = await client.get(f"{url}?unknown=1", headers=write)
                    message = (await resp.json())["error"]
                    if resp.status == 400:
                        listed = message.split("takes: ")[1].rstrip(")").split(", ")
                        assert set(listed) == names, path


# --- property-based: no input makes a 5xx ---------------------------------------------------------


#: Requests per operation: about 5 seconds for all of them on two busy cores. (A seeded run
#: of Hypothesis's strategies over the document's operations: schemathesis is not installed.)
PER = 80


def examples(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """``n`` values of ``strategy``, the same on every run (derandomized, no database)."""
    out: list[Any] = []

    @hypothesis.settings(max_examples=n, derandomize=True, database=None, deadline=None,
                         phases=[hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
    @hypothesis.given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=6,
)  # fmt: skip
TEXT = st.text(max_size=16) | st.sampled_from(
    ["", "0", "1", "-1", "C-000001", "2125550100", "+12125550100", "today", "-2h", "null",
     "' OR 1=1 --", "%", "\x00", "9" * 25, "2026-12-01T10:00:00+00:00", "sales", "alice"]
)  # fmt: skip


def endpoints() -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """Each CRM operation of the OpenAPI document: (method, path, its query parameters, its
    body's fields), so that what is sent follows the document."""
    out = []
    for path, spec in crm_paths().items():
        for method, op in spec.items():
            params = tuple(p["name"] for p in op["parameters"] if p["in"] == "query")
            fields: tuple[str, ...] = ()
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                fields = tuple(SCHEMAS[ref.rsplit("/", 1)[1]]["properties"])
            out.append((method.upper(), path, params, fields))
    return out


def likely(*values: Any) -> Any:
    """Mostly one of ``values`` (so that requests get past the first check), else anything."""
    plausible = st.sampled_from(values)
    return st.one_of(plausible, plausible, plausible, TEXT, JSON)


#: For each field and parameter: plausible values, and any other.
LIKELY: dict[str, Any] = {
    "name": likely("Ada", "", " Bob "), "email": likely("a@example.com", "", "x@"),
    "phones": st.lists(likely("2125550100", "+12125550101", "+442079460958", "12"), max_size=3),
    "crm_id": likely("SF-1", "", None), "fields": st.dictionaries(TEXT, JSON, max_size=3),
    "customer_id": likely(1, 2, 3, 0, -1, 2**63), "category": likely("question", "gossip"),
    "priority": likely("low", "urgent", "asap"), "owner": likely("alice", "sam", "", None),
    "subject": likely("Router"), "due_at": likely("+2d", "2030-01-01", "", None, "+1w"),
    "note": likely("called"), "status": likely("open", "pending", "resolved", "closed"),
    "resolution": likely("done", ""), "agent": likely("alice", "bob", "zed"),
    "code": likely("sale", "later", "fixed", "SALE"), "notes": likely("n"),
    "case": likely("C-000001", "1", None, "C-9"), "visit": likely(0, 1, 2, -1, None),
    "queue": likely("sales", "support", None), "campaign": likely("spring", None),
    "limit": likely("1", "2", "500", "0"), "after": likely("eyJ4IjoxfQ", ""),
    "search": likely("Customer", "212"), "phone": likely("2125550100", "+12125550101"),
    "calls": likely("0", "3", "501"), "customer": likely("1", "2", "x"),
    "since": likely("today", "-2h", "2026-12-01T10:00:00+00:00", "2026-12-01"),
    "until": likely("now", "2030-01-01", "2026-12-01T10:00:00 00:00"),
    "caller": likely("2125550100", "+1 212 555 0100", "anonymous"),
    "direction": likely("inbound", "outbound", "up"),
}  # fmt: skip


#: What a create needs (a change needs none; asked of each body that has such a field).
NEEDED = ("customer_id", "category", "agent", "code", "name")


def as_text(value: Any) -> str:
    """A value of a path or a query string: JSON for what is not a string."""
    return value if isinstance(value, str) else json.dumps(value)


def request_strategy(params: tuple[str, ...], fields: tuple[str, ...]) -> Any:
    """(path parameters, query, body): a body mostly with the fields a create needs."""
    path = st.fixed_dictionaries({
        "id": likely("1", "2", "3", "0", "x"), "number": likely("C-000001", "c1", "C-000009"),
        "node": likely("pbx1", "pbx2"), "uniqueid": likely("c1", "c2"),
    }).map(lambda values: {k: as_text(v) for k, v in values.items()})  # fmt: skip
    query = st.fixed_dictionaries({}, optional={k: LIKELY[k].map(as_text) for k in params})
    needed = {f: LIKELY[f] for f in fields if f in NEEDED}
    typed = st.fixed_dictionaries(
        needed, optional={f: LIKELY[f] for f in fields if f not in needed}
    )
    body = st.one_of(typed, typed, typed, JSON) if fields else st.none()
    return st.tuples(path, query, body)


async def test_no_input_makes_a_server_error(
    crm_settings: config.Settings, clean_db: Engine
) -> None:
    write = bearer(clean_db, "crm", "write")
    for i in range(2):
        add_customer(clean_db, f"Customer {i}", f"+1212555010{i}")
    add_call(clean_db, "c1", caller="2125550100", started=ago(hours=1))
    with Session(clean_db) as s, s.begin():
        case_store.create_case(s, customer_id=1, category="question", actor="sam", now=NOW)
    operations = endpoints()
    assert len(operations) == 12
    sent = 0
    async with http(crm_settings, clean_db) as (_wb, client):
        for method, template, params, fields in operations:
            for path_values, query, body in examples(request_strategy(params, fields), PER):
                path = template
                for key, value in path_values.items():
                    path = path.replace("{" + key + "}", urllib.parse.quote(value, safe="") or "x")
                kw: dict[str, Any] = {"headers": write, "params": query}
                if body is not None:
                    kw["data"] = json.dumps(body).encode()
                resp = await client.request(method, path, **kw)
                text = await resp.text()
                assert resp.status < 500, (method, path, query, body, text)
                assert resp.content_type == "application/json", (path, text)
                sent += 1
    assert sent == PER * len(operations)
    with clean_db.connect() as conn:  # and the tables are all still there
        assert conn.scalar(sa.text("SELECT count(*) FROM calls")) == 1
