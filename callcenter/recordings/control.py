"""Acting on a call's recording over AMI: mute it, resume it, record now.

Used by the agent's desktop (an agent, on their own call) and the supervisors' pages.
Both act on the agent's leg of the call, the channel MixMonitor runs on.

- **Mute / resume**: AMI ``MixMonitorMute`` (``Channel``, ``Direction: both``, ``State`` 1/0;
  class ``call``, which the bridge's AMI user may write). Every MixMonitor of the channel is
  muted: both directions are replaced with silence, so the file keeps its length and a
  listener hears silence where the card number was said. Asterisk answers Success even
  when the channel records nothing: check that it does first.
- **Record now** (a call whose policy is on demand): the AMI action MixMonitor needs class
  ``system`` (its ``Command`` runs a shell command), which our AMI user must never have. So
  the dialplan starts it: ``[recording-connect]`` enabled the applicationmap feature
  ``ccrecord`` on the agent's leg (features.conf, ``[recording] demand_code``), and this
  sends that code *as if received from the agent's phone*: ``PlayDTMF`` with ``Receive:
  yes``, one digit at a time (class ``call``), after ``Setvar REC_REQUESTED_BY`` on the leg.
  The feature runs ``[recording-demand]`` on the leg, which starts MixMonitor and raises
  ``UserEvent(CallRecording)`` like any recording (checked on Asterisk 22: the recording
  starts within a quarter of a second). The digits are consumed by the feature: the
  customer hears none.
"""

from __future__ import annotations

import re

from callcenter.ami.link import AmiLink, AmiUnavailable

#: Who may be named as having asked (a user's or agent's name: no comma, parenthesis or
#: quote could reach the dialplan's Gosub arguments).
REQUESTER_RE = re.compile(r"^[\w.@-]{1,64}$")
DTMF_RE = re.compile(r"^[0-9*#A-D]{1,8}$")
#: Milliseconds each DTMF digit lasts (Asterisk emulates shorter ones anyway).
DIGIT_MS = 100


class RecordingControlError(RuntimeError):
    """The action could not be done; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _send(link: AmiLink, action: dict[str, str], timeout: float) -> None:
    try:
        reply = await link.send(action, timeout=timeout, wait=1.0)
    except AmiUnavailable as exc:
        raise RecordingControlError(503, str(exc)) from exc
    except TimeoutError as exc:
        raise RecordingControlError(
            504, f"node {link.node.name} did not answer {action['Action']}"
        ) from exc
    if not reply.ok:
        raise RecordingControlError(
            502, f"Asterisk refused {action['Action']}: {reply.message or 'no reason'}"
        )


async def mute(link: AmiLink, channel: str, on: bool, *, timeout: float = 5.0) -> None:
    """Mute (``on``) or resume every recording of ``channel``."""
    if not channel:
        raise RecordingControlError(409, "the call's channel is not known yet")
    await _send(
        link,
        {"Action": "MixMonitorMute", "Channel": channel, "Direction": "both",
         "State": "1" if on else "0"},
        timeout,
    )  # fmt: skip


async def record_now(
    link: AmiLink, channel: str, requested_by: str, code: str, *, timeout: float = 5.0
) -> None:
    """Start recording ``channel`` (the agent's leg of an on-demand call) for
    ``requested_by``; ``code`` is ``[recording] demand_code``."""
    if not channel:
        raise RecordingControlError(409, "the call's channel is not known yet")
    if not REQUESTER_RE.match(requested_by):
        raise RecordingControlError(400, f"{requested_by[:20]!r} cannot be named as requester")
    if not DTMF_RE.match(code):
        raise RecordingControlError(500, f"the demand code {code!r} is not DTMF")
    await _send(
        link,
        {"Action": "Setvar", "Channel": channel, "Variable": "REC_REQUESTED_BY",
         "Value": requested_by},
        timeout,
    )  # fmt: skip
    for digit in code:
        await _send(
            link,
            {"Action": "PlayDTMF", "Channel": channel, "Digit": digit,
             "Duration": str(DIGIT_MS), "Receive": "yes"},
            timeout,
        )  # fmt: skip
