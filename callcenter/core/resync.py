"""Resynchronisation from QueueStatus and CoreShowChannels: Asterisk's answer is the truth.

After (re)connecting, the shell sends QueueStatus and CoreShowChannels. Their list items
(QueueParams, QueueMember, QueueEntry / CoreShowChannel) reach ``apply`` like any event and are
collected per ActionID; the closing QueueStatusComplete / CoreShowChannelsComplete runs
:func:`resync_queues` / :func:`resync_channels` on what was collected. Both can also be called
directly with lists the shell gathered itself.

Why it is needed: the bridge misses events while disconnected, and some state changes have no
event at all -- after a restart Asterisk restores ``persistentmembers`` (still paused, same
reason) without QueueMemberAdded or queue_log lines.

Limits: list items describe Asterisk at the moment it ran the action, while events queued
before it may still be delivered after the list. A call that hangs up in that window can be
closed as ``lost`` before its Hangup arrives (which is then ignored); queue_log reconciliation
(:mod:`callcenter.core.queue_log`) repairs it. Send QueueStatus without a ``Member`` filter: a
queue it lists is taken as complete.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace

from callcenter.ami.events import (
    CoreShowChannel,
    CoreShowChannelsComplete,
    Event,
    QueueEntry,
    QueueMember,
    QueueParams,
    QueueStatusComplete,
)
from callcenter.core.agents import login_time, membership_of, state_since
from callcenter.core.changes import QueueChanged, VisitChanged
from callcenter.core.edits import (
    close_call,
    end_leg,
    final_outcome,
    new_call,
    next_visit,
    promote,
    wrapup_seconds,
)
from callcenter.core.records import (
    STATUS_BUSY,
    STATUS_RINGING,
    Agent,
    Call,
    Caller,
    CallPhase,
    Channel,
    ListItems,
    State,
    clean_caller_id,
)
from callcenter.core.tx import Result, Tx
from callcenter.domain import CallOutcome, Direction

ListItem = QueueParams | QueueMember | QueueEntry | CoreShowChannel


def on_list_item(state: State, event: ListItem) -> Result:
    """Keep a list item until its list completes (O(1): a linked pair, newest first)."""
    lists = dict(state.lists)
    lists[event.action_id] = (event, state.lists.get(event.action_id))
    return replace(state, lists=lists), []


def _take_list(state: State, action_id: str) -> tuple[State, list[Event]]:
    chain: ListItems = state.lists.get(action_id)
    items: list[Event] = []
    while chain is not None:
        item, chain = chain
        items.append(item)
    items.reverse()
    lists = {k: v for k, v in state.lists.items() if k != action_id}
    return replace(state, lists=lists), items


def on_queue_status_complete(state: State, event: QueueStatusComplete) -> Result:
    state, items = _take_list(state, event.action_id)
    return resync_queues(
        state,
        [i for i in items if isinstance(i, QueueParams)],
        [i for i in items if isinstance(i, QueueMember)],
        [i for i in items if isinstance(i, QueueEntry)],
        event.time,
    )


def on_channels_complete(state: State, event: CoreShowChannelsComplete) -> Result:
    state, items = _take_list(state, event.action_id)
    return resync_channels(state, [i for i in items if isinstance(i, CoreShowChannel)], event.time)


# --- QueueStatus -----------------------------------------------------------------------------


def resync_queues(
    state: State,
    params: Sequence[QueueParams],
    members: Sequence[QueueMember],
    entries: Sequence[QueueEntry],
    at: float,
) -> Result:
    """Make the queues QueueStatus listed exactly what it says, and report the differences.

    For every listed queue: memberships it no longer lists are removed (an agent left with
    none is logged out, reason ``resync``); listed members are added or updated; an agent's
    call, ringing legs and wrap-up are kept only where the member Status/InCall still allow
    them (a wrap-up we did not see start is rebuilt from LastCall); the waiting callers
    become the QueueEntry list (unknown callers become calls, callers gone unseen move to
    ``post_queue``). Agents and queues it does not list are left alone.
    """
    tx = Tx(state, at)
    covered = {p.queue for p in params} | {m.queue for m in members} | {e.queue for e in entries}
    for name in covered:
        tx.ensure_queue(name)
    listed: dict[str, dict[str, QueueMember]] = {}
    for member in members:
        listed.setdefault(member.member_name, {})[member.queue] = member
    for name in tx.agent_names():
        _drop_unlisted(tx, name, covered, listed.get(name, {}))
    for name, by_queue in listed.items():
        _apply_listed(tx, name, by_queue, at)
    for name in sorted(covered):
        _resync_callers(tx, name, [e for e in entries if e.queue == name], at)
    return tx.commit()


def retire_queues(state: State, listed: Collection[str], at: float) -> Result:
    """Forget the queues Asterisk no longer has: ``listed`` is every queue a QueueStatus
    *without any filter* named (its QueueParams), so a queue of ours it left out was removed
    from Asterisk (a reload, a restart with another configuration). Memberships in those
    queues end (an agent left with none is logged out, reason ``resync``); their waiting
    callers are CoreShowChannels' business. Queues not known here are not created."""
    gone = {name for name in state.queues if name not in listed}
    if not gone:
        return state, []
    tx = Tx(state, at)
    for name in tx.agent_names():
        agent = tx.agent(name)
        if agent is None or not gone.intersection(agent.memberships):
            continue
        memberships = {q: m for q, m in agent.memberships.items() if q not in gone}
        tx.logout_reasons[name] = "resync"
        tx.put_agent(replace(agent, memberships=memberships))
    state, changes = tx.commit()
    queues = {name: q for name, q in state.queues.items() if name not in gone}
    # The snapshots commit derived for the queues on their way out are not news.
    changes = [c for c in changes if not (isinstance(c, QueueChanged) and c.queue.queue in gone)]
    return replace(state, queues=queues), changes


def restore_calls(state: State, calls: Iterable[Call]) -> State:
    """The state with ``calls`` added where it does not know them (no change reported).

    The shell hands in the calls its call log still holds open from before it started (a
    stop of the services cuts calls whose end the bridge never saw): the next
    :func:`resync_channels` then closes those whose channel is gone as ``lost``, for queue_log
    to correct, and keeps following those still live."""
    known = state.calls
    new = {c.uniqueid: c for c in calls if c.uniqueid not in known and not c.closed}
    if not new:
        return state
    return replace(state, calls={**known, **new})


def _drop_unlisted(tx: Tx, name: str, covered: set[str], listed: dict[str, QueueMember]) -> None:
    agent = tx.agent(name)
    if agent is None:
        return
    stale = [q for q in agent.memberships if q in covered and q not in listed]
    if stale:
        memberships = {q: m for q, m in agent.memberships.items() if q not in stale}
        tx.logout_reasons[name] = "resync"
        tx.put_agent(replace(agent, memberships=memberships))


def _apply_listed(tx: Tx, name: str, by_queue: dict[str, QueueMember], at: float) -> None:
    first = next(iter(by_queue.values()))
    agent = tx.agent(name)
    since = max((state_since(m) for m in by_queue.values()), default=at)
    if agent is None:
        agent = tx.new_agent(name, first.interface, min(login_time(m) for m in by_queue.values()))
    memberships = dict(agent.memberships)
    for queue_name, member in by_queue.items():
        memberships[queue_name] = membership_of(member)
    agent = replace(agent, interface=first.interface, memberships=memberships)
    tx.put_agent(_settle(tx, agent, at), since=since)


def _settle(tx: Tx, agent: Agent, at: float) -> Agent:
    """Keep the call, legs and wrap-up of ``agent`` only where its members' facts allow."""
    members = agent.memberships.values()
    in_call = any(m.in_call for m in members)
    busy = any(m.status in STATUS_BUSY for m in members)
    ringing = any(m.status in STATUS_RINGING for m in members)
    call, call_queue = agent.call, agent.call_queue
    if call is not None and not (in_call or busy):
        call, call_queue = None, None  # it ended while we were not looking
    legs = agent.legs if (ringing or busy) else ()
    wrapup_until = agent.wrapup_until
    if call is not None or (wrapup_until is not None and wrapup_until <= at):
        wrapup_until = None
    if call is None and wrapup_until is None and not in_call:
        last_call = max((m.last_call for m in members), default=0)
        if last_call:
            # LastCall does not say which queue the call came from: the longest wrap-up.
            wrapup = max(wrapup_seconds(tx, agent, q) for q in agent.memberships)
            if last_call + wrapup > at:
                wrapup_until = last_call + wrapup
    return replace(agent, call=call, call_queue=call_queue, legs=legs, wrapup_until=wrapup_until)


def _resync_callers(tx: Tx, queue_name: str, entries: list[QueueEntry], at: float) -> None:
    queue = tx.ensure_queue(queue_name)
    callers: dict[str, Caller] = {}
    for entry in entries:
        known = queue.callers.get(entry.uniqueid)
        joined = known.joined_at if known is not None else at - entry.wait
        callers[entry.uniqueid] = Caller(
            uniqueid=entry.uniqueid,
            channel=entry.channel,
            caller_number=clean_caller_id(entry.caller_id_num),
            caller_name=clean_caller_id(entry.caller_id_name),
            position=entry.position,
            joined_at=joined,
        )
        call = tx.call(entry.uniqueid) or _call_from_entry(tx, entry, joined)
        if call.queue is not None and call.queue != queue_name:
            call = next_visit(tx, call, joined)  # it moved to this queue while we were away
        if call.queue != queue_name or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING):
            call = replace(
                call,
                queue=queue_name,
                queued_at=call.queued_at if call.queue == queue_name else joined,
                phase=CallPhase.QUEUED,
                outcome=None,
            )
        if call != tx.call(entry.uniqueid):
            tx.put_call(call)
    for uid in queue.callers:
        gone = tx.call(uid) if uid not in callers else None
        if gone is not None and gone.queue == queue_name and gone.phase in _WAITING:
            tx.put_call(replace(gone, phase=CallPhase.POST_QUEUE, ringing=()))
    if callers != queue.callers:
        tx.put_queue(replace(queue, callers=callers))


_WAITING = (CallPhase.QUEUED, CallPhase.RINGING)


def _call_from_entry(tx: Tx, entry: QueueEntry, joined: float) -> Call:
    channel = tx.channel(entry.uniqueid)
    if channel is not None:
        direction = tx.config.call_contexts.get(channel.context, Direction.INBOUND)
        return replace(promote(tx, channel, direction, channel.exten), queued_at=joined)
    return Call(
        node=tx.node,
        uniqueid=entry.uniqueid,
        linkedid=entry.uniqueid,
        direction=Direction.INBOUND,
        channel=entry.channel,
        caller_number=clean_caller_id(entry.caller_id_num),
        caller_name=clean_caller_id(entry.caller_id_name),
        did="",
        started_at=joined,
        phase=CallPhase.QUEUED,
        queue=entry.queue,
        queued_at=joined,
    )


# --- CoreShowChannels ------------------------------------------------------------------------


def resync_channels(state: State, channels: Sequence[CoreShowChannel], at: float) -> Result:
    """Reconcile calls, agent legs and tracked channels with the live channel list.

    An open call whose channel is gone is closed with outcome ``lost`` and no end time (it
    ended while we were not looking; queue_log can tell how), unless it had already left
    the queue with a known outcome (AgentComplete or QueueCallerAbandon seen), which stands.
    Live root channels we do not know become calls (in a call context; ``queued`` or
    ``connected`` when they run Queue()) or tracked channels.
    """
    live = {c.uniqueid: c for c in channels}
    tx = Tx(state, at)
    for uid in state.legs:
        if uid not in live:
            end_leg(tx, uid)
    for uid in state.calls:
        if uid in live:
            continue
        call = tx.call(uid)
        if call is None:
            continue
        decided = call.phase in (CallPhase.POST_QUEUE, CallPhase.ENDED)
        close_call(tx, call, call.outcome if decided and call.outcome else _LOST)
    for visit in tx.open_visits():
        if visit.uniqueid not in live:
            # Its AgentComplete may still be on the way; if not, queue_log can tell the talk.
            tx.drop_open_visit(visit)
            done = replace(visit, outcome=final_outcome(visit))
            tx.changes.append(VisitChanged(done, final=True))
    for uid in state.channels:
        if uid not in live:
            tx.drop_channel(uid)
    for name in tx.agent_names():
        agent = tx.agent(name)
        if agent is not None and agent.call is not None and agent.call not in live:
            tx.put_agent(replace(agent, call=None, call_queue=None))
    for channel in channels:
        uid = channel.uniqueid
        if uid != channel.linkedid or tx.call(uid) is not None or tx.channel(uid) is not None:
            continue
        _adopt_channel(tx, channel, at)
    return tx.commit()


_LOST = CallOutcome.LOST


def _adopt_channel(tx: Tx, channel: CoreShowChannel, at: float) -> None:
    started = at - channel.duration
    direction = tx.config.call_contexts.get(channel.context)
    if direction is None:
        tx.put_channel(
            Channel(
                uniqueid=channel.uniqueid,
                channel=channel.channel,
                started_at=started,
                context=channel.context,
                exten=channel.exten,
                caller_number=clean_caller_id(channel.caller_id_num),
                caller_name=clean_caller_id(channel.caller_id_name),
            )
        )
        return
    call = new_call(tx, channel, started_at=started, direction=direction)
    if channel.application == "Queue":
        # ApplicationData is Queue()'s argument string: "sales,,,,30".
        queue_name = channel.application_data.split(",", 1)[0]
        phase = CallPhase.CONNECTED if channel.bridge_id else CallPhase.QUEUED
        call = replace(call, queue=queue_name or None, phase=phase)
    tx.put_call(call)
