"""types -- the values the client hands out: tokens, Send responses, TLS options.

All are plain dataclasses built from the generated protobuf messages; none
prints a secret in its ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["TokenType", "Token", "Response", "TLSConfig", "Header", "from_unix_ms"]

#: One HTTP header: (name, value).
Header = Tuple[str, str]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def from_unix_ms(ms: int) -> _dt.datetime:
    """Convert Unix milliseconds to an aware UTC datetime (exact, no float)."""
    return _EPOCH + _dt.timedelta(milliseconds=int(ms))


class TokenType(str, Enum):
    """The scheme of an access token, as used in ``Authorization: <scheme> <token>``.

    A ``str`` enum: ``TokenType.BEARER == "Bearer"``.
    """

    UNSPECIFIED = "Unspecified"
    BEARER = "Bearer"
    SESSION_TOKEN = "SessionToken"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_proto(cls, value: int) -> "TokenType":
        """Map the wire enum (``leanauth.v1.TokenType``); unknown values are UNSPECIFIED."""
        return _FROM_PROTO.get(int(value), cls.UNSPECIFIED)

    def to_proto(self) -> int:
        """The wire enum value."""
        return _TO_PROTO[self]


_FROM_PROTO = {0: TokenType.UNSPECIFIED, 1: TokenType.BEARER, 2: TokenType.SESSION_TOKEN}
_TO_PROTO = {v: k for k, v in _FROM_PROTO.items()}


@dataclass(frozen=True)
class Token:
    """A brokerage access token handed out by leanauthd.

    ``repr()`` never shows ``access_token``; neither must your logs.
    """

    #: Bearer or SessionToken.
    token_type: TokenType
    #: The secret itself.
    access_token: str = field(repr=False)
    #: When leanauthd stops handing it out (already minus the safety offset).
    expires_at: _dt.datetime
    #: The profile's count of successful refreshes when this token was issued;
    #: pass it as ``if_generation`` when the token turns out to be bad.
    generation: int

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value: ``"<type> <token>"``.

        An UNSPECIFIED type (which leanauthd does not send) is written as Bearer.
        """
        scheme = "SessionToken" if self.token_type is TokenType.SESSION_TOKEN else "Bearer"
        return f"{scheme} {self.access_token}"

    def expires_in(self, now: Optional[_dt.datetime] = None) -> _dt.timedelta:
        """Time left until ``expires_at`` (negative once expired)."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return self.expires_at - now


@dataclass(frozen=True)
class Response:
    """The upstream's answer to a ``send()``: whatever HTTP status it had.

    ``headers`` keeps every header in order, repeated names included
    (``Set-Cookie``); ``header()`` looks one up case-insensitively.
    """

    status_code: int
    headers: List[Header]
    body: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        """True for statuses below 400 (as ``requests.Response.ok``)."""
        return self.status_code < 400

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (any case), or ``default``."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return default

    def header_values(self, name: str) -> List[str]:
        """Every value of header ``name`` (any case), in order."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    @property
    def encoding(self) -> str:
        """The charset named by Content-Type, else utf-8."""
        ctype = self.header("content-type") or ""
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with ``encoding`` (undecodable bytes replaced)."""
        try:
            return self.body.decode(self.encoding, errors="replace")
        except LookupError:  # an unknown charset name
            return self.body.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (``json.loads`` keyword arguments pass through)."""
        return _json.loads(self.body, **kwargs)

    def __repr__(self) -> str:
        return f"Response(status_code={self.status_code}, headers={len(self.headers)}, body={len(self.body)} bytes)"


@dataclass(frozen=True)
class TLSConfig:
    """TLS options for ``tls+tcp://`` URLs (nng's TLS transport).

    ``ca_file`` (PEM) verifies the server; without it the server's
    certificate is not checked (only sensible on loopback). ``cert_file`` and
    ``key_file`` (PEM; may be the same file) present a client certificate,
    for servers with ``require_client_cert``. ``server_name`` is the name
    checked against the server's certificate (default: the URL's host).
    """

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None
    key_password: Optional[str] = field(default=None, repr=False)

    def to_pynng(self, url: str) -> Any:
        """Build the ``pynng.TLSConfig`` for dialing ``url``."""
        import pynng

        server_name = self.server_name or _url_host(url)
        kwargs: Dict[str, Any] = {"server_name": server_name or None}
        if self.ca_file:
            kwargs["ca_files"] = [self.ca_file]
            kwargs["auth_mode"] = pynng.TLSConfig.AUTH_MODE_REQUIRED
        else:
            kwargs["auth_mode"] = pynng.TLSConfig.AUTH_MODE_NONE
        if self.cert_file or self.key_file:
            if not (self.cert_file and self.key_file):
                raise ValueError("TLSConfig: cert_file and key_file go together")
            with open(self.cert_file, encoding="ascii") as f:
                cert = f.read()
            with open(self.key_file, encoding="ascii") as f:
                key = f.read()
            kwargs["own_cert_string"] = cert
            kwargs["own_key_string"] = key
            if self.key_password:
                kwargs["passwd"] = self.key_password
        return pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, **kwargs)


def _url_host(url: str) -> str:
    """The host of an nng URL (``tls+tcp://host:port``), without brackets."""
    rest = url.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def headers_list(headers: Any) -> List[Header]:
    """Normalise a headers argument (mapping or sequence of pairs) to a list of pairs."""
    if headers is None:
        return []
    items: Sequence[Any]
    if hasattr(headers, "items"):
        items = list(headers.items())
    else:
        items = list(headers)
    out: List[Header] = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("headers must be a mapping or a sequence of (name, value) pairs") from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        out.append((name, value))
    return out
