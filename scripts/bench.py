"""``make bench``: run every benchmark (scripts/bench_*.py), print a table, write the figures
to bench/results.json (one key per figure, e.g. "ami.events_per_s").

Each benchmark module has ``run() -> dict[str, float]``. Figures from an earlier run that
this run did not measure are kept, so a benchmark that needs Asterisk does not erase
numbers when skipped. ``python scripts/bench.py NAME...`` runs only those benchmarks.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench" / "results.json"


def discover(names: list[str]) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if names:
        found = [p for p in found if p.stem.removeprefix("bench_") in names]
    return found


def load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    results: dict[str, float] = {}
    if RESULTS.exists():
        results = json.loads(RESULTS.read_text())
    table = Table(title="benchmarks", title_justify="left")
    for col in ("benchmark", "figure", "value", "seconds"):
        table.add_column(col)
    failed = 0
    for path in discover(argv):
        name = path.stem.removeprefix("bench_")
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            figures = load(path).run()  # type: ignore[attr-defined]
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            table.add_row(name, "FAILED", f"{type(exc).__name__}: {exc}", "")
            continue
        took = f"{time.perf_counter() - started:.1f}"
        for key, value in figures.items():
            results[key] = value
            table.add_row(name, key, f"{value:,.3f}", took)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    Console().print(table)
    print(f"bench: figures written to {RESULTS}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
