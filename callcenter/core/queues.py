"""Callers in queues: QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon.

Order on the wire (Asterisk 22 traces): an answered caller gets QueueCallerLeave *before*
AgentConnect; a caller who gives up or times out gets QueueCallerAbandon, then
QueueCallerLeave. So Leave alone decides nothing: it moves the call to ``post_queue`` and
AgentConnect (or the outcome already set by Abandon) says how it ended.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.ami.events import QueueCallerAbandon, QueueCallerJoin, QueueCallerLeave
from callcenter.core.config import CoreConfig
from callcenter.core.edits import add_caller, ensure_call, next_visit, remove_caller
from callcenter.core.records import Call, Caller, CallPhase, State, clean_caller_id
from callcenter.core.tx import Result, Tx
from callcenter.domain import CallOutcome


def on_join(state: State, event: QueueCallerJoin) -> Result:
    """The caller joined a queue at ``Position`` (its original position). Joining a queue
    again (a blind or attended transfer to a queue, a Redirect, an overflow) is a new visit:
    the one before is reported on its own (:func:`~callcenter.core.edits.next_visit`), as
    queue_log and app_queue count each visit as offered in its queue."""
    tx = Tx(state, event.time)
    call = ensure_call(tx, event, started_at=event.time)
    if call.queue is not None:
        call = next_visit(tx, call, event.time)
    ivr_seconds = call.ivr_seconds
    if ivr_seconds is None:
        ivr_seconds = max(0.0, event.time - call.started_at)
    tx.put_call(
        replace(
            call,
            phase=CallPhase.QUEUED,
            queue=event.queue,
            queued_at=event.time,
            original_position=event.position,
            ivr_seconds=ivr_seconds,
            ringing=(),
            outcome=None,
            queue_status=None,
            wait_seconds=None,
            # A Local ";1" caller has no caller ID at Newchannel; by now the dialplan set it.
            caller_number=call.caller_number or clean_caller_id(event.caller_id_num),
            caller_name=call.caller_name or clean_caller_id(event.caller_id_name),
        )
    )
    add_caller(
        tx,
        event.queue,
        Caller(
            uniqueid=event.uniqueid,
            channel=event.channel,
            caller_number=clean_caller_id(event.caller_id_num),
            caller_name=clean_caller_id(event.caller_id_name),
            position=event.position,
            joined_at=event.time,
        ),
    )
    return tx.commit()


def on_leave(state: State, event: QueueCallerLeave) -> Result:
    tx = Tx(state, event.time)
    remove_caller(tx, event.queue, event.uniqueid)
    call = tx.call(event.uniqueid)
    if call is not None and call.phase in (CallPhase.QUEUED, CallPhase.RINGING):
        tx.put_call(replace(call, phase=CallPhase.POST_QUEUE, visit_ended_at=event.time))
    return tx.commit()


def abandon_outcome(call: Call, event: QueueCallerAbandon, config: CoreConfig) -> CallOutcome:
    """Tell a Queue() timeout from a real abandon, since both send QueueCallerAbandon.

    What the traces show (``inbound-timeout``, ``burst``, ``inbound-abandon``):

    - A timeout: QueueCallerAbandon with HoldTime = the timeout (5 of 5; 30 of 30 for all 8
      burst timeouts), QueueCallerLeave, then ``VarSet QUEUESTATUS=TIMEOUT`` on the caller's
      channel, *before* its Hangup. app_queue sets QUEUESTATUS only when Queue() returns
      with the channel alive, so that VarSet is the reliable signal; :mod:`.calls` applies
      it when it comes (it needs the ``dialplan`` read class).
    - A real abandon: HangupRequest, then QueueCallerAbandon with HoldTime below the
      timeout (9 of 30), and no QUEUESTATUS at all.

    Here, before QUEUESTATUS can be known, the call is provisionally ``timed_out`` when the
    wait reached the timeout: app_queue leaves on ``time(NULL) >= qe.expire``, i.e. at
    HoldTime >= timeout, while a caller hanging up earlier has a shorter wait. The timeout is
    the call's own (the dialplan's timeout variable, QTIMEOUT) or the queue's configured
    ``max_wait_seconds``; unknown means ``abandoned``. queue_log (EXITWITHTIMEOUT vs ABANDON)
    stays the authority for reconciliation.
    """
    timeout = call.queue_timeout
    if timeout is None:
        timeout = config.queue(event.queue).max_wait_seconds
    if timeout is not None and event.hold_time >= timeout:
        return CallOutcome.TIMED_OUT
    return CallOutcome.ABANDONED


def on_abandon(state: State, event: QueueCallerAbandon) -> Result:
    tx = Tx(state, event.time)
    call = ensure_call(tx, event, started_at=event.time - event.hold_time)
    if call.queue is None:
        queued_at = event.time - event.hold_time
        call = replace(call, queue=event.queue, queued_at=queued_at, phase=CallPhase.QUEUED)
    tx.put_call(
        replace(
            call,
            wait_seconds=float(event.hold_time),
            original_position=event.original_position or call.original_position,
            outcome=abandon_outcome(call, event, state.config),
        )
    )
    return tx.commit()
