"""``GET /metrics``: the board's figures for Prometheus, in its text exposition format 0.0.4.

Written here rather than with prometheus_client: the figures already live in memory and are
read at scrape time (no registry, no collectors to keep in step), and the format is a few
lines: ``# HELP``/``# TYPE`` once per family, then ``name{label="value"} number``, label
values escaped (backslash, double quote, newline). Everything is a gauge except the
``_total`` counters; "today" figures are gauges because they restart at midnight. The live
queue and agent samples of a node that is down are left out (unknown), as on the board.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from aiohttp import web

from callcenter.wallboard.board import COUNTS
from callcenter.wallboard.context import Parts, parts, require

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[dict[str, str], float | None]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str, samples: Iterable[Sample]) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue  # no value (e.g. SL of a queue with no calls): no sample
            text = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {number(value)}" if text
                              else f"{name} {number(value)}")  # fmt: skip

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(p: Parts, now: float | None = None) -> str:
    now = now or time.time()
    out = Exposition()
    state = p.state
    # A node that is down (or every node, with the bridge offline) has no live samples: its
    # last figures are not the present, and an absent sample is Prometheus's "unknown".
    down = p.board.node_down
    queues = sorted((q for q in state.queues.values() if not down(q.node)),
                    key=lambda q: (q.node, q.queue))  # fmt: skip
    out.family(
        "callcenter_queue_waiting",
        "gauge",
        "Callers waiting in the queue now.",
        [({"node": q.node, "queue": q.queue}, q.waiting) for q in queues],
    )
    out.family(
        "callcenter_queue_longest_wait_seconds",
        "gauge",
        "How long the caller who waits longest has waited.",
        [
            (
                {"node": q.node, "queue": q.queue},
                max(0.0, now - q.longest_wait_since) if q.longest_wait_since else 0.0,
            )
            for q in queues
        ],
    )
    out.family(
        "callcenter_queue_agents",
        "gauge",
        "Agents of the queue by state.",
        [
            ({"node": q.node, "queue": q.queue, "state": c}, getattr(q, c))
            for q in queues
            for c in COUNTS
        ],
    )
    by_state: dict[tuple[str, str], int] = {}
    for a in state.agents.values():
        if down(a.node):
            continue
        by_state[(a.node, a.state)] = by_state.get((a.node, a.state), 0) + 1
    out.family(
        "callcenter_agents",
        "gauge",
        "Agents by state (each agent once).",
        [({"node": n, "state": s}, c) for (n, s), c in sorted(by_state.items())],
    )
    out.family(
        "callcenter_node_connected",
        "gauge",
        "1 while the bridge is connected to the node's AMI.",
        [({"node": r["node"]}, 1.0 if r["connected"] else 0.0) for r in p.board.node_rows()],
    )
    online = state.bridge_online
    out.family(
        "callcenter_bridge_online",
        "gauge",
        "1 while the AMI bridge is online.",
        [({}, None if online is None else float(online))],
    )
    kpis = p.kpis.current()
    for key, help_ in (
        ("offered", "Calls offered today."),
        ("answered", "Calls answered today."),
        ("abandoned", "Calls abandoned today."),
        ("service_level", "Service level today (0..1)."),
        ("asa", "Average speed of answer today, seconds."),
        ("aht", "Average handle time today, seconds."),
        ("abandon_rate", "Abandon rate today (0..1)."),
    ):
        out.family(
            f"callcenter_queue_today_{key}",
            "gauge",
            help_,
            [
                ({"queue": name}, figures[key])
                for name, figures in sorted(kpis.get("queues", {}).items())
            ],
        )
    out.family(
        "callcenter_wallboard_clients",
        "gauge",
        "Browsers connected to the stream.",
        [({}, len(p.hub.subscribers))],
    )
    out.family(
        "callcenter_wallboard_pushes_total",
        "counter",
        "Messages pushed to browsers.",
        [({}, p.hub.pushes)],
    )
    out.family(
        "callcenter_wallboard_dropped_clients_total",
        "counter",
        "Streams dropped because the browser fell behind.",
        [({}, p.hub.dropped)],
    )
    out.family(
        "callcenter_wallboard_mqtt_connected",
        "gauge",
        "1 while the wallboard follows the broker.",
        [({}, float(state.feed_connected))],
    )
    out.family(
        "callcenter_wallboard_mqtt_messages_total",
        "counter",
        "MQTT messages received.",
        [({}, state.received)],
    )
    out.family(
        "callcenter_wallboard_mqtt_rejected_total",
        "counter",
        "MQTT messages ignored as unreadable.",
        [({}, state.rejected)],
    )
    out.family(
        "callcenter_wallboard_kpi_query_seconds",
        "gauge",
        "How long the last query of the day's figures took.",
        [({}, p.kpis.last_seconds)],
    )
    out.family(
        "callcenter_wallboard_kpi_age_seconds",
        "gauge",
        "Seconds since the day's figures were last computed.",
        [({}, now - p.kpis.refreshed_at if p.kpis.refreshed_at else None)],
    )
    out.family(
        "callcenter_wallboard_kpi_error",
        "gauge",
        "1 while the call log cannot be queried.",
        [({}, float(p.kpis.error is not None))],
    )
    return out.text()  # fmt: skip


async def metrics(request: web.Request) -> web.Response:
    require(request)
    return web.Response(
        body=render(parts(request)).encode(), headers={"Content-Type": CONTENT_TYPE}
    )
