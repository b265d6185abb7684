"""How figures read on the board, and when they are coloured: the server-side render uses
these; ``static/board.js`` mirrors them for the live updates (keep the two in step)."""

from __future__ import annotations

from typing import Any

from callcenter.wallboard.options import WallboardOptions

STATE_LABELS = {
    "available": "Available", "ringing": "Ringing", "on_call": "On call",
    "wrap_up": "Wrap-up", "paused": "Paused", "unavailable": "Unavailable",
    "logged_out": "Logged out", "unknown": "Unknown",
}  # fmt: skip


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def duration(seconds: float | None) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` above; ``-`` for none."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def since(epoch: float | None, now: float) -> str:
    return "-" if epoch is None else duration(now - epoch)


def pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def pct1(ratio: float | None) -> str:
    """One decimal: an abandon rate against a 3% cap (2.96% is not "3%")."""
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def level(field: str, value: Any, options: WallboardOptions, now: float = 0.0) -> str:
    """``alert`` when the figure crossed its threshold, ``ok`` when the service level meets
    its target, else ``""``."""
    if value is None:
        return ""
    if field == "waiting":
        return "alert" if value >= options.waiting_alert else ""
    if field == "longest_wait_since":
        return "alert" if now - value >= options.longest_wait_alert else ""
    if field == "service_level":
        return "alert" if value < options.sl_target else "ok"
    if field == "abandon_rate":
        return "alert" if value > options.abandon_rate_alert else ""
    return ""
