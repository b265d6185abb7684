"""Call lifecycle on the caller's channel: creation, dialplan variables, hold, transfer, hang-up.

A call is keyed by the Uniqueid of the caller's channel (the one that runs Queue()). It is
created

- at Newchannel, for a root channel (Uniqueid == Linkedid: not an agent leg, not a Local
  ``;2`` half) in one of ``CoreConfig.call_contexts`` -- so a caller who hangs up in the IVR
  is recorded (``ivr_hangup``);
- when a root channel seen elsewhere (an Originate's Local ``;1``) starts running in a call
  context (its first VarSet there), or joins a queue;
- from a queue or agent event about a caller we never saw (the bridge joined mid-call).

It is closed at the caller channel's Hangup, where the provisional outcome becomes final --
except a call still connected to an agent: app_queue's AgentComplete (with the talk time) can
come just after that Hangup, so the call closes at the AgentComplete.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from callcenter.ami.events import (
    AttendedTransfer,
    BlindTransfer,
    Hangup,
    Hold,
    Newchannel,
    Unhold,
    VarSet,
)
from callcenter.core.edits import close_call, end_leg, final_outcome, hang_up, new_call, promote
from callcenter.core.records import Call, CallPhase, Channel, State, clean_caller_id
from callcenter.core.tx import Result, Tx
from callcenter.domain import CallOutcome

#: QUEUESTATUS values (set by app_queue when Queue() returns without a connected call) that
#: decide the outcome. FULL, CONTINUE, WITHDRAW and UNKNOWN do not: a full queue is not a
#: CallOutcome, CONTINUE follows an answered call, WITHDRAW an abandon-like exit.
QUEUESTATUS_OUTCOMES = {
    "TIMEOUT": CallOutcome.TIMED_OUT,
    "JOINEMPTY": CallOutcome.EXIT_EMPTY,
    "LEAVEEMPTY": CallOutcome.EXIT_EMPTY,
    "JOINUNAVAIL": CallOutcome.EXIT_EMPTY,
    "LEAVEUNAVAIL": CallOutcome.EXIT_EMPTY,
}


def on_newchannel(state: State, event: Newchannel) -> Result:
    if event.uniqueid != event.linkedid or event.uniqueid in state.calls:
        return state, []
    tx = Tx(state, event.time)
    direction = state.config.call_contexts.get(event.context)
    if direction is not None:
        tx.put_call(new_call(tx, event, started_at=event.time, direction=direction))
    else:
        tx.put_channel(
            Channel(
                uniqueid=event.uniqueid,
                channel=event.channel,
                started_at=event.time,
                context=event.context,
                exten=event.exten,
                caller_number=clean_caller_id(event.caller_id_num),
                caller_name=clean_caller_id(event.caller_id_name),
            )
        )
    return tx.commit()


def var_set_matters(state: State, variable: str, uniqueid: str) -> bool:
    """Whether a VarSet of ``variable`` on channel ``uniqueid`` can change anything: one of
    the variables a call keeps, or any variable of a tracked root channel (its first VarSet
    in a call context makes it a call). Most VarSets (~half of all AMI traffic) are not."""
    config = state.config
    return (
        variable == "QUEUESTATUS"
        or variable == config.timeout_variable
        or variable == config.ivr_path_variable
        or uniqueid in state.channels
    )


def on_var_set(state: State, event: VarSet) -> Result:
    """QUEUESTATUS, the Queue() timeout variable and the IVR path variable of a call; and the
    first VarSet of a tracked root channel that now runs in a call context."""
    config = state.config
    name = event.variable
    if not var_set_matters(state, name, event.uniqueid):
        return state, []
    tx = Tx(state, event.time)
    call = tx.call(event.uniqueid)
    if call is None:
        channel = tx.channel(event.uniqueid)
        direction = config.call_contexts.get(event.context)
        if channel is None or direction is None:
            return state, []
        call = promote(tx, channel, direction, event.exten)
    if name == "QUEUESTATUS":
        outcome = QUEUESTATUS_OUTCOMES.get(event.value, call.outcome)
        call = replace(call, queue_status=event.value, outcome=outcome)
    elif name == config.timeout_variable:
        with contextlib.suppress(ValueError):  # not a number: Queue() would ignore it too
            call = replace(call, queue_timeout=float(event.value))
    elif name == config.ivr_path_variable:
        call = replace(call, ivr_path=event.value)
    tx.put_call(call)
    return tx.commit()


def on_hangup(state: State, event: Hangup) -> Result:
    uid = event.uniqueid
    leg = state.legs.get(uid)
    call = state.calls.get(uid)
    if leg is None and call is None and uid not in state.channels:
        return state, []
    tx = Tx(state, event.time)
    if leg is not None:
        end_leg(tx, uid)
    if uid in state.channels:
        tx.drop_channel(uid)
    if call is not None:
        call = tx.call(uid) or call
        if call.phase is CallPhase.CONNECTED:
            # The caller hung up on the agent; AgentComplete may come just *after* this Hangup
            # (burst: the agent's BYE) and brings the talk time, so it closes the call.
            tx.put_call(hang_up(call, event.time, event.cause))
        else:
            close_call(tx, hang_up(call, event.time, event.cause), final_outcome(call))
    return tx.commit()


def _call_of_channel(tx: Tx, uniqueid: str) -> Call | None:
    """The call a channel belongs to: the caller's own, or the one an agent leg serves."""
    call = tx.call(uniqueid)
    if call is None:
        leg = tx.leg(uniqueid)
        if leg is not None:
            call = tx.call(leg.caller)
    return call


def on_hold(state: State, event: Hold) -> Result:
    tx = Tx(state, event.time)
    call = _call_of_channel(tx, event.uniqueid)
    if call is None or call.on_hold_since is not None:
        return state, []
    tx.put_call(replace(call, on_hold_since=event.time))
    return tx.commit()


def on_unhold(state: State, event: Unhold) -> Result:
    tx = Tx(state, event.time)
    call = _call_of_channel(tx, event.uniqueid)
    if call is None or call.on_hold_since is None:
        return state, []
    held = event.time - call.on_hold_since
    tx.put_call(replace(call, on_hold_since=None, hold_seconds=(call.hold_seconds or 0.0) + held))
    return tx.commit()


def _mark_transferred(
    state: State, at: float, uniqueids: tuple[str, ...], target: str | None
) -> Result:
    tx = Tx(state, at)
    for uid in uniqueids:
        call = _call_of_channel(tx, uid) if uid else None
        if call is not None and call.phase is CallPhase.CONNECTED:
            tx.put_call(
                replace(call, outcome=CallOutcome.TRANSFERRED, transfer_target=target or None)
            )
            return tx.commit()
    return state, []


def on_blind_transfer(state: State, event: BlindTransfer) -> Result:
    """A successful transfer of a connected queue call marks it ``transferred`` (app_queue
    also sends AgentComplete with Reason transfer, which does the same)."""
    if event.result != "Success":
        return state, []
    target = f"{event.extension}@{event.context}" if event.extension else ""
    return _mark_transferred(
        state, event.time, (event.transferee_uniqueid, event.transferer_uniqueid), target
    )


def on_attended_transfer(state: State, event: AttendedTransfer) -> Result:
    if event.result != "Success":
        return state, []
    return _mark_transferred(
        state,
        event.time,
        (
            event.transferee_uniqueid,
            event.orig_transferer_uniqueid,
            event.second_transferer_uniqueid,
            event.transfer_target_uniqueid,
        ),
        event.transfer_target_channel or event.dest_type,
    )
