"""events -- typed events from leanauthd's PUB socket, and their wire form.

Each PUB message is the event's full protobuf name
(``leanauth.v1.AuthenticationFailed``), one NUL byte, then the encoded
message. Subscribing to ``topic + b"\\0"`` matches one event type exactly;
``b""`` matches every message. Events never carry a secret.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterable, List, Optional, Type, Union

from ._proto.leanauth.v1 import events_pb2
from .types import TokenType, from_unix_ms

__all__ = [
    "AuthenticationFailed",
    "TokenRefreshed",
    "AuthenticationDegraded",
    "AuthenticationRecovered",
    "Event",
    "EVENT_TYPES",
    "decode_event",
    "encode_event",
    "topic_filters",
]


@dataclass(frozen=True)
class AuthenticationFailed:
    """No token could be given: retries exhausted and no valid token left.

    The seed's event: subscribers use it to shut down gracefully.
    """

    TOPIC: ClassVar[str] = "leanauth.v1.AuthenticationFailed"
    profile: str
    brokerage: str
    account_id: str
    #: The upstream's message (redacted by leanauthd).
    error: str
    #: Upstream calls made.
    attempts: int
    at: _dt.datetime


@dataclass(frozen=True)
class TokenRefreshed:
    """A refresh succeeded (the token itself is never published)."""

    TOPIC: ClassVar[str] = "leanauth.v1.TokenRefreshed"
    profile: str
    token_type: TokenType
    expires_at: _dt.datetime
    at: _dt.datetime
    generation: int


@dataclass(frozen=True)
class AuthenticationDegraded:
    """A background refresh gave up, but the cached token is still served."""

    TOPIC: ClassVar[str] = "leanauth.v1.AuthenticationDegraded"
    profile: str
    error: str
    attempts: int
    token_valid_until: _dt.datetime
    at: _dt.datetime


@dataclass(frozen=True)
class AuthenticationRecovered:
    """A refresh succeeded after AuthenticationDegraded."""

    TOPIC: ClassVar[str] = "leanauth.v1.AuthenticationRecovered"
    profile: str
    at: _dt.datetime


#: Any event the client decodes.
Event = Union[AuthenticationFailed, TokenRefreshed, AuthenticationDegraded, AuthenticationRecovered]

#: Every event type, by topic.
EVENT_TYPES: Dict[str, type] = {
    cls.TOPIC: cls
    for cls in (AuthenticationFailed, TokenRefreshed, AuthenticationDegraded, AuthenticationRecovered)
}


def decode_event(data: bytes) -> Optional[Event]:
    """Decode one PUB message. Returns None for topics this version does not
    know (a newer server's events) and for malformed messages, which
    subscribers skip."""
    topic, nul, payload = bytes(data).partition(b"\0")
    if not nul:
        return None
    try:
        name = topic.decode("ascii")
    except UnicodeDecodeError:
        return None
    try:
        if name == AuthenticationFailed.TOPIC:
            m = events_pb2.AuthenticationFailed.FromString(payload)
            return AuthenticationFailed(
                profile=m.profile,
                brokerage=m.brokerage,
                account_id=m.account_id,
                error=m.error,
                attempts=m.attempts,
                at=from_unix_ms(m.at_unix_ms),
            )
        if name == TokenRefreshed.TOPIC:
            r = events_pb2.TokenRefreshed.FromString(payload)
            return TokenRefreshed(
                profile=r.profile,
                token_type=TokenType.from_proto(r.token_type),
                expires_at=from_unix_ms(r.expires_at_unix_ms),
                at=from_unix_ms(r.at_unix_ms),
                generation=r.generation,
            )
        if name == AuthenticationDegraded.TOPIC:
            d = events_pb2.AuthenticationDegraded.FromString(payload)
            return AuthenticationDegraded(
                profile=d.profile,
                error=d.error,
                attempts=d.attempts,
                token_valid_until=from_unix_ms(d.token_valid_until_unix_ms),
                at=from_unix_ms(d.at_unix_ms),
            )
        if name == AuthenticationRecovered.TOPIC:
            v = events_pb2.AuthenticationRecovered.FromString(payload)
            return AuthenticationRecovered(profile=v.profile, at=from_unix_ms(v.at_unix_ms))
    except Exception:  # google.protobuf.message.DecodeError and kin
        return None
    return None


def _unix_ms(t: _dt.datetime) -> int:
    delta = t - from_unix_ms(0)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def encode_event(ev: Event) -> bytes:
    """Encode an event as leanauthd publishes it (topic, NUL, protobuf).

    For tests and tools that stand in for leanauthd.
    """
    msg: Any
    if isinstance(ev, AuthenticationFailed):
        msg = events_pb2.AuthenticationFailed(
            profile=ev.profile,
            brokerage=ev.brokerage,
            account_id=ev.account_id,
            error=ev.error,
            attempts=ev.attempts,
            at_unix_ms=_unix_ms(ev.at),
        )
    elif isinstance(ev, TokenRefreshed):
        msg = events_pb2.TokenRefreshed(
            profile=ev.profile,
            token_type=ev.token_type.to_proto(),  # type: ignore[arg-type]
            expires_at_unix_ms=_unix_ms(ev.expires_at),
            at_unix_ms=_unix_ms(ev.at),
            generation=ev.generation,
        )
    elif isinstance(ev, AuthenticationDegraded):
        msg = events_pb2.AuthenticationDegraded(
            profile=ev.profile,
            error=ev.error,
            attempts=ev.attempts,
            token_valid_until_unix_ms=_unix_ms(ev.token_valid_until),
            at_unix_ms=_unix_ms(ev.at),
        )
    elif isinstance(ev, AuthenticationRecovered):
        msg = events_pb2.AuthenticationRecovered(profile=ev.profile, at_unix_ms=_unix_ms(ev.at))
    else:
        raise TypeError(f"not a leanauth event: {type(ev).__name__}")
    payload: bytes = msg.SerializeToString()
    return ev.TOPIC.encode("ascii") + b"\0" + payload


TopicSpec = Union[str, bytes, Type[Event]]


def topic_filters(topics: Optional[Iterable[TopicSpec]]) -> List[bytes]:
    """The SUB filters for ``topics``: None (or empty) subscribes to every event.

    An empty list is an error. Each topic may be an event class (``AuthenticationFailed``), its short
    name (``"AuthenticationFailed"``) or its full name
    (``"leanauth.v1.AuthenticationFailed"``); names outside this version's
    events are allowed (a newer server's), but such events are skipped.
    Each filter is the topic plus its NUL, so it matches exactly.
    """
    if topics is None:
        return [b""]
    if isinstance(topics, (str, bytes, type)):
        topics = [topics]  # a single topic given bare
    out: List[bytes] = []
    for t in topics:
        if isinstance(t, type):
            name = getattr(t, "TOPIC", None)
            if not isinstance(name, str):
                raise TypeError(f"{t.__name__} is not a leanauth event type")
        elif isinstance(t, bytes):
            name = t.decode("ascii")
        elif isinstance(t, str):
            name = t
        else:
            raise TypeError(f"topic must be an event type or a name, not {type(t).__name__}")
        if not name or "\0" in name:
            raise ValueError(f"bad topic {name!r}")
        if "." not in name:
            name = "leanauth.v1." + name
        f = name.encode("ascii") + b"\0"
        if f not in out:
            out.append(f)
    if not out:
        raise ValueError("no topics given (pass None to subscribe to every event)")
    return out
