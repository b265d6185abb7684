"""The soak run: hours of a call center's day in minutes, with faults (docs/soak.md).

    PATH=/opt/asterisk/sbin:$PATH .venv/bin/python scripts/soak.py \\
        [--calls 100] [--agents 40] [--minutes 10] [--faults all|none|restart,ivr,...]

Not part of ``make test``. A private PostgreSQL cluster, a private Mosquitto and a private
Asterisk; ``callcenter ami``, ``agi``, ``dialer``, ``wallboard`` and ``webhooks run`` as
processes of their own; SIPp callers keeping ``--calls`` calls up through IVR -> queue ->
``--agents`` SIPp agent phones; a predictive campaign dialling Local-channel customers;
``--streams`` clients holding the wallboard's /events open. Faults at recorded moments, each
followed by the comparison (Asterisk's queue_log and CDR against our call log and attempts)
and the seconds until the wallboard agrees with Asterisk's QueueStatus again.

Once everything has stopped, every log of the run is searched for every secret of it
(passwords, tokens, AMI and SIP secrets, signing keys; docs/soak.md): the report names the
file, line and secret, never the value.

Writes soak.* and faults.<name>.* into bench/results.json, keeping the other keys. Exit status
1 when a record is lost or doubled or a secret is in a log, 2 when it cannot run here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results.json"


def figures(outcome: object) -> dict[str, float]:
    from tests.e2e.soak_run import Outcome

    assert isinstance(outcome, Outcome)
    c = outcome.comparison
    ours = sum(outcome.cpu.values())
    out: dict[str, float] = {
        "soak.calls": float(c.calls),
        "soak.inbound_calls": float(c.inbound),
        "soak.attempts": float(c.attempts),
        "soak.lost_records": float(c.lost),
        "soak.duplicates": float(c.duplicates),
        "soak.cpu_ratio": round(ours / outcome.asterisk_cpu, 3) if outcome.asterisk_cpu else -1.0,
        "soak.minutes": round(outcome.seconds / 60, 2),
        "soak.secrets_in_logs": float(len(outcome.leaks)),
        "soak.logs_scanned": float(outcome.logs_scanned),
    }
    for name, (start, end) in outcome.rss.items():
        out[f"soak.rss_growth_mb.{name}"] = round(end - start, 1)
    for f in outcome.faults:
        out[f"faults.{f.name}.lost"] = float(f.lost)
        out[f"faults.{f.name}.duplicates"] = float(f.duplicates)
        out[f"faults.{f.name}.reconverge_s"] = -1.0 if f.reconverge_s is None else f.reconverge_s
    return out


def report_fault_cpu(outcome: object) -> None:
    """CPU during each fault (from its start to its comparison done, traffic going on), and
    the ratio of the run outside the faults: what the faults cost over the usual rate."""
    from tests.e2e.soak_run import Outcome

    assert isinstance(outcome, Outcome)
    print(f"\n{'fault':<12}{'seconds':>8}{'ours CPU s':>12}{'Asterisk s':>12}{'ratio':>7}"
          "  ours by process")  # fmt: skip
    for f in outcome.faults:
        ours = sum(f.cpu.values())
        ratio = f"{ours / f.asterisk_cpu:.2f}" if f.asterisk_cpu else "-"
        parts = ", ".join(f"{n} {c:.1f}" for n, c in sorted(f.cpu.items()))
        print(f"{f.name:<12}{f.seconds:>8.1f}{ours:>12.2f}{f.asterisk_cpu:>12.2f}{ratio:>7}"
              f"  {parts}")  # fmt: skip
    ours = sum(outcome.cpu.values()) - sum(sum(f.cpu.values()) for f in outcome.faults)
    ast = outcome.asterisk_cpu - sum(f.asterisk_cpu for f in outcome.faults)
    if ast > 0:
        print(f"outside the faults: ours {ours:.2f} s, Asterisk {ast:.2f} s: {ours / ast:.3f}x")


def report(outcome: object) -> None:
    from tests.e2e.soak_run import Outcome

    assert isinstance(outcome, Outcome)
    c = outcome.comparison
    print(f"\nsoak: {outcome.seconds / 60:.1f} min, {c.calls} queue calls ({c.inbound} of SIPp "
          f"callers), {c.attempts} attempts, lost {c.lost}, duplicates {c.duplicates}")  # fmt: skip
    print(f"\n{'process':<12}{'CPU s':>10}{'RSS start MB':>14}{'RSS end MB':>12}")
    for name, cpu in sorted(outcome.cpu.items()):
        start, end = outcome.rss[name]
        print(f"{name:<12}{cpu:>10.2f}{start:>14.1f}{end:>12.1f}")
    print(f"{'(ours)':<12}{sum(outcome.cpu.values()):>10.2f}")
    print(f"{'asterisk':<12}{outcome.asterisk_cpu:>10.2f}")
    if outcome.faults:
        # lost: final disagreements about calls up around the fault; "early": what the
        # comparison just after it showed more than the one before (our log may lag then).
        print(f"\n{'fault':<12}{'at s':>8}{'lost':>6}{'early':>7}{'dups':>6}{'reconverge s':>14}"
              "  note")  # fmt: skip
        for f in outcome.faults:
            rs = "never" if f.reconverge_s is None else f"{f.reconverge_s:.2f}"
            print(f"{f.name:<12}{f.at:>8.1f}{f.lost:>6}{f.lost_at_fault:>7}{f.duplicates:>6}"
                  f"{rs:>14}  {f.note}")  # fmt: skip
        report_fault_cpu(outcome)
    if c.disagreements:
        print("\nWhere Asterisk's records and ours disagree (Asterisk wins):")
        blamed = {d.call: f.name for f in outcome.faults for d in f.disagreements}
        for d in c.disagreements:
            near = f" [around the {blamed[d.call]} fault]" if d.call in blamed else ""
            print(f"  {d.call}: {d.why}{near}")
    for f in outcome.faults:
        if f.stranded:
            print(f"\n{f.name}: callers in the killed IVR who never reached a queue: "
                  f"{', '.join(f.stranded)}")  # fmt: skip
    if outcome.try_later:
        print(f"\ncallers who heard 'try later' instead of a queue: {len(outcome.try_later)}")
    streams = outcome.streams_bytes
    print(f"\nwallboard streams: {len(streams)} held, {sum(1 for b in streams if b)} got data")
    report_scan(outcome)


def report_scan(outcome: object) -> None:
    """The scan for secrets: what it read and looked for, and each leak by file, line and
    the secret's name (its value is never printed)."""
    from tests.e2e.soak_run import EXERCISED, Outcome

    assert isinstance(outcome, Outcome)
    phones = [name for name in outcome.logs if name.startswith("sipp-")]
    others = [name for name in outcome.logs if not name.startswith("sipp-")]
    print(f"\nsecrets in logs: {len(outcome.leaks)} in {outcome.logs_scanned} log files "
          f"({', '.join(others)}, and {len(phones)} of the SIPp phones)")  # fmt: skip
    sip = [name for name in outcome.secrets_checked if name.startswith("SIP secret of ")]
    named = [name for name in outcome.secrets_checked if name not in sip]
    print(f"  looked for: {', '.join(named)}, and {len(sip)} agents' SIP secrets")
    if outcome.secrets_skipped:
        print(f"  not looked for (shorter than 8 characters, would match by chance): "
              f"{', '.join(outcome.secrets_skipped)}")  # fmt: skip
    odd = {k: v for k, v in outcome.exercised.items() if EXERCISED.get(k) != v}
    if odd:
        print(
            "  exercised with an unexpected answer: "
            + "; ".join(f"{k}: {v} (expected {EXERCISED.get(k)})" for k, v in odd.items())
        )
    for leak in outcome.leaks[:50]:
        print(f"  LEAK {leak.file}:{leak.line}: {leak.secret} ({leak.form})")
    if len(outcome.leaks) > 50:
        print(f"  ... and {len(outcome.leaks) - 50} more")


def main() -> int:
    from tests.e2e.soak_run import FAULTS, Plan, missing, soak_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls kept up at once")
    parser.add_argument("--agents", type=int, default=40, help="SIPp agent phones")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long traffic runs")
    parser.add_argument("--talk", type=int, default=20, help="seconds an agent talks")
    parser.add_argument("--streams", type=int, default=50, help="wallboard /events clients")
    parser.add_argument("--contacts", type=int, default=2000, help="campaign contacts")
    parser.add_argument("--faults", default="all", help=f"all, none or some of {','.join(FAULTS)}")
    parser.add_argument("--short", action="store_true", help="short outages (as the tests)")
    parser.add_argument(
        "--silent", action="store_true", help="phones send no audio (signalling and MOH only)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info"],
        help="the services' --log-level: info as in production, so that CPU is what it "
        "costs there (tests/e2e/test_faults.py scans the debug lines for secrets)",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy the run's logs (ours, Asterisk's, PostgreSQL's, Mosquitto's) into DIR",
    )
    args = parser.parse_args()
    faults: tuple[str, ...]
    if args.faults == "all":
        faults = FAULTS
    elif args.faults == "none":
        faults = ()
    else:
        faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
        bad = sorted(set(faults) - set(FAULTS))
        if bad:
            parser.error(f"unknown fault(s) {', '.join(bad)}; known: {', '.join(FAULTS)}")

    from callcenter.asterisk import run
    from callcenter.asterisk.sample import settings as sample_settings

    def binary() -> Path:
        return run.find_binary(sample_settings())

    why = missing(binary)
    if why:
        print(f"soak cannot run here: {why}")
        return 2
    plan = Plan(calls=args.calls, agents=args.agents, minutes=args.minutes, talk=args.talk,
                faults=faults, streams=args.streams, contacts=args.contacts,
                log_level=args.log_level, audio=not args.silent,
                quick_intervals=args.short)  # fmt: skip
    sipp = shutil.which("sipp")
    assert sipp is not None
    outcome = asyncio.run(soak_run(plan, binary(), sipp, short=args.short, keep=args.keep_logs))
    report(outcome)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures(outcome))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    c = outcome.comparison
    if not c.inbound or (plan.contacts and not c.attempts):
        # A soak whose callers never got through (or whose campaign dialled nobody) measured
        # something else: its figures are not the soak's.
        print(f"\nsoak FAILED: {c.inbound} calls of SIPp callers, {c.attempts} attempts")
    failed = c.lost or c.duplicates or outcome.leaks or not c.inbound
    failed = failed or bool(plan.contacts and not c.attempts)
    return 1 if failed or any(f.lost or f.duplicates or f.stranded for f in outcome.faults) else 0


if __name__ == "__main__":
    raise SystemExit(main())
