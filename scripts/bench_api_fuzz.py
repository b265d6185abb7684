"""schemathesis against the wallboard's own OpenAPI document (``/api/openapi.json``): every
operation, with and without authentication, and no answer may break the document.

The real wallboard (:class:`~callcenter.wallboard.app.Wallboard`, what ``callcenter run``
serves) runs on a loopback port in a thread of this process, against a database of the
benchmark's own (dropped afterwards) that holds a supervisor, a TV token, an API token of
each scope, a queue, an agent and a customer; no AMI link (an action answers 404 "node not
configured"). aiohttp has no in-process ASGI/WSGI entry for schemathesis, hence the port.
schemathesis' own command line (``schemathesis run``, its default phases: examples, coverage,
fuzzing, stateful) then runs once per identity:

- ``anonymous``: no credentials (the document's 401s);
- ``tv``: a TV token (board reads; the CRM's 403);
- ``api-write``: an API token of scope write (board reads, the CRM's reads and writes);
- ``session``: a supervisor's session cookie and its CSRF token (the supervisor's actions).

Checks: ``not_a_server_error`` (no 5xx), ``status_code_conformance`` (every status is one
the document names), ``content_type_conformance``, ``response_headers_conformance`` and
``response_schema_conformance`` (every body fits its schema), ``negative_data_rejection``
(input the document forbids is refused, e.g. an empty ``day``). Not run:
``positive_data_acceptance`` (a valid-looking request may be refused for what the document
cannot say: an unknown customer id, a case number taken, a node without AMI) and the stateful
``use_after_free``/``ensure_resource_availability`` (nothing here is deleted).

Keys: ``api.schemathesis_failures`` (goal 0: failing checks summed over identities),
``api.schemathesis_requests`` (requests the server answered), ``api.schemathesis_5xx``
(answers of 500 or more, counted by the server), ``api.schemathesis_operations``.
``BENCH_API_FUZZ_EXAMPLES`` (100) caps the examples per operation and phase,
``BENCH_API_FUZZ_SEED`` (16) seeds the run; ``BENCH_API_FUZZ_KEEP=1`` keeps the reports in
``bench/api_fuzz/``. ``python scripts/bench_api_fuzz.py`` prints each failure's title.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from callcenter import config, directory, tokens  # noqa: E402
from callcenter.campaigns.numbers import Normaliser  # noqa: E402
from callcenter.crm import customers  # noqa: E402
from callcenter.db import engine as db  # noqa: E402
from callcenter.wallboard import accounts  # noqa: E402
from callcenter.wallboard.app import Wallboard  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
EXAMPLES = int(os.environ.get("BENCH_API_FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("BENCH_API_FUZZ_SEED", "16"))
PASSWORD = "bench password 16"  # noqa: S105 - the bench's own throwaway supervisor
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
])  # fmt: skip
#: Seconds one identity's run may take at most. (Not schemathesis' --max-time: with it the
#: fuzzing phase repeats until the budget is spent, whatever --max-examples says.)
RUN_LIMIT = 1800


class CountingWallboard(Wallboard):
    """The wallboard, counting its answers by status class (the server's own word)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: collections.Counter[int] = collections.Counter()

    def make_app(self) -> web.Application:
        app = super().make_app()

        async def count(request: web.Request, response: web.StreamResponse) -> None:
            self.answers[response.status // 100] += 1

        app.on_response_prepare.append(count)
        return app


class Running:
    """The served wallboard, its address, and the credentials of each identity (name ->
    schemathesis ``-H`` arguments). (No dataclass: scripts/bench.py loads this file without
    putting it in sys.modules, where dataclasses looks for its module.)"""

    def __init__(self, wallboard: CountingWallboard, base: str,
                 identities: dict[str, list[str]]) -> None:  # fmt: skip
        self.wallboard = wallboard
        self.base = base
        self.identities = identities


def seed(engine: sa.Engine) -> dict[str, str]:
    """A supervisor, tokens, a queue, an agent and a customer; the secrets to use them."""
    with Session(engine) as s, s.begin():
        accounts.add_user(s, "sam", PASSWORD)
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.join_queue(s, "sales", "alice")
        customers.create_customer(s, Normaliser("US"), name="Carol", phones=["2015550101"])
        _, tv = accounts.add_token(s, "bench-tv")
        _, write = tokens.add_token(s, "bench-write", "write")
    return {"tv": tv, "write": write}


async def session_of(base: str) -> tuple[str, str]:
    """Log the supervisor in through the form: the session cookie and its CSRF token."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web_:
        page = await (await web_.get(f"{base}/login")).text()
        nonce = page.split('name="csrf" value="')[1].split('"')[0]
        form = {"name": "sam", "password": PASSWORD, "csrf": nonce}
        resp = await web_.post(f"{base}/login", data=form, allow_redirects=False)
        assert resp.status == 303, resp.status
        cookie = next(c.value for c in web_.cookie_jar if c.key == "cc_session")
        board = await (await web_.get(f"{base}/board")).text()
        csrf = board.split('name="csrf-token" content="')[1].split('"')[0]
    return cookie, csrf


@contextlib.contextmanager
def served() -> Iterator[Running]:
    """The wallboard on a loopback port, on a database of its own, until the block ends."""
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    engine = db.make_engine(config.DatabaseSettings(url=url))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread: threading.Thread | None = None
    try:
        db.upgrade(engine)
        secret = seed(engine)
        tag = secrets.token_hex(3)
        key = config.Secret(secrets.token_hex(16))
        settings = dataclasses.replace(
            config.load(environ={"CALLCENTER_CONFIG": ""}),
            database=config.DatabaseSettings(url=url),
            mqtt=config.MqttSettings(topic_prefix=f"ccbench-{tag}", client_id=f"ccbench-{tag}"),
            wallboard=config.WallboardSettings(port=0, secret_key=key),
        )
        wb = CountingWallboard(settings, engine=engine, links={})
        thread = threading.Thread(target=loop.run_until_complete, args=(wb.run(stop),),
                                  name="bench-wallboard", daemon=True)  # fmt: skip
        thread.start()
        deadline = time.monotonic() + 30
        while not wb.started.is_set():
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the wallboard did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{wb.port}"
        cookie, csrf = asyncio.run(session_of(base))
        identities = {
            "anonymous": [],
            "tv": ["-H", f"Authorization: Bearer {secret['tv']}"],
            "api-write": ["-H", f"Authorization: Bearer {secret['write']}"],
            "session": ["-H", f"Cookie: cc_session={cookie}", "-H", f"X-CSRF-Token: {csrf}",
                        "-H", f"Origin: {base}"],
        }  # fmt: skip
        yield Running(wb, base, identities)
    finally:
        if thread is not None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
        loop.close()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def schemathesis_run(base: str, headers: list[str], report: Path, *, examples: int,
                     seed_: int, limit: float = RUN_LIMIT) -> dict[str, Any]:  # fmt: skip
    """One ``schemathesis run`` against the document; its JSON report (killed past
    ``limit`` seconds: a RuntimeError)."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/api/openapi.json",
        "--checks", CHECKS, "--max-examples", str(examples), "--seed", str(seed_),
        "--generation-database", "none", "--workers", "1",
        "--request-timeout", "20", "--no-color", "--warnings", "off",
        "--report", "json", "--report-json-path", str(report), *headers,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit,
                          check=False)  # fmt: skip
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report: {done.stdout[-2000:]}{done.stderr}")
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = done.stdout
    return result


def fuzz(examples: int = EXAMPLES, seed_: int = SEED, keep: Path | None = None,
         identities: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Every identity's run; the figures and, per identity, its failures."""
    out = keep or Path(tempfile.mkdtemp(prefix="ccapifuzz"))
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    # The wallboard logs every refused request and failed check it is fed (that is its job);
    # here they are the fuzzer's thousands: keep them out of the bench's output.
    quiet = logging.getLogger("callcenter")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with served() as running:
            for name, headers in running.identities.items():
                if identities and name not in identities:
                    continue
                runs[name] = schemathesis_run(running.base, headers, out / f"{name}.json",
                                              examples=examples, seed_=seed_)  # fmt: skip
            answers = dict(running.wallboard.answers)
    finally:
        quiet.setLevel(level)
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    failures = sum(f["count"] for r in runs.values() for f in r["failures"])
    failures += sum(e["count"] for r in runs.values() for e in r["errors"])
    failures += sum(1 for r in runs.values() if not r["complete"])
    return {
        "api.schemathesis_failures": float(failures),
        "api.schemathesis_requests": float(sum(answers.values())),
        "api.schemathesis_5xx": float(answers.get(5, 0)),
        "api.schemathesis_operations": float(
            max((r["operations"] or {}).get("tested", 0) for r in runs.values())
        ),
        "runs": runs,
    }


def run() -> dict[str, float]:
    keep = ROOT / "bench" / "api_fuzz" if os.environ.get("BENCH_API_FUZZ_KEEP") else None
    result = fuzz(keep=keep)
    return {k: v for k, v in result.items() if k.startswith("api.")}


if __name__ == "__main__":
    outcome = fuzz(keep=ROOT / "bench" / "api_fuzz")
    for name, r in outcome["runs"].items():
        cases = r["test_cases"]
        print(f"{name:10} generated {cases['generated']:6}, failing {cases['with_failures']}, "
              f"stop {r['stop_reason']}")  # fmt: skip
        for f in r["failures"] + r["errors"]:
            print(f"    {f['count']:4} x {f['title']} {f.get('operations', '')}")
        if r["failures"] or r["errors"]:  # schemathesis' own account: the request, the answer
            print(r["output"].partition("FAILURES")[2].partition("SUMMARY")[0])
    for key, value in outcome.items():
        if key.startswith("api."):
            print(f"{key:32} {value:12,.0f}")
