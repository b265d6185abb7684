"""The history charts' geometry: bars of calls per 15 minutes (answered, abandoned, other)
and the service level per interval as a line against its target; and per half hour the
forecast against the calls offered and the agents needed against those logged in. Plain
numbers for the SVG in ``templates/history.html.j2`` (no script, no library, nothing from the
network)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.planning.store import DayForecast
from callcenter.wallboard.history import SLOT, Slot
from callcenter.wallboard.kpis import day_bounds

WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 52, 16, 40


def nice_ceiling(value: int) -> int:
    """The least of 5, 10, 20, 25, 50, 100... times a power of ten that holds ``value``."""
    if value <= 5:
        return 5
    power = int(10 ** int(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return int(step * power)
    return 10 * power  # pragma: no cover - the loop ends at 10 * power


def build(slots: list[Slot], day: dt.date, tz: ZoneInfo, sl_target: float) -> dict[str, Any]:
    since, until = day_bounds(day, tz)
    count = max(1, round((until - since) / SLOT))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / count
    top = nice_ceiling(max((s.offered for s in slots), default=0))

    def y_calls(n: float) -> float:
        return TOP + plot_h * (1 - n / top)

    def y_sl(ratio: float) -> float:
        return TOP + plot_h * (1 - ratio)

    bars: list[dict[str, Any]] = []
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for slot in slots:
        i = round((slot.start.astimezone(dt.UTC) - since) / SLOT)
        x = LEFT + i * step
        other = slot.offered - slot.answered - slot.abandoned
        heights = [(slot.answered, "answered"), (slot.abandoned, "abandoned"), (other, "other")]
        base, parts = float(slot.offered), []
        for n, kind in heights:
            if n > 0:
                parts.append({"kind": kind, "y": y_calls(base), "h": plot_h * n / top})
                base -= n
        sl = slot.service_level
        bars.append({"x": x + 1, "w": max(1.0, step - 2), "parts": parts,
                     "title": f"{slot.start:%H:%M} offered {slot.offered}, answered "
                              f"{slot.answered}, abandoned {slot.abandoned}, SL "
                              f"{'-' if sl is None else f'{sl * 100:.0f}%'}"})  # fmt: skip
        if sl is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((x + step / 2, y_sl(sl)))
    if current:
        segments.append(current)
    # Every 2 hours (8 slots) from midnight; on a DST day the labels show the clock's jump.
    x_ticks = [(LEFT + i * step, (since + i * SLOT).astimezone(tz).strftime("%H:%M"))
               for i in range(0, count + 1, 8)]  # fmt: skip
    offered = sum(s.offered for s in slots)
    in_sl, base = sum(s.answered_in_sl for s in slots), sum(s.sl_base for s in slots)
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
        "bottom": TOP + plot_h, "bars": bars,
        "sl_lines": [" ".join(f"{x:.1f},{y:.1f}" for x, y in seg) for seg in segments],
        "sl_dots": [(x, y) for seg in segments for x, y in seg],
        "target_y": y_sl(sl_target), "target": f"{sl_target * 100:.0f}%",
        "x_ticks": x_ticks,
        "y_ticks": [(y_calls(v), f"{v:g}") for v in (0, top / 2, top)],
        "p_ticks": [(y_sl(v), f"{v * 100:.0f}%") for v in (0.0, 0.5, 1.0)],
        "totals": {"offered": offered, "answered": sum(s.answered for s in slots),
                   "abandoned": sum(s.abandoned for s in slots),
                   "service_level": in_sl / base if base else None},
        "slots": slots,
    }  # fmt: skip


# --- the forecast against the day: calls, then agents, per half hour --------------------------

F_HEIGHT = 400
#: The two panels' tops and heights: calls (offered bars, the forecast's steps) above, agents
#: (logged in as bars, needed by Erlang A and C as steps) below, one time axis.
CALLS_TOP, CALLS_H = 24, 150
AGENTS_TOP, AGENTS_H = 210, 150


def steps(values: list[float], x0: float, step: float, y: Callable[[float], float]) -> str:
    """A step line: each value held across its half hour."""
    points = []
    for i, v in enumerate(values):
        points += [f"{x0 + i * step:.1f},{y(v):.1f}", f"{x0 + (i + 1) * step:.1f},{y(v):.1f}"]
    return " ".join(points)


def build_forecast(fc: DayForecast) -> dict[str, Any]:
    """The forecast chart's geometry and the day's summary (``fc`` with history)."""
    slots = fc.slots
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(1, len(slots))
    calls_top = nice_ceiling(
        math.ceil(max([s.forecast for s in slots] + [s.offered or 0 for s in slots], default=0))
    )
    agents_top = nice_ceiling(
        math.ceil(max([max(s.agents_a, s.agents_c, s.logged_in or 0) for s in slots], default=0))
    )

    def y_calls(n: float) -> float:
        return CALLS_TOP + CALLS_H * (1 - n / calls_top)

    def y_agents(n: float) -> float:
        return AGENTS_TOP + AGENTS_H * (1 - n / agents_top)

    offered, present = [], []
    for i, s in enumerate(slots):
        x = LEFT + i * step + 1
        w = max(1.0, step - 2)
        if s.offered is not None:
            error = (f", off by {abs(s.offered - s.forecast) / s.offered * 100:.0f}%"
                     if s.offered else "")  # fmt: skip
            offered.append({"x": x, "w": w, "y": y_calls(s.offered),
                            "h": CALLS_H * s.offered / calls_top,
                            "title": f"{s.label} offered {s.offered}, forecast "
                                     f"{s.forecast:.1f}{error}"})  # fmt: skip
        if s.logged_in is not None:
            present.append({"x": x, "w": w, "y": y_agents(s.logged_in),
                            "h": AGENTS_H * s.logged_in / agents_top,
                            "short": s.logged_in < s.agents_a,
                            "title": f"{s.label} logged in {s.logged_in:.1f}, needed "
                                     f"{s.agents_a} (Erlang A), {s.agents_c} (Erlang C)",
                            })  # fmt: skip
    known = [s for s in slots if s.offered is not None]
    return {
        "width": WIDTH, "height": F_HEIGHT, "left": LEFT, "right": WIDTH - RIGHT,
        "calls_top": CALLS_TOP, "calls_bottom": CALLS_TOP + CALLS_H,
        "agents_top": AGENTS_TOP, "agents_bottom": AGENTS_TOP + AGENTS_H,
        "offered": offered, "present": present,
        "forecast_line": steps([s.forecast for s in slots], LEFT, step, y_calls),
        "required_a": steps([float(s.agents_a) for s in slots], LEFT, step, y_agents),
        "required_c": steps([float(s.agents_c) for s in slots], LEFT, step, y_agents),
        "x_ticks": [(LEFT + i * step, slots[i].label if i < len(slots) else "24:00")
                    for i in range(0, len(slots) + 1, 4)],
        "calls_ticks": [(y_calls(v), f"{v:g}") for v in (0, calls_top / 2, calls_top)],
        "agents_ticks": [(y_agents(v), f"{v:g}") for v in (0, agents_top / 2, agents_top)],
        "totals": {"forecast": sum(s.forecast for s in slots),
                   "forecast_so_far": sum(s.forecast for s in known),
                   "offered": sum(s.offered or 0 for s in known),
                   "peak_a": max(s.agents_a for s in slots),
                   "peak_c": max(s.agents_c for s in slots),
                   "short": sum(1 for s in slots
                                if s.logged_in is not None and s.logged_in < s.agents_a)},
        "slots": slots,
    }  # fmt: skip
