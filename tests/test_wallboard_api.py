"""The JSON API, its OpenAPI document, /metrics, and the supervisor's actions reaching AMI."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.agi.features import queue_add_actions
from callcenter.db.models import Call
from callcenter.wallboard.control import links_for
from tests.calllog import with_visit
from tests.conftest import Cli
from tests.fake_ami import FakeAmi, FakeConnection, frame
from tests.test_wallboard_support import (
    add_token,
    add_user,
    agent_payload,
    http,
    login,
    node_payload,
    queue_payload,
    wallboard_settings,
)


@pytest.fixture
def wb_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    return wallboard_settings(settings)


async def test_openapi_names_every_api_route(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        doc = await (await client.get("/api/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        app = wb.make_app()
        routes = set()
        for resource in app.router.resources():
            path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", resource.canonical)
            if path.startswith("/api/"):
                routes.add(path)
        assert routes == set(doc["paths"])
        refs = re.findall(r"#/components/schemas/(\w+)", str(doc))
        assert set(refs) <= set(doc["components"]["schemas"])


async def test_api_serves_the_live_board(wb_settings: config.Settings, clean_db: Engine) -> None:
    token = add_token(clean_db, "script")
    async with http(wb_settings, clean_db) as (wb, client):
        state = wb.parts.state
        state.apply("x/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=3, logged_in=1))
        state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice", "paused", reason="lunch"))
        state.apply("x/pbx1/status", node_payload("pbx1", True))
        await wb.parts.auth.cache.reload()
        bearer = {"Authorization": f"Bearer {token}"}
        queues = await (await client.get("/api/v1/queues", headers=bearer)).json()
        assert queues["queues"][0]["queue"] == "sales"
        assert queues["queues"][0]["waiting"] == 3
        agents = await (await client.get("/api/v1/agents", headers=bearer)).json()
        assert agents["agents"][0]["reason"] == "lunch"
        assert agents["agents"][0]["calls"] == 0
        nodes = await (await client.get("/api/v1/nodes", headers=bearer)).json()
        assert {n["node"]: n["connected"] for n in nodes["nodes"]} == {"local": False, "pbx1": True}
        board = await (await client.get("/api/v1/board", headers=bearer)).json()
        assert set(board) >= {"queues", "agents", "nodes", "status", "kpis", "thresholds"}
        wrong = {"Authorization": "Bearer cctv_wrong"}
        assert (await client.get("/api/v1/board", headers=wrong)).status == 401


async def test_api_figures_agree_with_the_report(
    wb_settings: config.Settings, clean_db: Engine, database_url: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    if now.hour == 0 and now.minute < 2:
        pytest.skip("too close to midnight UTC for a call 'today' that is over")
    # Today in the site's time zone (UTC here): one call an hour ago at most.
    queued = max(now - dt.timedelta(hours=1), now.replace(hour=0, minute=0, second=0))
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales", service_level_seconds=20)
        s.add_all(
            with_visit(
                [
                    Call(
                        node="pbx1",
                        uniqueid="1.1",
                        linkedid="1.1",
                        started_at=queued,
                        queued_at=queued,
                        answered_at=queued + dt.timedelta(seconds=12),
                        queue="sales",
                        agent="alice",
                        wait_seconds=12,
                        talk_seconds=60,
                        wrapup_seconds=5,
                        outcome="answered",
                    )
                ]
            )
        )
    async with http(wb_settings, clean_db) as (wb, client):
        await wb.parts.kpis.refresh()
        await login(client)
        kpis = await (await client.get("/api/v1/kpis")).json()
        report = Cli(database_url).ok("report", "--json")
    rep = json.loads(report.output)
    assert kpis["since"] == rep["since"]
    sales = rep["queues"][0]
    for key, value in kpis["queues"]["sales"].items():
        assert sales[key] == value, key
    assert kpis["queues"]["sales"]["answered"] == 1
    assert kpis["agents"]["alice"]["calls"] == 1
    async with http(wb_settings, clean_db) as (wb, client):
        await login(client)
        history = await (await client.get("/api/v1/history")).json()
    assert sum(s["offered"] for s in history["slots"]) == 1


async def test_metrics_in_the_exposition_format(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    token = add_token(clean_db, "prometheus")
    async with http(wb_settings, clean_db) as (wb, client):
        state = wb.parts.state
        state.apply("x/pbx1/queues/q", queue_payload("pbx1", 'we"ird\\q\n', waiting=2))
        state.apply("x/pbx1/status", node_payload("pbx1", True))
        await wb.parts.auth.cache.reload()
        assert (await client.get("/metrics")).status == 401
        resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    assert 'callcenter_queue_waiting{node="pbx1",queue="we\\"ird\\\\q\\n"} 2' in text
    assert 'callcenter_node_connected{node="pbx1"} 1' in text
    assert 'callcenter_node_connected{node="local"} 0' in text
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf]+$')
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter")
            assert name not in families
            families.add(name)
        elif not line.startswith("# HELP "):
            assert sample.match(line), line
    assert "callcenter_wallboard_clients" in families


# --- actions through AMI ----------------------------------------------------------------------


def reply(message: str, ok: bool = True) -> Any:
    def respond(fields: dict[str, str]) -> bytes:
        kind = "Success" if ok else "Error"
        return frame(f"Response: {kind}\r\nActionID: {fields['ActionID']}\r\nMessage: {message}")

    return respond


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    extra = {
        "QueuePause": reply("Interface paused successfully"),
        "QueueRemove": reply("Removed interface from queue"),
    }
    async with FakeAmi(extra=extra) as peer:
        yield peer


async def test_actions_reach_ami_with_the_agents_interface(
    wb_settings: config.Settings, clean_db: Engine, fake: FakeAmi
) -> None:
    node = config.NodeSettings(
        name="pbx1", port=fake.port, secret=config.Secret("s3cret"), connect_timeout=2.0
    )
    s = dataclasses.replace(wb_settings, nodes=(node,))
    links = links_for(s.nodes)
    stop = asyncio.Event()
    task = asyncio.create_task(links["pbx1"].run(stop))
    try:
        async with http(s, clean_db, links) as (wb, client):
            conn: FakeConnection = await fake.accept(resync=False)
            assert next(a for a in conn.actions if a["Action"] == "Login")["Events"] == "off"
            wb.parts.state.apply(
                "x/pbx1/agents/Alice",
                agent_payload("pbx1", "Alice", queues={"sales": {}, "support": {}}),
            )
            token = await login(client)
            headers = {"X-CSRF-Token": token}
            url = "/api/v1/agents/pbx1/Alice"
            assert (
                await client.post(f"{url}/pause", json={"reason": "coaching"}, headers=headers)
            ).status == 200
            assert (await client.post(f"{url}/unpause", headers=headers)).status == 200
            form = await client.post(
                "/agents/pbx1/Alice/logout", data={"csrf": token}, allow_redirects=False
            )
            assert form.status == 303
            sent = [a for a in conn.actions if a["Action"] != "Login"]
            strip = [{k: v for k, v in a.items() if k != "ActionID"} for a in sent]
            assert strip == [
                {
                    "Action": "QueuePause",
                    "Interface": "PJSIP/alice",
                    "Paused": "true",
                    "Reason": "coaching",
                },
                {"Action": "QueuePause", "Interface": "PJSIP/alice", "Paused": "false"},
                {"Action": "QueueRemove", "Queue": "sales", "Interface": "PJSIP/alice"},
                {"Action": "QueueRemove", "Queue": "support", "Interface": "PJSIP/alice"},
            ]
            # Asterisk says no: the supervisor is told why.
            conn.extra["QueuePause"] = reply("Interface not found", ok=False)
            refused = await client.post(f"{url}/pause", json={}, headers=headers)
            assert refused.status == 502
            assert "Interface not found" in (await refused.json())["error"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_no_ami_connection_is_503_not_a_hang(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    node = config.NodeSettings(name="pbx1", port=1, connect_timeout=0.5)  # nothing listens
    s = dataclasses.replace(wb_settings, nodes=(node,))
    links = links_for(s.nodes)
    stop = asyncio.Event()
    task = asyncio.create_task(links["pbx1"].run(stop))
    try:
        async with http(s, clean_db, links) as (wb, client):
            wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
            token = await login(client)
            started = asyncio.get_running_loop().time()
            down = await client.post(
                "/api/v1/agents/pbx1/Alice/pause", json={}, headers={"X-CSRF-Token": token}
            )
            assert down.status == 503
            assert "no AMI connection to node pbx1" in (await down.json())["error"]
            assert asyncio.get_running_loop().time() - started < 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


# --- a supervisor logs an agent in (issue 12, point 5) -----------------------------------------


def add_agents(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        directory.add_queue(s, "sales", display_name="Sales team")
        directory.add_queue(s, "support")
        directory.add_agent(s, name="Alice", extension="1001", pin="4321", full_name="Alice Doe")
        directory.join_queue(s, "sales", "Alice", 0)
        directory.join_queue(s, "support", "Alice", 2)
        directory.add_agent(s, name="Bob", extension="1002", pin="4321")
        directory.add_agent(s, name="Carl", extension="1003", pin="4321")
        directory.join_queue(s, "sales", "Carl", 0)
        directory.update_agent(s, "Carl", enabled=False)


async def test_a_supervisor_logs_an_agent_in_as_their_feature_code_does(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    add_agents(clean_db)
    extra = {"QueueAdd": reply("Added interface to queue")}
    async with FakeAmi(extra=extra) as fake:
        node = config.NodeSettings(
            name="pbx1", port=fake.port, secret=config.Secret("s3cret"), connect_timeout=2.0
        )
        s = dataclasses.replace(wb_settings, nodes=(node,))
        links = links_for(s.nodes)
        stop = asyncio.Event()
        task = asyncio.create_task(links["pbx1"].run(stop))
        try:
            async with http(s, clean_db, links) as (wb, client):
                conn: FakeConnection = await fake.accept(resync=False)
                token = await login(client)
                headers = {"X-CSRF-Token": token}
                html = await (await client.get("/board")).text()
                assert "/agents/pbx1/Alice/login" in html  # her logged-out row has a Log in
                resp = await client.post("/api/v1/agents/pbx1/Alice/login", headers=headers)
                assert resp.status == 200, await resp.text()
                sent = [
                    {k: v for k, v in a.items() if k != "ActionID"}
                    for a in conn.actions
                    if a["Action"] != "Login"
                ]
                assert sent == queue_add_actions("Alice", "PJSIP/1001", {"sales": 0, "support": 2})
                assert sent[1] == {
                    "Action": "QueueAdd",
                    "Queue": "support",
                    "Interface": "PJSIP/1001",
                    "Penalty": "2",
                    "Paused": "false",
                    "MemberName": "Alice",
                    "StateInterface": "PJSIP/1001",
                }
                # Asterisk is the truth: not logged in on the board until the bridge says so.
                rows = (await (await client.get("/api/v1/agents")).json())["agents"]
                assert next(a for a in rows if a["agent"] == "Alice")["state"] == "logged_out"
                wb.parts.state.apply(
                    "x/pbx1/agents/Alice",
                    agent_payload("pbx1", "Alice", interface="PJSIP/1001",
                                  queues={"sales": {}, "support": {}}),
                )  # fmt: skip
                rows = (await (await client.get("/api/v1/agents")).json())["agents"]
                assert next(a for a in rows if a["agent"] == "Alice")["state"] == "available"
                again = await client.post("/api/v1/agents/pbx1/Alice/login", headers=headers)
                assert again.status == 409
                for name, status, why in (
                    ("Bob", 409, "in no queue"),
                    ("Carl", 409, "disabled"),
                    ("Nobody", 404, "no agent Nobody is configured"),
                ):
                    resp = await client.post(f"/api/v1/agents/pbx1/{name}/login", headers=headers)
                    assert resp.status == status, name
                    assert why in (await resp.json())["error"]
                # Asterisk says "Already there" (an agent logged in meanwhile): done all the same.
                conn.extra["QueueAdd"] = reply("Unable to add interface: Already there", ok=False)
                wb.parts.state.apply("x/pbx1/agents/Alice", b"")
                form = await client.post(
                    "/agents/pbx1/Alice/login", data={"csrf": token}, allow_redirects=False
                )
                assert form.status == 303
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


# --- the OpenAPI document describes what the API answers ----------------------------------------


def conforms(value: Any, schema: dict[str, Any], doc: dict[str, Any], path: str = "") -> None:
    """A small check of ``value`` against the document's JSON Schema (the keywords it uses):
    $ref, type (with null), enum, properties (no others where properties are given), required,
    items, additionalProperties."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "enum" in schema:
        assert value in schema["enum"], (path, value)
    kinds = schema.get("type")
    if kinds is not None:
        names: dict[str, type | tuple[type, ...]] = {
            "null": type(None), "boolean": bool, "string": str, "array": list, "object": dict,
            "integer": int, "number": (int, float),
        }  # fmt: skip
        allowed = [kinds] if isinstance(kinds, str) else kinds
        ok = any(
            isinstance(value, names[k]) and not (isinstance(value, bool) and k != "boolean")
            for k in allowed
        )
        assert ok, (path, value, allowed)
    if isinstance(value, dict):
        props = schema.get("properties")
        for key in schema.get("required", []):
            assert key in value, (path, key)
        for key, item in value.items():
            if props is not None and key in props:
                conforms(item, props[key], doc, f"{path}.{key}")
            elif "additionalProperties" in schema:
                conforms(item, schema["additionalProperties"], doc, f"{path}.{key}")
            else:
                assert props is None or key in props, (path, key, "not in the document")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(item, schema["items"], doc, f"{path}[{i}]")


async def test_every_read_answers_as_the_openapi_document_says(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    add_agents(clean_db)
    async with http(wb_settings, clean_db) as (wb, client):
        state = wb.parts.state
        state.apply("x/pbx1/status", node_payload("pbx1", True))
        state.apply("x/pbx2/status", node_payload("pbx2", False))
        state.apply("x/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=2, logged_in=1))
        state.apply("x/pbx2/queues/other", queue_payload("pbx2", "other", waiting=1))
        state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice", "paused", reason="x"))
        state.apply("x/pbx2/agents/Dan", agent_payload("pbx2", "Dan"))
        await wb.parts.kpis.refresh()
        await login(client)
        doc = await (await client.get("/api/openapi.json")).json()
        for path, spec in doc["paths"].items():
            # Paths with {parameters} are checked with real ids in tests/test_crm_api.py.
            if "get" not in spec or path == "/api/openapi.json" or "{" in path:
                continue
            resp = await client.get(path)
            assert resp.status == 200, path
            schema = spec["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            conforms(await resp.json(), schema, doc, path)
        agents = (await (await client.get("/api/v1/agents")).json())["agents"]
        states = {a["key"]: a["state"] for a in agents}
        # Bob and Carl are configured (logged out, on the first node); Dan's node is down.
        assert states == {
            "pbx1/Alice": "paused", "local/Bob": "logged_out", "local/Carl": "logged_out",
            "pbx2/Dan": "unknown",
        }  # fmt: skip
        queues = (await (await client.get("/api/v1/queues")).json())["queues"]
        assert {q["queue"]: q["unknown"] for q in queues} == {
            "other": True, "sales": False, "support": False}  # fmt: skip


async def test_metrics_leave_out_a_node_that_is_down(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        state = wb.parts.state
        state.apply("x/pbx1/status", node_payload("pbx1", False))
        state.apply("x/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=2))
        state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        await login(client)
        text = await (await client.get("/metrics")).text()
    assert 'callcenter_node_connected{node="pbx1"} 0' in text
    assert "callcenter_queue_waiting{" not in text  # unknown: no sample, not the last value
    assert 'callcenter_agents{node="pbx1"' not in text
