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
from callcenter.core.edits import close_call, end_leg, ensure_call, wrapup_seconds
from callcenter.core.records import CallPhase, Leg, State
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
    tx.put_call(
        replace(
            call,
            queue=call.queue or event.queue,
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


def on_agent_complete(state: State, event: AgentComplete) -> Result:
    """The queue call is over: ``talk`` = TalkTime (queue_log COMPLETE* data2), outcome
    ``answered`` or ``transferred`` (Reason transfer), and the agent is in wrap-up until
    ``time + wrapup`` (member Wrapuptime, else the queue's configured wrap-up).

    It may come before or after the caller's Hangup (caller hung up: before; agent hung up:
    either, see ``burst``). Before, the caller may stay in the dialplan and the call closes
    at its Hangup; after, the call was kept open for this and closes now.
    """
    tx = Tx(state, event.time)
    agent = tx.agent(event.member_name)
    wrapup = wrapup_seconds(tx, agent, event.queue)
    if agent is not None:
        memberships = dict(agent.memberships)
        member = memberships.get(event.queue)
        if member is not None and member.in_call:
            # app_queue clears in_call now; its QueueMemberStatus saying so may come later.
            memberships[event.queue] = replace(member, in_call=False)
        ours = agent.call is None or agent.call == event.uniqueid
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
    call = ensure_call(tx, event, started_at=talk_started - event.hold_time)
    outcome = CallOutcome.TRANSFERRED if event.reason == "transfer" else CallOutcome.ANSWERED
    call = replace(
        call,
        queue=call.queue or event.queue,
        ringing=(),
        agent=event.member_name,
        agent_channel=call.agent_channel or event.dest_channel,
        agent_uniqueid=call.agent_uniqueid or event.dest_uniqueid,
        answered_at=call.answered_at if call.answered_at is not None else talk_started,
        wait_seconds=float(event.hold_time),
        talk_seconds=float(event.talk_time),
        wrapup_seconds=wrapup,
        outcome=outcome,
    )
    if call.phase is CallPhase.ENDED:
        close_call(tx, call, outcome)
    else:
        tx.put_call(replace(call, phase=CallPhase.POST_QUEUE))
    return tx.commit()
