"""Agent legs: app_queue ringing members for a caller, connecting, completing.

AgentCalled opens a leg (the agent rings); it ends with AgentRingNoAnswer, AgentDump, a
DialEnd other than ANSWER, or the leg's Hangup -- whichever comes first, the others are no-ops
(DialEnd can come twice: NOANSWER then CANCEL, or CANCEL twice). AgentConnect connects the leg;
AgentComplete ends the queue call and starts the agent's wrap-up.

The member's QueueMemberStatus (RINGING, INUSE, InCall) may come before or after
AgentConnect -- the order varies between runs -- so the agent's state is derived from both
facts (see :func:`callcenter.core.derive.agent_state`) and the result is the same either way.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.ami.events import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentDump,
    AgentRingNoAnswer,
    DialEnd,
)
from callcenter.core.changes import VisitChanged
from callcenter.core.edits import close_call, end_leg, ensure_call, wrapup_seconds
from callcenter.core.records import Agent, Call, CallPhase, Leg, State
from callcenter.core.tx import Result, Tx
from callcenter.domain import CallOutcome


def on_agent_called(state: State, event: AgentCalled) -> Result:
    tx = Tx(state, event.time)
    leg_id = event.dest_uniqueid
    tx.put_leg(Leg(leg_id, event.member_name, event.uniqueid, event.dest_channel))
    agent = tx.agent(event.member_name)
    if agent is not None and leg_id not in agent.legs:
        tx.put_agent(replace(agent, legs=(*agent.legs, leg_id)))
    call = ensure_call(tx, event, started_at=event.time)
    ringing = call.ringing
    if event.member_name not in ringing:
        ringing = (*ringing, event.member_name)
    tx.put_call(
        replace(
            call,
            queue=call.queue or event.queue,
            phase=CallPhase.RINGING,
            ringing=ringing,
            ring_attempts=call.ring_attempts + 1,
        )
    )
    return tx.commit()


def _end_ring(state: State, at: float, leg_id: str) -> Result:
    if leg_id not in state.legs:
        return state, []
    tx = Tx(state, at)
    end_leg(tx, leg_id)
    return tx.commit()


def on_ring_no_answer(state: State, event: AgentRingNoAnswer) -> Result:
    return _end_ring(state, event.time, event.dest_uniqueid)


def on_agent_dump(state: State, event: AgentDump) -> Result:
    return _end_ring(state, event.time, event.dest_uniqueid)


def on_dial_end(state: State, event: DialEnd) -> Result:
    if event.dial_status == "ANSWER":
        return state, []  # AgentConnect follows and says more
    leg = state.legs.get(event.dest_uniqueid)
    if leg is None or leg.connected:
        return state, []
    return _end_ring(state, event.time, event.dest_uniqueid)


def on_agent_connect(state: State, event: AgentConnect) -> Result:
    """The agent answered: the call is ``connected`` with ``wait`` = HoldTime (queue_log
    CONNECT data1) and the agent ``on_call``."""
    tx = Tx(state, event.time)
    leg_id = event.dest_uniqueid
    tx.put_leg(Leg(leg_id, event.member_name, event.uniqueid, event.dest_channel, True))
    call = ensure_call(tx, event, started_at=event.time - event.hold_time)
    queued_at = call.queued_at
    if queued_at is None:
        # First seen here (the bridge joined mid-call): HoldTime places the visit in its
        # queue's figures by when it entered the queue.
        queued_at = event.time - event.hold_time
    tx.put_call(
        replace(
            call,
            queue=call.queue or event.queue,
            queued_at=queued_at,
            phase=CallPhase.CONNECTED,
            ringing=(),
            agent=event.member_name,
            agent_channel=event.dest_channel,
            agent_uniqueid=leg_id,
            answered_at=event.time,
            wait_seconds=float(event.hold_time),
            outcome=CallOutcome.ANSWERED,
        )
    )
    agent = tx.agent(event.member_name)
    if agent is not None:
        tx.put_agent(
            replace(
                agent,
                legs=tuple(u for u in agent.legs if u != leg_id),
                call=event.uniqueid,
                call_queue=event.queue,
                wrapup_until=None,
            )
        )
    return tx.commit()


def _completed_call(tx: Tx, event: AgentComplete, agent: Agent | None) -> Call | None:
    """The current visit of the call this AgentComplete ends, or ``None``.

    With channel fields, the caller's Uniqueid names it (a call the bridge never saw is
    created). Without (the bare form, see :class:`~callcenter.ami.events.AgentComplete`),
    the member says: the call the agent is connected to, if it is in this queue; else any
    call whose current visit is connected to this member in this queue.
    """
    if event.uniqueid:
        call = tx.call(event.uniqueid)
        if call is not None:
            return call
        return ensure_call(tx, event, started_at=event.time - event.talk_time - event.hold_time)
    name, queue = event.member_name, event.queue
    if agent is not None and agent.call is not None:
        call = tx.call(agent.call)
        if call is not None and call.queue == queue and call.agent == name:
            return call
    for call in tx.old.calls.values():
        current = tx.call(call.uniqueid)
        if (
            current is not None
            and current.queue == queue
            and current.agent == name
            and current.phase in (CallPhase.CONNECTED, CallPhase.ENDED)
        ):
            return current
    return None


def on_agent_complete(state: State, event: AgentComplete) -> Result:
    """The queue visit is over: ``talk`` = TalkTime (queue_log COMPLETE* data2), outcome
    ``answered`` or ``transferred`` (Reason transfer), and the agent is in wrap-up until
    ``time + wrapup`` (member Wrapuptime, else the queue's configured wrap-up).

    Which visit: one that left its queue still connected to this member (an open visit,
    after a Redirect), else the call's current visit (see :func:`_completed_call`). It may
    come before or after the caller's Hangup (caller hung up: before; agent hung up:
    either, see ``burst``). Before, the caller may stay in the dialplan and the call closes
    at its Hangup; after, the call was kept open for this and closes now. One that matches
    no call still ends the member's call and starts its wrap-up: the agent must not stay
    on a call forever.
    """
    tx = Tx(state, event.time)
    agent = tx.agent(event.member_name)
    visit = tx.open_visit(event.queue, event.member_name)
    if visit is not None and event.uniqueid and visit.uniqueid != event.uniqueid:
        visit = None
    call = _completed_call(tx, event, agent) if visit is None else None
    uid = visit.uniqueid if visit is not None else call.uniqueid if call is not None else None
    wrapup = wrapup_seconds(tx, agent, event.queue)
    if visit is not None:
        wrapup = visit.wrapup_seconds or 0.0
    if agent is not None and visit is None:
        memberships = dict(agent.memberships)
        member = memberships.get(event.queue)
        if member is not None and member.in_call:
            # app_queue clears in_call now; its QueueMemberStatus saying so may come later.
            memberships[event.queue] = replace(member, in_call=False)
        if uid is not None:
            ours = agent.call is None or agent.call == uid
        else:
            ours = agent.call is None or agent.call_queue == event.queue
        tx.put_agent(
            replace(
                agent,
                memberships=memberships,
                call=None if ours else agent.call,
                call_queue=None if ours else agent.call_queue,
                wrapup_until=event.time + wrapup if wrapup > 0 and ours else agent.wrapup_until,
            )
        )
    talk_started = event.time - event.talk_time
    outcome = CallOutcome.TRANSFERRED if event.reason == "transfer" else CallOutcome.ANSWERED

    def completed(c: Call) -> Call:
        return replace(
            c,
            queue=c.queue or event.queue,
            queued_at=c.queued_at if c.queued_at is not None else talk_started - event.hold_time,
            ringing=(),
            agent=event.member_name,
            agent_channel=c.agent_channel or event.dest_channel or None,
            agent_uniqueid=c.agent_uniqueid or event.dest_uniqueid or None,
            answered_at=c.answered_at if c.answered_at is not None else talk_started,
            wait_seconds=float(event.hold_time),
            talk_seconds=float(event.talk_time),
            wrapup_seconds=wrapup,
            outcome=outcome,
            visit_ended_at=event.time,
        )

    if visit is not None:
        tx.drop_open_visit(visit)
        tx.changes.append(VisitChanged(completed(visit), final=True))
    elif call is not None:
        call = completed(call)
        if call.phase is CallPhase.ENDED:
            close_call(tx, call, outcome)
        else:
            tx.put_call(replace(call, phase=CallPhase.POST_QUEUE))
    return tx.commit()
