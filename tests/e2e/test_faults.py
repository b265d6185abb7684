"""The soak's faults, shorter: a few callers, a few agents and the campaign running, our five
services as processes (tests/e2e/soak_run.py). One run per module, every fault in turn at a
recorded moment (a run per fault would take about two minutes each); each test then checks
its fault: no record lost or doubled against queue_log, CDR and the attempts, and the
wallboard agrees with Asterisk's QueueStatus again within 5 s of the part's return.

Skipped, with the reason, without Asterisk, SIPp, mosquitto or root for a private PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.e2e.soak_run import EXERCISED, FAULTS, FaultResult, Outcome, Plan, missing, soak_run
from tests.test_asterisk_live import asterisk_binary

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

#: Traffic for 2.5 minutes: the faults (about 20 s each with the short outages) all fall
#: inside it, so each happens with calls up.
PLAN = Plan(calls=6, agents=4, minutes=2.5, talk=5, faults=FAULTS, streams=5, contacts=120,
            fault_gap=3)  # fmt: skip


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    why = missing(asterisk_binary)
    if why:
        pytest.skip(why)
    sipp = shutil.which("sipp")
    assert sipp is not None
    return asyncio.run(soak_run(PLAN, asterisk_binary(), sipp, short=True))


def _why(outcome: Outcome) -> str:
    return "\n".join(f"{d.call}: {d.why}" for d in outcome.comparison.disagreements)


@pytest.mark.timeout(480)
@pytest.mark.parametrize("fault", FAULTS)
def test_fault(outcome: Outcome, fault: str) -> None:
    result: FaultResult = next(f for f in outcome.faults if f.name == fault)
    assert (result.lost, result.duplicates) == (0, 0), (result, _why(outcome))
    assert result.reconverge_s is not None, result
    assert result.reconverge_s <= 5, result
    if fault == "ivr":
        assert result.in_ivr, f"nobody was in the IVR when it was killed: {result}"
        assert result.stranded == (), f"callers of the killed IVR never reached a queue: {result}"
        assert outcome.try_later == [], "callers heard 'try later' instead of the fallback queue"


@pytest.mark.timeout(480)
def test_whole_run(outcome: Outcome) -> None:
    """After every fault and the end of the traffic: every queue visit and attempt of
    Asterisk's has its record, none twice, and the campaign really dialled."""
    c = outcome.comparison
    assert (c.lost, c.duplicates) == (0, 0), _why(outcome)
    assert c.calls > 0, c
    assert c.inbound > 0, c  # the SIPp callers got through, not only the campaign
    assert c.attempts > 0, c


#: The logs the scan must at least have read: each service's, PostgreSQL's, mosquitto's and
#: Asterisk's console output and queue_log.
MUST_SCAN = {"logs/bridge.log", "logs/ivr.log", "logs/dialer.log", "logs/wallboard.log",
             "logs/webhooks.log", "logs/postgres.log", "mosquitto.log", "ast/stdout.log",
             "ast/log/queue_log"}  # fmt: skip


@pytest.mark.timeout(480)
def test_no_secret_in_logs(outcome: Outcome) -> None:
    """No secret of the run (AMI, SIP, web passwords right and wrong, API and TV tokens,
    session cookies, signing keys) in any of its logs, the services at debug level, after
    every path that handles one was walked (wrong and right logins, the TV token in a query
    string, bearer tokens, a wrong AMI login)."""
    assert outcome.exercised == EXERCISED
    unread = MUST_SCAN - set(outcome.logs)
    assert not unread, f"not scanned: {sorted(unread)}; scanned: {outcome.logs}"
    assert outcome.logs_scanned >= len(MUST_SCAN)
    assert len(outcome.secrets_checked) >= 12, outcome.secrets_checked
    leaks = [f"{x.file}:{x.line}: {x.secret} ({x.form})" for x in outcome.leaks]
    assert leaks == [], "secrets in the logs (names only):\n" + "\n".join(leaks[:50])
