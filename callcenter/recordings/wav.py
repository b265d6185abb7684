"""A recording's file: is Asterisk done with it, how long is it, what is its checksum.

Asterisk's WAV writer (formats/format_wav.c) writes a 44-byte header with a data size of 0
when it opens the file and puts the real sizes in only when it closes it (``wav_close`` ->
``update_header``: data size = file size - 44; an odd size gets a pad byte after that, which
16-bit audio never has). No AMI event says when MixMonitor closed its file: MixMonitorStop
comes only from StopMixMonitor, not from a hang-up, after which the mixmonitor thread closes
the file a moment later. So a file is *closed* when its header's data size accounts for the
whole file: :func:`is_closed`. An empty recording (hung up at once) is 44 bytes with data
size 0, closed as well.

:func:`parse_header` is pure; :func:`inspect` reads a file (call it in a thread).
"""

from __future__ import annotations

import hashlib
import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

#: Bytes read to find the header (RIFF, fmt and any chunk before data).
HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Header:
    """What the WAV header says: the audio format and where the samples are."""

    channels: int
    rate: int
    sample_width: int
    data_offset: int
    data_size: int


@dataclass(frozen=True, slots=True)
class FileFacts:
    """A closed recording: its length (from the header), size on disk and SHA-256."""

    duration_ms: int
    size_bytes: int
    sha256: str


def parse_header(head: bytes) -> Header | None:
    """The header of a RIFF/WAVE file from its first bytes, or None when they are not one
    (too short, not RIFF/WAVE, no ``fmt `` before ``data``)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    fmt: tuple[int, int, int] | None = None
    while offset + 8 <= len(head):
        chunk, size = struct.unpack_from("<4sI", head, offset)
        body = offset + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(head):
                return None
            _tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from(
                "<HHIIHH", head, body
            )
            fmt = (channels, rate, bits // 8)
        elif chunk == b"data":
            if fmt is None or fmt[0] < 1 or fmt[1] < 1 or fmt[2] < 1:
                return None
            return Header(fmt[0], fmt[1], fmt[2], body, size)
        offset = body + size + (size & 1)
    return None


def is_closed(header: Header, file_size: int) -> bool:
    """Whether the writer closed the file: the header's data size covers every byte after the
    header (and the pad byte of an odd size). A file still being written has data size 0
    with samples after the header."""
    end = header.data_offset + header.data_size
    return end == file_size or (header.data_size & 1 == 1 and end + 1 == file_size)


def duration_ms(header: Header) -> int:
    """The audio's length in whole milliseconds, from the header's data size."""
    frames = header.data_size // (header.channels * header.sample_width)
    return frames * 1000 // header.rate


def inspect(path: Path) -> FileFacts | None:
    """The facts of a closed recording; None while it does not exist or is still being
    written. Raises OSError only for a file that exists but cannot be read; a file that is
    not a WAV file at all is reported closed with length 0 (it will not become one)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        header = parse_header(head)
        if header is not None and not is_closed(header, size):
            return None
        digest = hashlib.sha256()
        f.seek(0)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    length = 0
    if header is not None:
        length = duration_ms(header)
        # Python's own reader agrees, or the header lies about its format: trust neither.
        try:
            with wave.open(os.fspath(path), "rb") as w:
                length = w.getnframes() * 1000 // max(1, w.getframerate())
        except (wave.Error, EOFError):
            length = 0
    return FileFacts(length, size, digest.hexdigest())
