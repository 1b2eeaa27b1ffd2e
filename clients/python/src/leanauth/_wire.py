"""_wire -- the RpcRequest/RpcResponse envelope and each method's messages.

Shared by Client and AsyncClient: everything here is pure (no I/O), so the
two clients differ only in how they move bytes. The per-call nng context
setup lives here too, because the resend rule must hold for both.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Tuple

import pynng
from google.protobuf.message import DecodeError

from ._proto.leanauth.v1 import health_pb2, rpc_pb2, token_pb2
from .errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    LeanAuthError,
    Unavailable,
    error_for,
)
from .types import Response, Token, TokenType, from_unix_ms, headers_list

METHOD_GET_ACCESS_TOKEN = "leanauth.v1.TokenService/GetAccessToken"
METHOD_SEND = "leanauth.v1.TokenService/Send"
METHOD_HEALTH_CHECK = "leanauth.v1.Health/Check"
#: Methods that may safely run twice (nng may re-send them after a broken
#: connection); everything else is sent exactly once.
IDEMPOTENT_METHODS = frozenset({METHOD_GET_ACCESS_TOKEN, METHOD_HEALTH_CHECK})

DEFAULT_URL = "tcp://127.0.0.1:7450"
DEFAULT_EVENTS_URL = "tcp://127.0.0.1:7451"
DEFAULT_TIMEOUT = 10.0
#: Replies can carry a Send body (send.max_body_bytes, 8 MiB by default) and
#: nng silently drops messages over its receive cap (1 MiB in pynng), which
#: would look like a timeout; so the client accepts up to this.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024

#: How long past its deadline a call waits for leanauthd's own answer (for a
#: call that ran out of time that is DEADLINE_EXCEEDED, sent at the
#: deadline, with leanauthd's message).
REPLY_GRACE_MS = 1000
#: nng's REQ protocol resends an unanswered request after its resend time
#: (60 s by default), and at once on another connection when the one it was
#: sent on breaks. GetAccessToken and Health calls are idempotent: their
#: contexts get a resend time this much past the call's whole wait, so the
#: timer never fires within the call, but a call whose connection broke
#: (leanauthd restarted) is re-sent on the next one. A Send is not
#: idempotent: its context's resend is disabled altogether, so it is sent
#: exactly once; if its connection breaks, the call fails with Unavailable
#: (it may or may not have reached the brokerage) instead of being re-sent.
RESEND_MARGIN_MS = 60_000
#: nng's "infinite" duration: no resend, not even after a broken connection.
RESEND_NEVER = -1
# nng durations are int32 milliseconds: the longest timeout that still
# leaves room for the grace and the resend margin.
_MAX_TIMEOUT_MS = 2**31 - 1 - REPLY_GRACE_MS - RESEND_MARGIN_MS - 1


def check_timeout(timeout: float, what: str = "timeout") -> float:
    """Validate a timeout in seconds (positive, finite, within nng's range)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgument(f"{what} must be a number of seconds, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InvalidArgument(f"{what} must be positive and finite, not {timeout!r}")
    if timeout * 1000 > _MAX_TIMEOUT_MS:
        raise InvalidArgument(f"{what} must be at most {_MAX_TIMEOUT_MS // 1000} s")
    return float(timeout)


def _ms(seconds: float) -> int:
    return max(1, int(math.ceil(seconds * 1000)))


def _set_ms(ctx: pynng.Context, name: bytes, ms: int) -> None:
    rv = pynng.lib.nng_ctx_set_ms(ctx.context, name, int(ms))
    pynng.check_err(rv)


class Exchange:
    """One call's deadline, and the nng context options that follow from it.

    ``timeout_ms`` goes to leanauthd in the envelope; the client waits
    ``timeout_ms + REPLY_GRACE_MS`` in all; the context's resend time is
    ``RESEND_MARGIN_MS`` past that for idempotent calls, and RESEND_NEVER
    for the others (Send).
    """

    def __init__(self, timeout: float, idempotent: bool) -> None:
        self.timeout = timeout
        self.timeout_ms = _ms(timeout)
        self.wait_ms = self.timeout_ms + REPLY_GRACE_MS
        self.resend_ms = self.wait_ms + RESEND_MARGIN_MS if idempotent else RESEND_NEVER
        self.until = time.monotonic() + self.wait_ms / 1000.0

    def open_context(self, sock: pynng.Req0) -> pynng.Context:
        """A fresh context on sock, set up for sending this call.

        Raises pynng.Closed if the socket was closed.
        """
        ctx = sock.new_context()
        try:
            _set_ms(ctx, b"req:resend-time", self.resend_ms)
            _set_ms(ctx, b"send-timeout", self.wait_ms)
        except BaseException:
            close_context(ctx)
            raise
        return ctx

    def arm_receive(self, ctx: pynng.Context) -> None:
        """Give the context's receive what is left of the wait."""
        left = int((self.until - time.monotonic()) * 1000)
        _set_ms(ctx, b"recv-timeout", max(1, left))


def close_context(ctx: pynng.Context) -> None:
    """Close a context, ignoring a socket that is already closed."""
    try:
        ctx.close()
    except pynng.NNGException:
        pass


def transport_error(
    exc: BaseException, phase: str, url: str, ex: Exchange, connected: bool, closed: bool
) -> LeanAuthError:
    """Map an nng failure of one exchange to the client's status codes."""
    if closed or isinstance(exc, pynng.Closed):
        return Cancelled("the client is closed")
    if phase == "send":
        # REQ waits for a connection to send on: none came up in time.
        return Unavailable(f"not connected to leanauthd at {url} (waited {ex.wait_ms / 1000:g} s)")
    if isinstance(exc, pynng.ConnectionReset):
        # Only calls that are never re-sent (Send) see this.
        return Unavailable(
            f"the connection to leanauthd at {url} broke during the call; "
            "it was not re-sent and may or may not have been carried out")
    if not connected:
        return Unavailable(f"lost the connection to leanauthd at {url}")
    if isinstance(exc, pynng.Timeout):
        return DeadlineExceeded(f"no reply from leanauthd within {ex.timeout:g} s")
    return Unavailable(f"leanauthd at {url}: {exc}")


def encode_request(method: str, payload: bytes, timeout_ms: int, request_id: Optional[str]) -> bytes:
    """The RpcRequest envelope for one call."""
    env = rpc_pb2.RpcRequest(method=method, payload=payload, timeout_ms=timeout_ms)
    if request_id:
        env.metadata["request-id"] = request_id
    out: bytes = env.SerializeToString()
    return out


def decode_reply(data: bytes) -> bytes:
    """The payload of an OK RpcResponse; a non-OK status raises its exception."""
    try:
        resp = rpc_pb2.RpcResponse.FromString(data)
    except DecodeError:
        raise Internal("malformed reply from leanauthd") from None
    if resp.status.code != rpc_pb2.OK:
        raise error_for(resp.status.code, resp.status.message)
    payload: bytes = resp.payload
    return payload


def _decode(cls: Any, payload: bytes) -> Any:
    try:
        return cls.FromString(payload)
    except DecodeError:
        raise Internal(f"malformed {cls.DESCRIPTOR.name} from leanauthd") from None


def token_request(profile: str, force_refresh: bool, if_generation: Optional[int]) -> bytes:
    """GetAccessTokenRequest; if_generation is only meaningful with force_refresh."""
    if not isinstance(profile, str):
        raise InvalidArgument("profile must be a str")
    if if_generation is not None:
        if not force_refresh:
            raise InvalidArgument("if_generation applies only with force_refresh=True")
        if isinstance(if_generation, bool) or not isinstance(if_generation, int) or not 0 <= if_generation < 2**64:
            raise InvalidArgument("if_generation must be an int in [0, 2**64)")
    out: bytes = token_pb2.GetAccessTokenRequest(
        profile=profile, force_refresh=bool(force_refresh), if_generation=if_generation or 0
    ).SerializeToString()
    return out


def token_reply(payload: bytes) -> Token:
    r = _decode(token_pb2.GetAccessTokenResponse, payload)
    return Token(
        token_type=TokenType.from_proto(r.token_type),
        access_token=r.access_token,
        expires_at=from_unix_ms(r.expires_at_unix_ms),
        generation=r.generation,
    )


def send_request(
    method: str, url: str, headers: Any, body: Any, profile: str, timeout: Optional[float]
) -> bytes:
    """SendRequest. timeout (if given) also bounds the upstream call itself;
    otherwise the profile's send.timeout_ms applies, within the call's deadline."""
    if not isinstance(method, str) or not method:
        raise InvalidArgument("method must be a non-empty str")
    if not isinstance(url, str) or not url:
        raise InvalidArgument("url must be a non-empty str")
    if not isinstance(profile, str):
        raise InvalidArgument("profile must be a str")
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise InvalidArgument(f"body must be bytes or str, not {type(body).__name__}")
    try:
        pairs = headers_list(headers)
    except TypeError as e:
        raise InvalidArgument(str(e)) from None
    req = token_pb2.SendRequest(
        profile=profile,
        method=method.upper(),
        url=url,
        headers=[token_pb2.Header(name=n, value=v) for n, v in pairs],
        body=body,
        timeout_ms=_ms(timeout) if timeout is not None else 0,
    )
    out: bytes = req.SerializeToString()
    return out


def send_reply(payload: bytes) -> Response:
    r = _decode(token_pb2.SendResponse, payload)
    return Response(
        status_code=r.status_code,
        headers=[(h.name, h.value) for h in r.headers],
        body=bytes(r.body),
    )


def health_request(profile: str) -> bytes:
    if not isinstance(profile, str):
        raise InvalidArgument("profile must be a str")
    out: bytes = health_pb2.HealthCheckRequest(profile=profile).SerializeToString()
    return out


def health_reply(payload: bytes) -> bool:
    r = _decode(health_pb2.HealthCheckResponse, payload)
    return bool(r.status == health_pb2.SERVING)


def tls_for(url: str, tls: Any) -> Tuple[Any, Any]:
    """(our TLSConfig, pynng TLSConfig or None) for dialing url."""
    if url.startswith("tls+"):
        if tls is None:
            raise InvalidArgument(f"{url} needs tls=TLSConfig(...) (ca_file to verify the server)")
        return tls, tls.to_pynng(url)
    return tls, None


def dial(sock: pynng.Socket, url: str) -> None:
    """Start dialing url in the background (nng reconnects by itself)."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidArgument(f"bad url {url!r}: expected e.g. tcp://127.0.0.1:7450")
    try:
        sock.dial(url, block=False)
    except pynng.NNGException as e:
        raise InvalidArgument(f"bad url {url!r}: {e}") from None
