"""The recordings of one node inside the AMI bridge: the shell around :mod:`.track`.

The node (:class:`callcenter.bridge.node.NodeBridge`) hands it the events that concern
recordings, in stream order and synchronously (:meth:`RecordingKeeper.handle`, a dict lookup
for the many Hangups of channels nobody records). Rows go to the call-log writer's batch, so
they share its spool and its order: nothing is lost while PostgreSQL is away.

When a recorded leg ends, nothing says when MixMonitor closed the file (:mod:`.wav`): the
keeper looks at it 0.5 s later, then after 1, 2, 4... up to 10 s between looks, until the
header says it is closed (the row is then done: length, size, SHA-256) or ``missing_after``
seconds have passed (the row is missing). Only recordings that ended are looked at, and
only until they are complete: with nothing to check, :meth:`run` sleeps on an event.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from callcenter.ami import events as ev
from callcenter.recordings import paths, track, wav

log = logging.getLogger(__name__)

#: The events a node hands the keeper (every other type concerns no recording).
EVENT_TYPES: frozenset[type[ev.Event]] = frozenset(
    {ev.CallRecording, ev.MixMonitorMute, ev.MixMonitorStop, ev.Hangup}
)
#: Seconds from a leg's end to the first look at its file, and the most between two looks.
FIRST_LOOK = 0.5
MOST_BETWEEN = 10.0

RowSink = Callable[[Iterable[dict[str, Any]]], None]


class RecordingKeeper:
    def __init__(
        self,
        node: str,
        root: Path,
        sink: RowSink,
        *,
        missing_after: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.root = root
        self.sink = sink
        self.missing_after = missing_after
        self.monotonic = monotonic
        self.state = track.Recordings(node)
        # (when, path, deadline, gap): the files to look at, soonest first.
        self._due: list[tuple[float, str, float, float]] = []
        self._wake = asyncio.Event()
        self.restored = False
        self.checked = 0  # looks at files, for tests and doctor-like counters

    # --- the events (synchronous, in stream order) --------------------------------------

    def handle(self, event: ev.Event, visit: int | None = None) -> None:
        """One event of the node; ``visit``: the caller's queue visit now (CallRecording)."""
        self._take(*track.apply(self.state, event, visit))

    def channels_gone(self, live: Iterable[str], at: float) -> None:
        """The resync listed ``live`` channels: recordings of any other leg have ended."""
        self._take(*track.channels_gone(self.state, live, at))

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The unfinished rows of this node from the database (first connection)."""
        recs = [track.from_row(self.node, row, paths.leg_of(str(row["path"]))) for row in rows]
        self.restored = True
        if recs:
            log.info("recordings %s: %d unfinished recordings taken back", self.node, len(recs))
        self._take(*track.restore(self.state, recs))

    def _take(self, state: track.Recordings, changes: list[track.Change]) -> None:
        self.state = state
        if not changes:
            return
        rows = []
        for change in changes:
            if isinstance(change, track.RecordingChanged):
                rows.append(track.row(change.recording))
            elif isinstance(change, track.CheckFile):
                now = self.monotonic()
                heapq.heappush(self._due, (now + FIRST_LOOK, change.path,
                                           now + self.missing_after, FIRST_LOOK))  # fmt: skip
                self._wake.set()
            else:
                log.warning("recordings %s: ignored a CallRecording event for %r: %s",
                            self.node, change.path, change.reason)  # fmt: skip
        if rows:
            self.sink(rows)

    # --- the files ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Files waiting to be closed."""
        return len(self._due)

    def _inspect(self, relative: str) -> wav.FileFacts | None:
        try:
            return wav.inspect(paths.resolve(self.root, relative))
        except paths.PathError as exc:
            log.warning("recordings %s: %s", self.node, exc)
            return None
        except OSError as exc:
            log.warning("recordings %s: cannot read %s (%s)", self.node, relative, exc)
            return None

    async def check_due(self) -> None:
        """Look at every file whose time has come (each in a thread: a checksum reads it)."""
        now = self.monotonic()
        while self._due and self._due[0][0] <= now:
            _when, path, deadline, gap = heapq.heappop(self._due)
            facts = await asyncio.to_thread(self._inspect, path)
            self.checked += 1
            give_up = facts is None and self.monotonic() >= deadline
            self._take(*track.file_checked(self.state, path, facts, give_up=give_up))
            if facts is None and not give_up and path in self.state.by_path:
                gap = min(gap * 2, MOST_BETWEEN)
                heapq.heappush(self._due, (self.monotonic() + gap, path, deadline, gap))
            elif give_up:
                log.warning("recordings %s: %s never closed within %.0f s; marked missing",
                            self.node, path, self.missing_after)  # fmt: skip
            now = self.monotonic()

    async def run(self) -> None:
        """Until cancelled: look at files when they are due; asleep when none is."""
        while True:
            self._wake.clear()
            if not self._due:
                await self._wake.wait()
                continue
            delay = self._due[0][0] - self.monotonic()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            await self.check_due()
