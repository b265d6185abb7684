"""Edits of the state that several event handlers share (calls, queue places, agent legs).

Each takes the open :class:`~callcenter.core.tx.Tx` and writes through it; none commits.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.ami.events import ChannelEvent
from callcenter.core.changes import VisitChanged
from callcenter.core.records import (
    Agent,
    Call,
    Caller,
    CallPhase,
    Channel,
    clean_caller_id,
)
from callcenter.core.tx import Tx
from callcenter.domain import CallOutcome, Direction


def new_call(
    tx: Tx,
    event: ChannelEvent,
    *,
    started_at: float,
    direction: Direction = Direction.INBOUND,
    phase: CallPhase = CallPhase.IVR,
) -> Call:
    return Call(
        node=tx.node,
        uniqueid=event.uniqueid,
        linkedid=event.linkedid or event.uniqueid,
        direction=direction,
        channel=event.channel,
        caller_number=clean_caller_id(event.caller_id_num),
        caller_name=clean_caller_id(event.caller_id_name),
        did=event.exten,
        started_at=started_at,
        phase=phase,
    )


def promote(tx: Tx, channel: Channel, direction: Direction, did: str) -> Call:
    """Turn a tracked root channel into a call (it entered a call context or a queue)."""
    tx.drop_channel(channel.uniqueid)
    return Call(
        node=tx.node,
        uniqueid=channel.uniqueid,
        linkedid=channel.uniqueid,
        direction=direction,
        channel=channel.channel,
        caller_number=channel.caller_number,
        caller_name=channel.caller_name,
        did=did,
        started_at=channel.started_at,
    )


def ensure_call(tx: Tx, event: ChannelEvent, *, started_at: float) -> Call:
    """The call of the caller channel of ``event``: known, promoted from a tracked root
    channel, or new (``started_at`` is then the best estimate the caller has)."""
    call = tx.call(event.uniqueid)
    if call is not None:
        return call
    channel = tx.channel(event.uniqueid)
    if channel is not None:
        direction = tx.config.call_contexts.get(channel.context, Direction.INBOUND)
        call = promote(tx, channel, direction, channel.exten)
        # The caller ID may have been set by the dialplan since the channel appeared.
        return replace(
            call,
            caller_number=clean_caller_id(event.caller_id_num) or call.caller_number,
            caller_name=clean_caller_id(event.caller_id_name) or call.caller_name,
        )
    return new_call(tx, event, started_at=started_at)


def final_outcome(call: Call) -> CallOutcome:
    """The outcome of a call whose caller hung up.

    A provisional outcome stands. Otherwise: never queued is ``ivr_hangup``; still waiting is
    ``abandoned`` (app_queue sends QueueCallerAbandon first, so this is a fallback); left the
    queue with no agent, no QueueCallerAbandon and no QUEUESTATUS is app_queue's exit by key
    (``valid_exit``: it records neither) -- the key itself is only in queue_log.
    """
    if call.outcome is not None:
        return call.outcome
    if call.queue is None:
        return CallOutcome.IVR_HANGUP
    if call.phase in (CallPhase.QUEUED, CallPhase.RINGING):
        return CallOutcome.ABANDONED
    if call.phase is CallPhase.CONNECTED:
        return CallOutcome.ANSWERED
    return CallOutcome.EXIT_KEY


def next_visit(tx: Tx, call: Call, at: float) -> Call:
    """``call`` joins a queue again (a transfer, a Redirect, an overflow): report the visit it
    leaves as a visit of its own and return the call on a fresh visit (queue fields reset;
    the caller joins it right after).

    A visit still connected to its agent (an AMI Redirect takes the caller away with no
    transfer event and no AgentComplete yet) is kept in ``State.open_visits`` until
    app_queue reports its AgentComplete, which comes when the caller finally hangs up; any
    other visit is final now, with the outcome it had (``transferred`` from the transfer or
    AgentComplete Reason transfer) or :func:`final_outcome`'s.
    """
    left = call.visit_ended_at if call.visit_ended_at is not None else at
    if call.phase is CallPhase.CONNECTED and call.agent is not None and call.queue is not None:
        agent = tx.agent(call.agent)
        wrapup = wrapup_seconds(tx, agent, call.queue)
        open_visit = replace(call, wrapup_seconds=wrapup)
        tx.put_open_visit(open_visit)
        tx.changes.append(VisitChanged(open_visit, final=False))
        if agent is not None and agent.call == call.uniqueid:
            # app_queue ends the member's call here (redirect-queue: QueueMemberStatus
            # Status 1, InCall 0, CallsTaken counted), and its wrap-up starts now, not at the
            # late AgentComplete, which then leaves the agent alone.
            tx.put_agent(
                replace(
                    agent,
                    call=None,
                    call_queue=None,
                    wrapup_until=at + wrapup if wrapup > 0 else agent.wrapup_until,
                )
            )
    else:
        done = replace(call, outcome=final_outcome(call), visit_ended_at=left, ringing=())
        tx.changes.append(VisitChanged(done, final=True))
    return replace(
        call,
        visit=call.visit + 1,
        queue=None,
        queued_at=None,
        original_position=None,
        ringing=(),
        ring_attempts=0,
        agent=None,
        agent_channel=None,
        agent_uniqueid=None,
        answered_at=None,
        wait_seconds=None,
        talk_seconds=None,
        hold_seconds=None,
        wrapup_seconds=None,
        on_hold_since=None,
        outcome=None,
        exit_key=None,
        queue_status=None,
        visit_ended_at=None,
        transfer_target=None,
    )


def hang_up(call: Call, at: float, cause: int | None) -> Call:
    """The caller's channel is gone: record when and why, and end a hold in progress."""
    hold = call.hold_seconds
    if call.on_hold_since is not None:
        hold = (hold or 0.0) + at - call.on_hold_since
    return replace(
        call,
        phase=CallPhase.ENDED,
        ended_at=at,
        hangup_cause=cause,
        ringing=(),
        on_hold_since=None,
        hold_seconds=hold,
    )


def close_call(tx: Tx, call: Call, outcome: CallOutcome) -> None:
    """Close ``call`` with its final ``outcome`` and undo what it still holds: its place in a
    queue and an agent that never got its AgentComplete. ``call.ended_at`` stays ``None``
    when the end was not seen (closed by a resync)."""
    if call.queue is not None:
        remove_caller(tx, call.queue, call.uniqueid)
    if call.agent is not None:
        agent = tx.agent(call.agent)
        if agent is not None and agent.call == call.uniqueid:
            tx.put_agent(replace(agent, call=None, call_queue=None))
    tx.put_call(
        replace(
            call,
            phase=CallPhase.ENDED,
            closed=True,
            outcome=outcome,
            ringing=(),
            on_hold_since=None,
        )
    )


def add_caller(tx: Tx, queue_name: str, caller: Caller) -> None:
    queue = tx.ensure_queue(queue_name)
    callers = dict(queue.callers)
    callers[caller.uniqueid] = caller
    tx.put_queue(replace(queue, callers=callers))


def remove_caller(tx: Tx, queue_name: str, uniqueid: str) -> None:
    """Take a caller out of a queue; those behind move up one place, as in app_queue."""
    queue = tx.queue(queue_name)
    if queue is None or uniqueid not in queue.callers:
        return
    gone = queue.callers[uniqueid].position
    callers = {
        uid: replace(c, position=c.position - 1) if c.position > gone else c
        for uid, c in queue.callers.items()
        if uid != uniqueid
    }
    tx.put_queue(replace(queue, callers=callers))


def end_leg(tx: Tx, uniqueid: str) -> None:
    """An agent leg is over (ring no answer, cancelled, dumped, hung up). A ringing leg stops
    ringing its agent and its caller; a connected one is just forgotten (AgentComplete or the
    caller's Hangup end the call itself). Idempotent: DialEnd can come twice for one leg."""
    leg = tx.leg(uniqueid)
    if leg is None:
        return
    tx.drop_leg(uniqueid)
    if leg.connected:
        return
    agent = tx.agent(leg.agent)
    if agent is not None and uniqueid in agent.legs:
        tx.put_agent(replace(agent, legs=tuple(u for u in agent.legs if u != uniqueid)))
    call = tx.call(leg.caller)
    if call is not None and leg.agent in call.ringing:
        ringing = tuple(a for a in call.ringing if a != leg.agent)
        phase = call.phase
        if phase is CallPhase.RINGING and not ringing:
            phase = CallPhase.QUEUED
        tx.put_call(replace(call, ringing=ringing, phase=phase))


def wrapup_seconds(tx: Tx, agent: Agent | None, queue_name: str) -> float:
    """The wrap-up after a call from ``queue_name``: the member's own Wrapuptime when set,
    else the queue's configured one (no AMI event carries the queue's)."""
    member = agent.memberships.get(queue_name) if agent is not None else None
    if member is not None and member.wrapuptime > 0:
        return float(member.wrapuptime)
    return tx.config.queue(queue_name).wrapup_seconds
