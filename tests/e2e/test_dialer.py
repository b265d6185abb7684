"""The dialer against a real Asterisk: customers are Local channels into [sim-customer]
(dialplans/simulate.conf.j2: a person with a short greeting, a machine with a long one, busy,
never answering, congestion), agents are SIPp phones registered as their PJSIP endpoints and
logged in to the campaign queue. The bridge runs beside the dialer (agent state comes from its
MQTT snapshots, as in production).

Checked per run: the attempt records' outcomes, AMD's verdicts, answer -> agent under 2 s,
the information message on an abandon, DNC and calling windows at dial time, and agreement
with Asterisk's own CDR and queue_log, call by call.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.campaigns import contacts as contact_lists
from callcenter.campaigns import scheduling, store
from callcenter.campaigns.dialer import Dialer
from callcenter.campaigns.numbers import Normaliser
from callcenter.core.queue_log import parse_queue_log
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from tests.e2e import recorder
from tests.e2e.conftest import Pbx, Stack, stack, zone_where
from tests.e2e.recorder import recording

pytestmark = pytest.mark.asterisk

UTC = dt.UTC
CUSTOMERS = "Local/{number}@sim-customer/n"


@pytest.fixture(autouse=True)
async def record_dialer(
    request: pytest.FixtureRequest, pbx: Pbx, engine: Engine
) -> AsyncIterator[None]:
    """CALLCENTER_RECORD_DIALER=DIR records each test (tests/e2e/recorder.py); unset: nothing."""
    async with recording(
        request.node.name,
        ami_port=pbx.ami_port,
        username=recorder.USERNAME,
        secret=recorder.SECRET,
        log_dir=pbx.directory / "log",
        engine=engine,
    ):
        yield


def phone(kind: int, stay: int, serial: int) -> str:
    """+1 201 55X XX<kind><stay>: [sim-customer] reads the last two digits."""
    return f"+1201555{serial:02d}{kind}{stay}"


PERSON, MACHINE, BUSY, NEVER, CONGESTION, PERSON_NOW = 1, 2, 3, 4, 5, 6


def make_campaign(
    engine: Engine,
    tmp: Path,
    name: str,
    numbers: Sequence[tuple[str, str]],
    **settings: Any,
) -> None:
    """A campaign with these contacts (phone, time zone), started."""
    path = tmp / f"{name}.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "name", "timezone", "account"])
        for i, (number, zone) in enumerate(numbers):
            w.writerow([number, f"Customer {i}", zone, f"A-{i:03d}"])
    defaults: dict[str, Any] = {
        "seller_name": "Example Energy",
        "seller_number": "+12015550100",
        "caller_id": "+12015550100",
        "ring_seconds": 15,
        "max_attempts": 1,
    }
    with Session(engine) as s, s.begin():
        store.add_campaign(s, name, region="US", **{**defaults, **settings})
    with Session(engine) as s, s.begin():
        contact_lists.import_contacts(s, name, path, Normaliser("US"), "UTC")
    with Session(engine) as s, s.begin():
        store.start_campaign(s, name, dt.datetime.now(UTC), customer_channel=CUSTOMERS)


def attempts(engine: Engine, campaign: str) -> list[CampaignAttempt]:
    with Session(engine, expire_on_commit=False) as s:
        return list(
            s.scalars(
                sa.select(CampaignAttempt)
                .join(Campaign, Campaign.id == CampaignAttempt.campaign_id)
                .where(Campaign.name == campaign)
                .order_by(CampaignAttempt.id)
            )
        )


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def all_ended(engine: Engine, campaign: str, count: int, timeout: float = 60) -> None:
    def done() -> bool:
        rows = attempts(engine, campaign)
        return len(rows) >= count and all(a.outcome is not None for a in rows)

    await until(done, timeout, f"{count} ended attempts of {campaign}")


@contextlib.asynccontextmanager
async def dialer(st: Stack, name: str = "", **changes: Any) -> AsyncIterator[Dialer]:
    settings = dataclasses.replace(
        st.settings,
        dialer=dataclasses.replace(
            st.settings.dialer,
            customer_channel=CUSTOMERS,
            tick=0.3,
            lease_seconds=3.0,
            name=name or "e2e-dialer",
            **changes,
        ),
    )
    d = Dialer(settings, engine=st.engine)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop), name=f"dialer-{name}")
    try:
        yield d
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def cdr_rows(pbx: Pbx) -> dict[str, list[str]]:
    """cdr-custom's Master.csv by uniqueid (column 17)."""
    path = pbx.directory / "log" / "cdr-custom" / "Master.csv"
    rows: dict[str, list[str]] = {}
    if path.exists():
        for row in csv.reader(path.read_text().splitlines()):
            if len(row) >= 17:
                rows[row[16]] = row
    return rows


def queue_log_of(pbx: Pbx, callid: str) -> list[tuple[str, str, str]]:
    entries = parse_queue_log(pbx.queue_log.read_text())
    return [(e.event, e.agent, "|".join(e.data)) for e in entries if e.callid == callid]


async def test_progressive_with_amd_every_kind_of_customer(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    open_zone = zone_where(range(9, 19))
    closed_zone = zone_where(range(0, 6))
    people = [phone(PERSON, 2, 1), phone(PERSON, 2, 2)]
    numbers = [
        *(zip(people, [open_zone] * 2, strict=True)),
        (phone(MACHINE, 2, 3), open_zone),
        (phone(BUSY, 1, 4), open_zone),
        (phone(NEVER, 1, 5), open_zone),
        (phone(CONGESTION, 1, 6), open_zone),
        (phone(PERSON, 2, 7), open_zone),  # on the DNC list before the start
        (phone(PERSON, 2, 8), closed_zone),  # outside its calling window all along
    ]
    async with stack(pbx, engine, tmp_path) as st:
        await st.phones.phone("alice", "1001", "answer", ring_ms=50, talk_ms=3000)
        await st.phones.phone("bob", "1002", "answer", ring_ms=50, talk_ms=3000)
        await st.login("alice", "bob")
        make_campaign(engine, tmp_path, "kinds", numbers, mode="progressive", queue="sales")
        with Session(engine) as s, s.begin():
            store.dnc_add(s, Normaliser("US"), [phone(PERSON, 2, 7)], source="e2e")
        async with dialer(st):
            await all_ended(engine, "kinds", 7, timeout=90)
            await asyncio.sleep(1.0)
        rows = {a.phone: a for a in attempts(engine, "kinds")}
    assert phone(PERSON, 2, 8) not in rows, "a contact outside its calling window was dialled"
    outcome = {p: a.outcome for p, a in rows.items()}
    assert outcome == {
        people[0]: "connected",
        people[1]: "connected",
        phone(MACHINE, 2, 3): "machine",
        phone(BUSY, 1, 4): "busy",
        phone(NEVER, 1, 5): "no_answer",
        phone(CONGESTION, 1, 6): "failed",
        phone(PERSON, 2, 7): "skipped",
    }, {p: (a.outcome, a.reason) for p, a in rows.items()}
    assert rows[phone(PERSON, 2, 7)].reason == "do-not-call list"
    assert rows[phone(PERSON, 2, 7)].channel_id is None
    assert rows[phone(MACHINE, 2, 3)].amd_status == "MACHINE"
    cdr = cdr_rows(pbx)
    for p in people:
        a = rows[p]
        assert a.amd_status == "HUMAN", (a.amd_status, a.amd_cause)
        assert a.agent in ("alice", "bob")
        assert a.human_at is not None
        assert a.agent_at is not None
        to_agent = (a.agent_at - a.human_at).total_seconds()
        assert 0 <= to_agent < 2.0, f"answer -> agent {to_agent:.3f} s"
        assert a.channel_id is not None
        # queue_log: the call entered the campaign queue and this agent took it.
        events = queue_log_of(pbx, a.channel_id)
        assert events[0][:2] == ("ENTERQUEUE", "NONE"), events
        assert any(e == "CONNECT" and agent == a.agent for e, agent, _ in events), events
        assert cdr[a.channel_id][13] == "ANSWERED", cdr[a.channel_id]
    for p, disposition in ((phone(BUSY, 1, 4), "BUSY"), (phone(NEVER, 1, 5), "NO ANSWER")):
        cid = rows[p].channel_id
        assert cid is not None
        assert cid in cdr, sorted(cdr)
        assert cdr[cid][13] == disposition, cdr[cid]
        assert queue_log_of(pbx, cid) == []
    # Every dialled attempt has its times in order.
    for a in rows.values():
        if a.channel_id is None:
            continue
        assert a.originated_at is not None
        assert a.ended_at is not None
        assert a.created_at <= a.originated_at <= a.ended_at
        assert a.caller_id == "+12015550100"


async def test_no_agent_in_time_hears_the_information_message(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    async with stack(pbx, engine, tmp_path) as st:
        # Alice is logged in and free, but her phone rings 3 s: longer than the 1 s Queue()
        # leaves after AMD's verdict. The person must hear the information message.
        await st.phones.phone("alice", "1001", "answer", ring_ms=3000, talk_ms=2000)
        await st.login("alice")
        make_campaign(engine, tmp_path, "late", [(phone(PERSON, 3, 11), zone)],
                      mode="progressive", queue="sales")  # fmt: skip
        async with dialer(st):
            await all_ended(engine, "late", 1, timeout=60)
        (a,) = attempts(engine, "late")
    assert a.outcome == "abandoned", (a.outcome, a.reason)
    assert a.message_started_at is not None
    assert a.human_at is not None
    assert a.message == "please-try-call-later"
    assert a.message_ended_at is not None
    assert a.message_ended_at > a.message_started_at
    assert (a.message_started_at - a.human_at).total_seconds() < 2.0
    assert a.agent_at is None
    events = [e for e, _, _ in queue_log_of(pbx, a.channel_id or "")]
    assert events[0] == "ENTERQUEUE", events
    assert "CONNECT" not in events, events
    assert "EXITWITHTIMEOUT" in events, events


async def test_agentless_message_and_channel_limit(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    numbers = [(phone(PERSON, 1, 20 + i), zone) for i in range(3)] + [(phone(MACHINE, 1, 30), zone)]
    async with stack(pbx, engine, tmp_path) as st:
        make_campaign(engine, tmp_path, "notice", numbers, mode="agentless",
                      agentless_message="hello-world", channel_limit=2)  # fmt: skip
        async with dialer(st) as d:
            most = 0

            def ended() -> bool:
                nonlocal most
                most = max(most, len(d.tracks))
                rows = attempts(engine, "notice")
                return len(rows) == 4 and all(a.outcome for a in rows)

            await until(ended, 90, "4 ended agentless attempts")
        rows = {a.phone: a for a in attempts(engine, "notice")}
    assert most <= 2, f"{most} calls at once with a channel limit of 2"
    for p, _ in numbers[:3]:
        assert rows[p].outcome == "delivered", (rows[p].outcome, rows[p].reason)
        assert rows[p].message == "hello-world"
        assert rows[p].message_ended_at is not None
    assert rows[numbers[3][0]].outcome == "machine"


async def test_preview_calls_the_agent_then_the_customer(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    async with stack(pbx, engine, tmp_path) as st:
        await st.phones.phone("alice", "1001", "answer", ring_ms=50, talk_ms=6000)
        await st.login("alice")
        make_campaign(engine, tmp_path, "look", [(phone(PERSON_NOW, 2, 40), zone),
                                                 (phone(PERSON_NOW, 2, 41), zone)],
                      mode="preview", queue="sales")  # fmt: skip
        async with dialer(st):
            with Session(engine) as s, s.begin():
                c = store.get_campaign(s, "look")
                shown = scheduling.preview_take(
                    s, c, "alice", now=dt.datetime.now(UTC), dialer="web",
                    site_tz=zoneinfo.ZoneInfo("UTC"),
                )  # fmt: skip
                assert shown is not None
                scheduling.preview_dial(s, c, "alice", now=dt.datetime.now(UTC))
            await all_ended(engine, "look", 1, timeout=60)
        (a,) = attempts(engine, "look")
    assert a.phone == shown.phone
    assert a.mode == "preview"
    assert a.agent == "alice"
    assert a.outcome == "connected", (a.outcome, a.reason)
    assert a.answered_at is not None
    assert a.agent_at is not None
    assert a.answered_at <= a.agent_at


async def test_a_restarted_dialer_neither_loses_nor_repeats_and_one_dialer_per_campaign(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    async with stack(pbx, engine, tmp_path) as st:
        await st.phones.phone("alice", "1001", "answer", ring_ms=50, talk_ms=8000)
        await st.login("alice")
        make_campaign(engine, tmp_path, "again", [(phone(PERSON, 0, 50), zone),
                                                  (phone(PERSON, 0, 51), zone)],
                      mode="progressive", queue="sales")  # fmt: skip
        async with dialer(st, "first") as first:
            await until(lambda: any(a.agent_at for a in attempts(engine, "again")), 40,
                        "a connected call")  # fmt: skip
            # A second dialer beside the first never dials this campaign.
            async with dialer(st, "second") as second:
                await asyncio.sleep(2.0)
                assert not second.runs
                assert first.runs
        # The first dialer stopped with the call up; the next one takes the campaign over.
        async with dialer(st, "third"):
            await all_ended(engine, "again", 1, timeout=40)
            await asyncio.sleep(1.0)
        rows = attempts(engine, "again")
    dialled = [a for a in rows if a.channel_id]
    assert len({a.phone for a in dialled}) == len(dialled), "a contact was dialled twice"
    first_call = dialled[0]
    assert first_call.outcome == "connected", (first_call.outcome, first_call.reason)
    assert first_call.agent == "alice"
    assert {a.dialer for a in rows} <= {"first", "third"}
