"""client -- the blocking leanauth client and its event subscription.

One ``Client`` is one nng REQ socket; every call opens its own nng context on
it, so any number of threads can call one client at once (no shared context,
no lock around calls). Subscriptions use their own SUB socket.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import pynng

from . import _wire
from .errors import Cancelled, DeadlineExceeded, LeanAuthError, Unavailable
from .events import Event, TopicSpec, decode_event, topic_filters
from .types import Response, TLSConfig, Token

__all__ = ["Client", "Subscription", "HeadersArg", "BodyArg"]

#: Headers for ``send()``: a mapping, or a sequence of (name, value) pairs
#: (for repeated names).
HeadersArg = Optional[Union[Mapping[str, str], Sequence[Tuple[str, str]]]]
#: A request body: bytes, or str (sent as UTF-8).
BodyArg = Union[bytes, bytearray, memoryview, str, None]


class Client:
    """A blocking client of leanauthd.

    ``Client(url)`` returns at once; nng connects (and reconnects) in the
    background, and a call made before the connection is up waits for it
    within its timeout (then raises :class:`~leanauth.Unavailable`).

    ``timeout`` (seconds) is the default deadline of each call; it is sent
    to leanauthd, which answers DEADLINE_EXCEEDED when it runs out. The
    client waits one more second for that answer before giving up on its
    own. nng's REQ protocol would resend unanswered requests; each call's
    nng context gets a resend time past that whole wait, so the resend
    timer never fires, and a ``send()``'s context has resending disabled
    altogether, so it reaches leanauthd (and the brokerage) at most once,
    even across a broken connection. Token and health calls, which are
    idempotent, are re-sent by nng after a broken connection.

    Use it as a context manager, or call :meth:`close`. Thread-safe.
    """

    def __init__(
        self,
        url: str = _wire.DEFAULT_URL,
        *,
        timeout: float = _wire.DEFAULT_TIMEOUT,
        tls: Optional[TLSConfig] = None,
        events_url: str = _wire.DEFAULT_EVENTS_URL,
        max_reply_bytes: int = _wire.DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        """
        Args:
            url: leanauthd's RPC address (``listen.rpc``): ``tcp://host:port``,
                ``tls+tcp://host:port`` (needs ``tls``), ``ipc:///path``.
            timeout: default deadline of each call, in seconds.
            tls: TLS options for ``tls+tcp://`` URLs (also used by
                :meth:`subscribe` for a ``tls+tcp://`` events URL).
            events_url: leanauthd's events address (``listen.events``),
                the default for :meth:`subscribe`.
            max_reply_bytes: the largest reply accepted (nng drops larger
                ones, which then time out).
        """
        self._timeout = _wire.check_timeout(timeout)
        self._url = url
        self._events_url = events_url
        self._tls, tls_config = _wire.tls_for(url, tls)
        self._max_reply = int(max_reply_bytes)
        self._closed = False
        self._lock = threading.Lock()  # guards _closed only; calls never take it
        self._sock = pynng.Req0(recv_max_size=self._max_reply)
        try:
            if tls_config is not None:
                self._sock.tls_config = tls_config
            self._tls_config = tls_config  # nng holds its own reference too
            _wire.dial(self._sock, url)
        except BaseException:
            self._sock.close()
            raise

    # -- lifecycle

    @property
    def url(self) -> str:
        """The RPC URL this client dials."""
        return self._url

    @property
    def events_url(self) -> str:
        """The default events URL for :meth:`subscribe`."""
        return self._events_url

    @property
    def connected(self) -> bool:
        """Whether a connection to leanauthd is up right now."""
        return not self._closed and bool(self._sock.pipes)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the socket. Calls in flight raise :class:`~leanauth.Cancelled`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "connecting")
        return f"<leanauth.Client {self._url} {state}>"

    # -- calls

    def _call(self, method: str, payload: bytes, timeout: Optional[float], request_id: Optional[str]) -> bytes:
        """One exchange: envelope out, payload of an OK reply back."""
        ex = _wire.Exchange(
            self._timeout if timeout is None else _wire.check_timeout(timeout),
            idempotent=method in _wire.IDEMPOTENT_METHODS,
        )
        data = _wire.encode_request(method, payload, ex.timeout_ms, request_id)
        if self._closed:
            raise Cancelled("the client is closed")
        try:
            ctx = ex.open_context(self._sock)
        except pynng.NNGException as e:
            raise _wire.transport_error(e, "open", self._url, ex, self.connected, self._closed) from None
        try:
            phase = "send"
            try:
                ctx.send(data)
                phase = "recv"
                ex.arm_receive(ctx)
                reply = ctx.recv()
            except pynng.NNGException as e:
                raise _wire.transport_error(e, phase, self._url, ex, self.connected, self._closed) from None
        finally:
            _wire.close_context(ctx)
        return _wire.decode_reply(reply)

    def get_access_token(
        self,
        profile: str = "",
        force_refresh: bool = False,
        if_generation: Optional[int] = None,
        *,
        timeout: Optional[float] = None,
        request_id: Optional[str] = None,
    ) -> Token:
        """Get the profile's current access token.

        Args:
            profile: a configured profile name; "" is the first profile.
            force_refresh: "the token I have is bad": leanauthd drops it and
                fetches a new one.
            if_generation: with ``force_refresh``, refresh only while the
                cached token is still this generation (pass the bad token's
                ``generation``), so many callers that saw the same bad token
                cause one refresh.
            timeout: this call's deadline in seconds (default: the client's).
            request_id: logged by leanauthd with every line about the call.

        Raises:
            NotFound: no such profile.
            Unauthenticated: the Lean API refused to issue a token.
            Unavailable: the Lean API (or leanauthd) could not be reached.
            DeadlineExceeded: no token within the timeout.
        """
        payload = _wire.token_request(profile, force_refresh, if_generation)
        return _wire.token_reply(self._call(_wire.METHOD_GET_ACCESS_TOKEN, payload, timeout, request_id))

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: HeadersArg = None,
        body: BodyArg = b"",
        profile: str = "",
        timeout: Optional[float] = None,
        request_id: Optional[str] = None,
    ) -> Response:
        """Have leanauthd make an HTTP call with the profile's token attached.

        leanauthd sets ``Authorization: <type> <token>`` (replacing any
        given), refreshes the token and retries once on a 401, and does not
        follow redirects. Whatever HTTP status the upstream answers comes
        back in ``Response.status_code``; an exception means the call itself
        failed.

        Args:
            method: GET, HEAD, POST, PUT, PATCH or DELETE.
            url: must lie under one of the profile's ``send.allowed_urls``.
            headers: a mapping or a sequence of (name, value) pairs.
            body: bytes, or str (sent as UTF-8).
            profile: a configured profile name; "" is the first profile.
            timeout: this call's deadline in seconds; also caps the upstream
                call (default: the client's deadline, and the profile's
                ``send.timeout_ms`` for the upstream call).
            request_id: logged by leanauthd with every line about the call.

        Raises:
            PermissionDenied: the URL is not allowed; nothing was sent.
            InvalidArgument: a bad method, URL or header.
            ResourceExhausted: the request or the upstream's reply is too big.
            Unavailable: the upstream could not be reached.
            DeadlineExceeded: no answer within the timeout.
        """
        payload = _wire.send_request(method, url, headers, body, profile, timeout)
        return _wire.send_reply(self._call(_wire.METHOD_SEND, payload, timeout, request_id))

    def health(self, profile: str = "", *, timeout: Optional[float] = None, request_id: Optional[str] = None) -> bool:
        """Whether leanauthd (or one profile, if named) is SERVING.

        Raises NotFound for an unknown profile and Unavailable when leanauthd
        cannot be reached (its health is then unknown, not "not serving").
        """
        payload = _wire.health_request(profile)
        return _wire.health_reply(self._call(_wire.METHOD_HEALTH_CHECK, payload, timeout, request_id))

    def subscribe(
        self,
        topics: Optional[Iterable[TopicSpec]] = None,
        *,
        url: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> "Subscription":
        """Subscribe to leanauthd's events.

        Args:
            topics: event types (``AuthenticationFailed``) or names
                (``"AuthenticationFailed"``); None for every event.
            url: the events URL (default: the client's ``events_url``).
            timeout: how long iteration waits for each event before raising
                DeadlineExceeded; None waits indefinitely.

        Returns a :class:`Subscription`: iterate it for events; close it (or
        use it as a context manager) to stop.
        """
        return Subscription(
            url or self._events_url, topics, timeout=timeout, tls=self._tls, max_message_bytes=self._max_reply
        )


class _End:
    """Marks the end of a subscription's queue."""


_END = _End()


class _Failure:
    def __init__(self, error: LeanAuthError) -> None:
        self.error = error


class Subscription:
    """Events from leanauthd, as an iterator of typed event objects.

    A background thread receives from the SUB socket into a queue; iteration
    takes from the queue. Unknown or malformed messages are skipped.
    Iteration ends (StopIteration) once :meth:`close` is called, from any
    thread or from a signal handler: ``close()`` only sets a flag, puts a
    marker into a reentrant queue and closes the socket, so a program
    blocked in ``for event in sub`` wakes up at once on SIGTERM if its
    handler calls ``sub.close()``.

    Events published while no connection is up are lost (nng PUB/SUB):
    :meth:`wait_connected` before relying on a subscription.
    """

    #: Events kept for a slow consumer; later ones are dropped (and counted).
    MAX_PENDING = 10_000

    def __init__(
        self,
        url: str = _wire.DEFAULT_EVENTS_URL,
        topics: Optional[Iterable[TopicSpec]] = None,
        *,
        timeout: Optional[float] = None,
        tls: Optional[TLSConfig] = None,
        max_message_bytes: int = _wire.DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._filters = topic_filters(topics)
        self._timeout = None if timeout is None else _wire.check_timeout(timeout)
        self._url = url
        _, tls_config = _wire.tls_for(url, tls)
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._closed = False
        self._dropped = 0
        self._connected = threading.Event()
        self._pipes: Set[int] = set()
        self._sock = pynng.Sub0(recv_max_size=int(max_message_bytes))
        try:
            if tls_config is not None:
                self._sock.tls_config = tls_config
            self._tls_config = tls_config
            self._sock.add_post_pipe_connect_cb(self._on_pipe_added)
            self._sock.add_post_pipe_remove_cb(self._on_pipe_removed)
            for f in self._filters:
                self._sock.subscribe(f)
            _wire.dial(self._sock, url)
        except BaseException:
            self._sock.close()
            raise
        self._reader = threading.Thread(target=self._read, name="leanauth-events", daemon=True)
        self._reader.start()

    # pynng runs pipe callbacks one at a time (under the socket's lock).
    def _on_pipe_added(self, pipe: Any) -> None:
        self._pipes.add(pipe.id)
        self._connected.set()

    def _on_pipe_removed(self, pipe: Any) -> None:
        self._pipes.discard(pipe.id)
        if not self._pipes:
            self._connected.clear()

    def _read(self) -> None:
        """Reader thread: socket -> queue, until the socket is closed."""
        while True:
            try:
                data = self._sock.recv()
            except pynng.Closed:
                break
            except pynng.NNGException as e:  # not expected from SUB; end visibly
                self._queue.put(_Failure(Unavailable(f"events at {self._url}: {e}")))
                break
            ev = decode_event(data)
            if ev is None:
                continue
            if self._queue.qsize() >= self.MAX_PENDING:
                self._dropped += 1
                continue
            self._queue.put(ev)
        self._queue.put(_END)

    @property
    def url(self) -> str:
        return self._url

    @property
    def topics(self) -> List[bytes]:
        """The SUB filters in use (topic + NUL, or b"" for every event)."""
        return list(self._filters)

    @property
    def dropped(self) -> int:
        """Events dropped because MAX_PENDING were waiting unread."""
        return self._dropped

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Block until connected to the publisher (True) or timeout (False)."""
        return self._connected.wait(timeout) and not self._closed

    def get(self, timeout: Optional[float] = None) -> Event:
        """The next event.

        Args:
            timeout: seconds to wait; None: the subscription's timeout
                (which may be None: wait indefinitely).

        Raises:
            DeadlineExceeded: no event in time.
            Cancelled: the subscription is closed.
        """
        if self._closed:
            raise Cancelled("the subscription is closed")
        wait = self._timeout if timeout is None else _wire.check_timeout(timeout)
        try:
            item = self._queue.get(timeout=wait)
        except queue.Empty:
            raise DeadlineExceeded(f"no event within {wait:g} s") from None
        if isinstance(item, _End) or self._closed:
            self._queue.put(_END)  # every later get() ends too
            raise Cancelled("the subscription is closed")
        if isinstance(item, _Failure):
            self._queue.put(_END)
            raise item.error
        return item  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        try:
            return self.get()
        except Cancelled:
            raise StopIteration from None

    def close(self) -> None:
        """Stop: iteration ends, the socket is closed. Idempotent; safe from
        other threads and from signal handlers."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_END)
        self._sock.close()
        # Wait for the reader to leave nng (it does at once once the socket
        # is closed): a thread still inside nng_recv when the interpreter
        # exits and pynng tears nng down makes nng abort the process.
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5.0)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        names = [f.rstrip(b"\0").decode("ascii") or "*" for f in self._filters]
        return f"<leanauth.Subscription {self._url} topics={names}>"
