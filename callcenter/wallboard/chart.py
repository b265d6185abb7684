"""The history chart's geometry: bars of calls per 15 minutes (answered, abandoned, other)
and the service level per interval as a line against its target, as plain numbers for the
SVG in ``templates/history.html.j2`` (no script, no library, nothing from the network)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

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
