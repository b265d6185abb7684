"""``callcenter recordings`` and the recording options of queues and campaigns, against the
test database and a recordings directory of the test's own."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models_quality import Recording
from callcenter.recordings import retention
from tests.conftest import Cli
from tests.test_recordings_web import add_recording

NOW = dt.datetime.now(dt.UTC)


def test_queues_and_campaigns_take_a_recording_policy(run_cli: Cli) -> None:
    out = json.loads(run_cli.ok("queues", "add", "sales", "--record", "all", "--json").output)
    assert (out["record_policy"], out["record_share"]) == ("all", 0.0)
    bad = run_cli("queues", "update", "sales", "--record", "sampled")
    assert bad.exit_code == 1
    assert "needs --record-share" in bad.output
    run_cli.ok("queues", "update", "sales", "--record", "sampled", "--record-share", "0.2")
    out = json.loads(run_cli.ok("queues", "show", "sales", "--json").output)
    assert (out["record_policy"], out["record_share"]) == ("sampled", 0.2)
    bad = run_cli("queues", "update", "sales", "--record-share", "2")
    assert bad.exit_code == 1
    assert "between 0 and 1" in bad.output
    assert run_cli("queues", "update", "sales", "--record", "often").exit_code == 2
    out = json.loads(run_cli.ok(
        "campaigns", "add", "spring", "--queue", "sales", "--record", "on_demand", "--json"
    ).output)  # fmt: skip
    assert out["record_policy"] == "on_demand"
    run_cli.ok("campaigns", "update", "spring", "--record", "none")
    out = json.loads(run_cli.ok("campaigns", "show", "spring", "--json").output)
    assert out["record_policy"] == "none"


def test_list_show_hold_and_purge(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    env = {"CALLCENTER_RECORDING__DIR": str(root)}
    old = NOW - dt.timedelta(days=100)
    a = add_recording(clean_db, root, path="2026/08/01/1.1_1.2.wav", started=old, uniqueid="1.1")
    b = add_recording(clean_db, root, path="2026/08/01/2.1_2.2.wav", started=old, uniqueid="2.1",
                      agent="bob", muted_ms=2500, mutes=1)  # fmt: skip
    c = add_recording(clean_db, root, path="2026/08/01/3.1_3.2.wav", started=old, uniqueid="3.1",
                      state="missing")  # fmt: skip
    d = add_recording(clean_db, root, path="2026/12/01/4.1_4.2.wav", started=NOW, uniqueid="4.1")
    e = add_recording(clean_db, root, path="2026/08/01/5.1_5.2.wav", started=old, uniqueid="5.1",
                      state="recording")  # fmt: skip
    listed = json.loads(run_cli.ok("recordings", "list", "--json").output)
    assert [r["id"] for r in listed] == [d, e, c, b, a]
    bobs = json.loads(run_cli.ok("recordings", "list", "--agent", "bob", "--json").output)
    assert [r["id"] for r in bobs] == [b]
    assert bobs[0]["muted_ms"] == 2500
    recent = json.loads(run_cli.ok("recordings", "list", "--since", "-7d", "--json").output)
    assert [r["id"] for r in recent] == [d]
    table = run_cli.ok("recordings", "list").output
    assert "5 recordings" in table
    assert "0:02" in table
    shown = json.loads(run_cli("recordings", "show", str(b), "--json", env=env).output)
    assert shown["file"] == str(root / "2026/08/01/2.1_2.2.wav")
    assert shown["listens"] == []
    assert run_cli("recordings", "show", "999").exit_code == 1
    # Legal hold keeps a recording through a purge.
    bad = run_cli("recordings", "hold", str(a))
    assert bad.exit_code == 1
    assert "needs a reason" in bad.output
    run_cli.ok("recordings", "hold", str(a), "--reason", "claim 2026-17")
    # A dry run counts and changes nothing.
    dry = json.loads(run_cli("recordings", "purge", "--older-than", "90d", "--dry-run",
                             "--json", env=env).output)  # fmt: skip
    assert (dry["recordings"], dry["files"], dry["absent"], dry["held"]) == (2, 1, 1, 1)
    assert (root / "2026/08/01/2.1_2.2.wav").exists()
    result = run_cli("recordings", "purge", "--older-than", "90d", env=env)
    assert result.exit_code == 0, result.output
    assert "purged 2 recordings" in result.output
    assert "1 kept on legal hold" in result.output
    with Session(clean_db) as s:
        states = dict(s.execute(sa.select(Recording.id, Recording.state)).all())
        purged_at = s.scalar(sa.select(Recording.purged_at).where(Recording.id == b))
    assert states == {a: "done", b: "purged", c: "purged", d: "done", e: "recording"}
    assert purged_at is not None
    assert not (root / "2026/08/01/2.1_2.2.wav").exists()
    assert (root / "2026/08/01/1.1_1.2.wav").exists()  # on hold
    assert (root / "2026/12/01/4.1_4.2.wav").exists()  # too young
    # Again: nothing left to do; released, the held one goes too.
    again = json.loads(run_cli("recordings", "purge", "--older-than", "90d", "--json",
                               env=env).output)  # fmt: skip
    assert again["recordings"] == 0
    run_cli.ok("recordings", "hold", str(a), "--release")
    run_cli("recordings", "purge", "--older-than", "90d", env=env)
    assert not (root / "2026/08/01/1.1_1.2.wav").exists()
    bad = run_cli("recordings", "hold", str(b), "--reason", "too late")
    assert bad.exit_code == 1
    assert "purged" in bad.output
    bad = run_cli("recordings", "purge", "--older-than", "soon", env=env)
    assert bad.exit_code == 1
    assert "cannot read the age" in bad.output


def test_purge_in_batches_and_two_at_once(clean_db: Engine, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    old = NOW - dt.timedelta(days=40)
    for i in range(25):
        add_recording(clean_db, root, path=f"2026/10/01/{i}.1_{i}.2.wav", seconds=0.05,
                      started=old + dt.timedelta(seconds=i), uniqueid=f"{i}.1")  # fmt: skip
    dry = retention.purge(clean_db, root, NOW - dt.timedelta(days=30), dry_run=True, batch=10)
    assert (dry.recordings, dry.files) == (25, 25)
    report = retention.purge(clean_db, root, NOW - dt.timedelta(days=30), batch=10)
    assert (report.recordings, report.files, report.absent) == (25, 25, 0)
    assert not list(root.rglob("*.wav"))
