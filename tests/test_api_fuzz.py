"""schemathesis against the wallboard's OpenAPI document, a short run of
``scripts/bench_api_fuzz.py`` (the bench runs the same with 100 examples per operation):
every operation, anonymous, with a TV token, an API token of scope write and a supervisor's
session; no 5xx, every status and body as the document says, input it forbids refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_api_fuzz.py"


def bench() -> ModuleType:
    if importlib.util.find_spec("schemathesis") is None:
        pytest.skip("schemathesis is not installed: pip install -e '.[dev]'")
    spec = importlib.util.spec_from_file_location("bench_api_fuzz", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_schemathesis_finds_nothing_with_or_without_credentials(database_url: str) -> None:
    # database_url: the run's PostgreSQL is up; the bench makes a database of its own.
    result = bench().fuzz(examples=4, seed_=16)
    problems = {
        name: [f"{f['count']} x {f['title']} {f.get('operations', '')}"
               for f in run["failures"] + run["errors"]]
        for name, run in result["runs"].items()
    }  # fmt: skip
    assert set(result["runs"]) == {"anonymous", "tv", "api-write", "session"}
    assert result["api.schemathesis_failures"] == 0, problems
    assert result["api.schemathesis_5xx"] == 0
    assert result["api.schemathesis_operations"] >= 19
    assert result["api.schemathesis_requests"] > 1000
    for run in result["runs"].values():
        assert run["complete"], run["output"][-2000:]
        assert run["stop_reason"] == "completed"
