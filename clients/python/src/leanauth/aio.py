"""aio -- the asyncio leanauth client: Client's methods as coroutines.

Uses pynng's async API (``asend``/``arecv`` on one fresh nng context per
call), so many calls run concurrently on one socket without threads.
Cancelling a call's task cancels its nng operations.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Iterable, List, Optional, Set

import pynng

from . import _wire
from .client import BodyArg, HeadersArg
from .errors import Cancelled, DeadlineExceeded, Unavailable
from .events import Event, TopicSpec, decode_event, topic_filters
from .types import Response, TLSConfig, Token

__all__ = ["AsyncClient", "AsyncSubscription"]


class AsyncClient:
    """An asyncio client of leanauthd; same arguments and methods as
    :class:`~leanauth.Client`, as coroutines.

    ``async with AsyncClient(url) as c: token = await c.get_access_token()``.
    The same resend rules hold: no call is re-sent by nng's resend timer,
    and a ``send()`` is never re-sent at all.
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
        self._timeout = _wire.check_timeout(timeout)
        self._url = url
        self._events_url = events_url
        self._tls, tls_config = _wire.tls_for(url, tls)
        self._max_reply = int(max_reply_bytes)
        self._closed = False
        self._sock = pynng.Req0(recv_max_size=self._max_reply, async_backend="asyncio")
        try:
            if tls_config is not None:
                self._sock.tls_config = tls_config
            self._tls_config = tls_config
            _wire.dial(self._sock, url)
        except BaseException:
            self._sock.close()
            raise

    @property
    def url(self) -> str:
        return self._url

    @property
    def events_url(self) -> str:
        return self._events_url

    @property
    def connected(self) -> bool:
        return not self._closed and bool(self._sock.pipes)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the socket; calls in flight raise Cancelled. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()

    async def aclose(self) -> None:
        """``close()``, as a coroutine."""
        self.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "connecting")
        return f"<leanauth.AsyncClient {self._url} {state}>"

    async def _call(self, method: str, payload: bytes, timeout: Optional[float], request_id: Optional[str]) -> bytes:
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
                await ctx.asend(data)
                phase = "recv"
                ex.arm_receive(ctx)
                reply = await ctx.arecv()
            except pynng.NNGException as e:
                raise _wire.transport_error(e, phase, self._url, ex, self.connected, self._closed) from None
        finally:
            _wire.close_context(ctx)
        return _wire.decode_reply(reply)

    async def get_access_token(
        self,
        profile: str = "",
        force_refresh: bool = False,
        if_generation: Optional[int] = None,
        *,
        timeout: Optional[float] = None,
        request_id: Optional[str] = None,
    ) -> Token:
        """See :meth:`leanauth.Client.get_access_token`."""
        payload = _wire.token_request(profile, force_refresh, if_generation)
        return _wire.token_reply(await self._call(_wire.METHOD_GET_ACCESS_TOKEN, payload, timeout, request_id))

    async def send(
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
        """See :meth:`leanauth.Client.send`."""
        payload = _wire.send_request(method, url, headers, body, profile, timeout)
        return _wire.send_reply(await self._call(_wire.METHOD_SEND, payload, timeout, request_id))

    async def health(
        self, profile: str = "", *, timeout: Optional[float] = None, request_id: Optional[str] = None
    ) -> bool:
        """See :meth:`leanauth.Client.health`."""
        payload = _wire.health_request(profile)
        return _wire.health_reply(await self._call(_wire.METHOD_HEALTH_CHECK, payload, timeout, request_id))

    def subscribe(
        self,
        topics: Optional[Iterable[TopicSpec]] = None,
        *,
        url: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> "AsyncSubscription":
        """Subscribe to events: ``async with c.subscribe([AuthenticationFailed]) as sub:
        async for ev in sub: ...``. Arguments as :meth:`leanauth.Client.subscribe`."""
        return AsyncSubscription(
            url or self._events_url, topics, timeout=timeout, tls=self._tls, max_message_bytes=self._max_reply
        )


class AsyncSubscription:
    """Events from leanauthd for ``async for``; ends once :meth:`close` is called.

    Unknown or malformed messages are skipped. Events published while no
    connection is up are lost: ``await sub.wait_connected()`` first.
    """

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
        self._closed = False
        self._connected = threading.Event()  # set from nng's threads
        self._pipes: Set[int] = set()
        self._lock = threading.Lock()  # guards _waiters against the pipe callback
        self._waiters: List[Any] = []
        self._sock = pynng.Sub0(recv_max_size=int(max_message_bytes), async_backend="asyncio")
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

    # pynng runs pipe callbacks on nng's threads, one at a time.
    def _on_pipe_added(self, pipe: Any) -> None:
        self._pipes.add(pipe.id)
        with self._lock:
            self._connected.set()
            waiters, self._waiters = self._waiters, []
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake)
            except RuntimeError:  # that loop is closed
                pass

    def _on_pipe_removed(self, pipe: Any) -> None:
        self._pipes.discard(pipe.id)
        if not self._pipes:
            self._connected.clear()

    @property
    def url(self) -> str:
        return self._url

    @property
    def topics(self) -> List[bytes]:
        return list(self._filters)

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Wait until connected to the publisher (True) or timeout (False)."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[bool]" = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(True)

        entry = (loop, wake)
        with self._lock:
            if self._connected.is_set():
                return not self._closed
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return not self._closed

    async def get(self, timeout: Optional[float] = None) -> Event:
        """The next event; DeadlineExceeded after timeout (default: the
        subscription's, None: wait indefinitely), Cancelled once closed."""
        wait = self._timeout if timeout is None else _wire.check_timeout(timeout)
        while True:
            if self._closed:
                raise Cancelled("the subscription is closed")
            try:
                if wait is None:
                    data = await self._sock.arecv()
                else:
                    data = await asyncio.wait_for(self._sock.arecv(), wait)
            except asyncio.TimeoutError:
                raise DeadlineExceeded(f"no event within {wait:g} s") from None
            except pynng.Closed:
                raise Cancelled("the subscription is closed") from None
            except pynng.NNGException as e:
                raise Unavailable(f"events at {self._url}: {e}") from None
            ev = decode_event(data)
            if ev is not None:
                return ev

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except Cancelled:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop: a pending ``get()`` raises Cancelled, iteration ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        names = [f.rstrip(b"\0").decode("ascii") or "*" for f in self._filters]
        return f"<leanauth.AsyncSubscription {self._url} topics={names}>"
