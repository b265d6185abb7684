"""The wallboard's own settings, read from :class:`callcenter.config.Settings`.

``[wallboard]`` holds ``host``, ``port`` and ``secret_key``; the keys below extend it. Until
``WallboardSettings`` declares them, their defaults apply (the lines to add to
``callcenter/config.py`` are in the report of issue 6).

- ``sl_target`` (0.80): a queue's service level below this is shown as an alert.
- ``waiting_alert`` (5): this many callers waiting, or more, is an alert.
- ``abandon_rate_alert`` (0.05): an abandon rate above this is an alert.
- ``longest_wait_alert`` (60): a caller waiting this many seconds, or more, is an alert.
- ``push_interval`` (0.1): least seconds between two pushes to the browsers; changes that
  arrive meanwhile go out together. Under load every push is one write per open screen: a
  longer interval costs less CPU, but a change then waits up to that long (the board's goal
  is 250 ms at p99, ``scripts/bench_wallboard.py``).
- ``kpi_interval`` (1.0): least seconds between two queries of the day's figures;
  ``kpi_max_age`` (30.0): they are queried at least this often even without a change.
- ``session_hours`` (12): a supervisor's session lasts this long; ``tv_session_days`` (400):
  a screen's session (browsers cap cookies at 400 days).
- ``login_attempts`` (5) failed logins per ``login_window`` (300 s) from one address for
  one account, and ``login_address_attempts`` (20) from one address over all accounts; more
  are refused with 429 until the window has passed (:class:`~.auth.LoginThrottle`).
- ``trusted_proxies`` (none): the reverse proxies whose ``X-Forwarded-For`` and
  ``X-Forwarded-Proto`` are believed (addresses or CIDRs; parsed here into networks).
- ``hsts`` (31536000): ``Strict-Transport-Security: max-age`` on answers over HTTPS (direct
  TLS, or a trusted proxy's ``X-Forwarded-Proto: https``); 0: no header.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from callcenter.config import ConfigError, Settings
from callcenter.wallboard.auth import Network, parse_networks


@dataclass(frozen=True, slots=True)
class WallboardOptions:
    sl_target: float = 0.80
    waiting_alert: int = 5
    abandon_rate_alert: float = 0.05
    longest_wait_alert: float = 60.0
    push_interval: float = 0.1
    kpi_interval: float = 1.0
    kpi_max_age: float = 30.0
    session_hours: float = 12.0
    tv_session_days: float = 400.0
    login_attempts: int = 5
    login_window: float = 300.0
    login_address_attempts: int = 20
    trusted_proxies: tuple[Network, ...] = ()
    hsts: int = 31536000
    pause_reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting", "coaching")
    callback_campaign: str = "callbacks"

    @classmethod
    def from_settings(cls, settings: Settings) -> WallboardOptions:
        """Every field ``settings.wallboard`` has (by name) overrides the default."""
        wb = settings.wallboard
        have = {f.name: getattr(wb, f.name) for f in dataclasses.fields(wb)}
        kwargs: dict[str, Any] = {
            f.name: have[f.name] for f in dataclasses.fields(cls) if f.name in have
        }
        try:
            kwargs["trusted_proxies"] = parse_networks(kwargs.get("trusted_proxies", ()))
        except ValueError as exc:
            raise ConfigError(f"wallboard.trusted_proxies: {exc}") from None
        options = cls(**kwargs)
        options.check()
        return options

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first key out of range."""
        if not 0 < self.sl_target <= 1:
            raise ConfigError("wallboard.sl_target must be a fraction in (0, 1], e.g. 0.8")
        if not 0 <= self.abandon_rate_alert <= 1:
            raise ConfigError("wallboard.abandon_rate_alert must be a fraction in [0, 1]")
        for key in ("push_interval", "kpi_interval", "kpi_max_age", "session_hours",
                    "tv_session_days", "login_window", "longest_wait_alert"):  # fmt: skip
            if getattr(self, key) <= 0:
                raise ConfigError(f"wallboard.{key} must be greater than 0")
        if self.waiting_alert < 1 or self.login_attempts < 1 or self.login_address_attempts < 1:
            raise ConfigError("wallboard.waiting_alert, login_attempts and login_address_attempts "
                              "must be 1 or more")  # fmt: skip
        if self.hsts < 0:
            raise ConfigError("wallboard.hsts must be 0 (no header) or more seconds")

    def thresholds(self) -> dict[str, float]:
        """What the browser needs to colour the figures itself (it ticks the waits)."""
        return {
            "sl_target": self.sl_target,
            "waiting_alert": self.waiting_alert,
            "abandon_rate_alert": self.abandon_rate_alert,
            "longest_wait_alert": self.longest_wait_alert,
        }
