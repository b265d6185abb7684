"""Which calls are recorded: a queue's or a campaign's policy, and what the dialplan does with it.

A policy (``queues.record_policy`` / ``campaigns.record_policy``) is one of

- ``none``: never recorded (the default);
- ``all``: every call, from the moment the agent answers (reason ``policy``);
- ``sampled``: a random share of calls (``record_share``, 0..1; reason ``sampled``);
- ``on_demand``: only when the agent or a supervisor asks during the call (reason
  ``on_demand``).

A campaign's calls follow the campaign's policy, not its queue's: the campaign is what the
business decided to record (README "Campaigns").

The decision is taken by the caller's dialplan just before Queue() (``[recording-policy]`` in
``dialplans/recording.conf.j2``), from globals rendered here (:func:`dialplan_globals`):
``QREC_<queue>`` / ``CREC_<campaign>`` the policy, ``QRECSHARE_<queue>`` /
``CRECSHARE_<campaign>`` the share in thousandths. A sampled call is recorded when
``RAND(0,999) < share``: :func:`sampled` is the same rule, for tests and documentation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

from callcenter.db.models_quality import RECORD_POLICIES

Policy = Literal["none", "all", "sampled", "on_demand"]
Reason = Literal["policy", "sampled", "on_demand"]

#: The share's resolution in the dialplan: RAND(0,999) against thousandths.
SHARE_STEPS = 1000


class PolicyError(ValueError):
    """A policy or share an operator typed that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """A queue's or a campaign's recording policy, checked."""

    policy: Policy
    share: float = 0.0

    @classmethod
    def of(cls, policy: str | None, share: float | None) -> RecordPolicy:
        """The policy as a row of the database holds it; one this code does not know is
        taken as ``none`` (never record by mistake)."""
        known = policy in RECORD_POLICIES
        return cls(cast(Policy, policy if known else "none"), float(share or 0.0))

    @property
    def per_mille(self) -> int:
        """The share in thousandths, as the dialplan compares it (sampled only; else 0)."""
        return per_mille(self.share) if self.policy == "sampled" else 0


def per_mille(share: float) -> int:
    """``share`` (0..1) in thousandths, rounded to the nearest: 0.2 -> 200."""
    return max(0, min(SHARE_STEPS, round(share * SHARE_STEPS)))


def check(policy: str | None, share: float | None, *, current: RecordPolicy | None = None
          ) -> RecordPolicy:  # fmt: skip
    """The policy that results from an operator's ``--record`` / ``--record-share`` given on
    top of ``current`` (None: leave that part as it is). Raises :class:`PolicyError`.

    Rules: the policy is one of :data:`RECORD_POLICIES`; the share is a number in [0, 1]; a
    sampled policy needs a share above 0 (a sample of nothing would silently record nothing).
    A share given with another policy is kept (it applies if the policy becomes sampled).
    """
    base = current or RecordPolicy("none", 0.0)
    if policy is not None and policy not in RECORD_POLICIES:
        raise PolicyError(f"recording policy {policy!r} is not one of {', '.join(RECORD_POLICIES)}")
    if share is not None and (not math.isfinite(share) or not 0.0 <= share <= 1.0):
        raise PolicyError(
            f"recording share {share:g} must be between 0 and 1 (0.2 records one call in five)"
        )
    result = RecordPolicy(
        cast(Policy, policy if policy is not None else base.policy),
        float(share) if share is not None else base.share,
    )
    if result.policy == "sampled" and result.per_mille == 0:
        raise PolicyError(
            "a sampled recording policy needs --record-share above 0 (e.g. 0.2: one call in five)"
        )
    return result


def sampled(draw: int, share: float) -> bool:
    """Whether a sampled call with the dialplan's draw ``RAND(0,999)`` = ``draw`` is recorded."""
    return draw < per_mille(share)


def reason_for(policy: RecordPolicy, draw: int) -> Reason | None:
    """Why a call under ``policy`` is recorded from its answer (None: not recorded then; an
    on-demand call may still be, when someone asks). ``draw`` as in :func:`sampled`."""
    if policy.policy == "all":
        return "policy"
    if policy.policy == "sampled" and sampled(draw, policy.share):
        return "sampled"
    return None


def may_start_on_demand(policy: RecordPolicy, recording: bool) -> str | None:
    """Why a recording cannot be started on demand now (None: it can): only calls whose
    policy is on demand, and only when nothing records the call yet."""
    if policy.policy != "on_demand":
        return f"this call's recording policy is {policy.policy}, not on demand"
    if recording:
        return "this call is already being recorded"
    return None


def dialplan_globals(
    queues: Mapping[str, RecordPolicy], campaigns: Mapping[str, RecordPolicy]
) -> list[tuple[str, str]]:
    """The ``[globals]`` lines the dialplan decides with, sorted: per queue ``QREC_<name>``
    and ``QRECSHARE_<name>``, per campaign ``CREC_<name>`` and ``CRECSHARE_<name>``. A queue
    or campaign without a line (added after the last render) is not recorded."""
    out: list[tuple[str, str]] = []
    for prefix, items in (("Q", queues), ("C", campaigns)):
        for name in sorted(items):
            p = items[name]
            out.append((f"{prefix}REC_{name}", p.policy))
            out.append((f"{prefix}RECSHARE_{name}", str(p.per_mille)))
    return out


def policies(rows: Iterable[tuple[str, str, float]]) -> dict[str, RecordPolicy]:
    """``(name, policy, share)`` rows of the database as policies; a policy the database
    holds but this code does not know is taken as ``none`` (never record by mistake)."""
    return {name: RecordPolicy.of(policy, share) for name, policy, share in rows}
