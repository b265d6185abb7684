"""``callcenter simulate``'s engine against the real Asterisk: Local-channel callers through
the IVR, Local-channel agents in the queue, patience and pauses; its counters and our call log
must both equal what Asterisk's queue_log says of the same calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from callcenter.simulate.model import Model, Options, parse_distribution, sim_agents
from callcenter.simulate.runner import Simulation
from tests.e2e.conftest import DID, Pbx, stack
from tests.e2e.test_calls import agree, new_entries, queue_log_size

pytestmark = pytest.mark.asterisk


async def test_simulated_traffic_matches_queue_log(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    options = Options(
        arrivals_per_minute=40,
        mix={"1": 1.0},
        pre=parse_distribution("1.5"),
        patience=parse_distribution("uniform:3-9"),
        ring=parse_distribution("uniform:0.5-1.5"),
        handle=parse_distribution("uniform:2-4"),
        no_answer=0.15,
        pause_chance=0.3,
        pause=parse_distribution("2"),
    )
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        sim = Simulation(
            st.settings.node("local"), Model(options, seed=42), did=DID, queues=["sales"],
            agents=sim_agents(2), duration=14, drain=30,
        )  # fmt: skip
        stop = asyncio.Event()
        async with asyncio.timeout(60):
            progress = await sim.run(stop)
        await agree(st, start, None)
        events = Counter(e.event for e in new_entries(pbx, start))
        assert progress.placed >= 4, progress
        assert progress.queued == events["ENTERQUEUE"], (progress, events)
        assert progress.answered == events["CONNECT"], (progress, events)
        assert progress.abandoned == events["ABANDON"], (progress, events)
        assert progress.timed_out == events["EXITWITHTIMEOUT"], (progress, events)
        assert events["REMOVEMEMBER"] == 2, events  # both simulated agents logged out


def test_simulate_command_places_calls_and_logs_its_agents_out(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    """The click command itself, as `callcenter simulate` runs it (without the composition
    root: main.py registers it), against the same Asterisk, for a few seconds."""
    from click.testing import CliRunner

    from callcenter.cli.context import AppContext
    from callcenter.cli.simulate_cmd import simulate

    start = queue_log_size(pbx)
    node = pbx.settings.node("local")
    env = {
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_DATABASE__URL": pbx.settings.database.url,
        "CALLCENTER_NODES__LOCAL__PORT": str(node.port),
        "CALLCENTER_NODES__LOCAL__SECRET": node.secret.reveal(),
    }
    obj = AppContext(None)
    try:
        result = CliRunner().invoke(
            simulate,
            ["--rate", "60", "--calls", "2", "--agents", "1", "--queue", "sales", "--did", DID,
             "--handle", "1", "--patience", "20", "--seed", "1", "--duration", "6"],
            env=env, obj=obj,
        )  # fmt: skip
    finally:
        obj.close()
    assert result.exit_code == 0, result.output
    events = Counter(e.event for e in new_entries(pbx, start))
    assert events["ADDMEMBER"] == 1, events
    assert events["REMOVEMEMBER"] == 1, events  # logged out on the way out
    assert "placed 2" in result.output, result.output
