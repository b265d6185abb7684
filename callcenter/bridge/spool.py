"""A bounded, append-only spool on disk for call-log batches the database could not take.

Contract:

- :meth:`Spool.append` writes one batch as one JSON line and fsyncs the file (and, the first
  time, its directory) before returning, so a batch the bridge was told is spooled survives a
  crash or power cut.
- :meth:`Spool.drain` hands the batches back in the order they were appended. The spool is
  emptied only after every batch was written; a crash half-way means some batches are
  written twice, which is harmless because every write to the call log is an idempotent
  upsert (see :mod:`callcenter.bridge.store`).
- The spool is bounded (``max_bytes``): :meth:`append` raises :class:`SpoolFull` rather than
  fill the disk, and the bridge then stops reading AMI until the database is back (Asterisk
  buffers, and the resync after reconnecting fills what was missed).
- A torn last line (the process died mid-write) is skipped and counted, never a crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 1 << 30


class SpoolFull(RuntimeError):
    pass


class Spool:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.torn_lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._size = path.stat().st_size if path.exists() else 0
        self._batches = self._count() if self._size else 0

    def _count(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))

    @property
    def depth(self) -> int:
        """Batches waiting."""
        return self._batches

    @property
    def size(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._batches > 0

    def append(self, batch: dict[str, Any]) -> None:
        line = (json.dumps(batch, separators=(",", ":")) + "\n").encode("utf-8")
        if self._size + len(line) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.path} would exceed {self.max_bytes} bytes "
                f"({self._batches} batches waiting for the database)"
            )
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._size += len(line)
        self._batches += 1

    def batches(self) -> Iterator[dict[str, Any]]:
        """The spooled batches, oldest first (does not remove them)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    self.torn_lines += 1  # died mid-write: the batch was never acknowledged
                    continue
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError:
                    self.torn_lines += 1

    def clear(self) -> None:
        """Forget every batch: call only after all of them were written."""
        if self.path.exists():
            self.path.unlink()
        self._size = 0
        self._batches = 0
