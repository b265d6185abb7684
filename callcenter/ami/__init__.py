"""The AMI bridge's pure parts: wire framing (:mod:`.protocol`) and typed events (:mod:`.events`).

Nothing in this package does I/O; the connection that owns a socket feeds bytes to an
:class:`~callcenter.ami.protocol.AmiParser` and hands each event frame to
:func:`~callcenter.ami.events.parse_event`.
"""

from callcenter.ami.events import Event, MalformedEvent, UnknownEvent, parse_event
from callcenter.ami.protocol import (
    AmiParser,
    Banner,
    Frame,
    FrameTooLarge,
    MalformedMessage,
    Message,
    encode_action,
)

__all__ = [
    "AmiParser",
    "Banner",
    "Event",
    "Frame",
    "FrameTooLarge",
    "MalformedEvent",
    "MalformedMessage",
    "Message",
    "UnknownEvent",
    "encode_action",
    "parse_event",
]
