"""The client's transport rules: connection state, deadlines, resend, closing."""

from __future__ import annotations

import threading
import time

import pynng
import pytest

import leanauth
from leanauth import _wire
from leanauth._proto.leanauth.v1 import rpc_pb2, token_pb2

from conftest import Env


def _free_tcp_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_not_connected_is_unavailable() -> None:
    with leanauth.Client("tcp://127.0.0.1:1", timeout=0.3) as c:
        assert not c.connected
        t0 = time.monotonic()
        with pytest.raises(leanauth.Unavailable) as ei:
            c.get_access_token()
        assert "not connected" in ei.value.message
        assert time.monotonic() - t0 < 3
        with pytest.raises(leanauth.Unavailable):
            c.health()


def test_bad_url_is_invalid_argument() -> None:
    with pytest.raises(leanauth.InvalidArgument):
        leanauth.Client("127.0.0.1:7450")
    with pytest.raises(leanauth.InvalidArgument):
        leanauth.Client("bogus://x")
    with pytest.raises(leanauth.InvalidArgument, match="tls"):
        leanauth.Client("tls+tcp://127.0.0.1:7450")
    with pytest.raises(leanauth.InvalidArgument):
        leanauth.Client(timeout=-1)


def test_a_client_made_before_the_server_connects_when_it_comes(env: Env) -> None:
    # Client first, leanauthd second, on a port picked in advance.
    url = _free_tcp_url()
    env.cfg["listen"]["rpc"] = url
    with leanauth.Client(url, timeout=10) as c:
        env.start()
        assert c.get_access_token().generation == 1
        assert c.connected


def test_closed_client_raises_cancelled(daemon: Env) -> None:
    c = leanauth.Client(daemon.rpc_url)
    assert c.health()
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(leanauth.Cancelled):
        c.get_access_token()
    assert "closed" in repr(c)


def test_close_cancels_a_call_in_flight(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()
    c = leanauth.Client(env.rpc_url)
    out: dict = {}

    def call() -> None:
        try:
            c.get_access_token(timeout=30)
        except leanauth.LeanAuthError as e:
            out["e"] = e

    th = threading.Thread(target=call)
    th.start()
    assert env.standin.lean_wait("hanging=1")
    c.close()
    th.join(5)
    assert not th.is_alive()
    assert isinstance(out.get("e"), leanauth.Cancelled), out
    env.standin.lean("_control/release", {})


def test_server_gone_mid_call_is_unavailable(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()
    c = env.client()
    out: dict = {}

    def call() -> None:
        try:
            c.get_access_token(timeout=1.5)
        except leanauth.LeanAuthError as e:
            out["e"] = e

    th = threading.Thread(target=call)
    th.start()
    assert env.standin.lean_wait("hanging=1")
    import signal

    env.stop(signal.SIGKILL)
    th.join(10)
    assert isinstance(out.get("e"), leanauth.Unavailable), out


def test_unknown_method_is_unimplemented(client: leanauth.Client) -> None:
    with pytest.raises(leanauth.Unimplemented) as ei:
        client._call("leanauth.v1.TokenService/Nope", b"", None, None)
    assert ei.value.code == 12
    assert "Nope" in ei.value.message


def test_garbage_payload_is_invalid_argument(client: leanauth.Client) -> None:
    with pytest.raises(leanauth.InvalidArgument):
        client._call(_wire.METHOD_GET_ACCESS_TOKEN, b"\x0a\xff", None, None)


class _FakeServer:
    """A raw REP socket that records requests and answers with reply(req)."""

    def __init__(self, reply=None) -> None:
        self.url = _free_tcp_url()
        self.sock = pynng.Rep0(listen=self.url)
        self.requests: list = []
        self.reply = reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data = self.sock.recv()
            except pynng.NNGException:
                return
            self.requests.append(rpc_pb2.RpcRequest.FromString(data))
            if self.reply is not None:
                self.sock.send(self.reply(self.requests[-1]))

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def test_resend_time_is_past_the_deadline() -> None:
    # Even with the socket's resend time at 50 ms, each call's context gets
    # one past its whole wait: a server that never answers sees one request.
    srv = _FakeServer(reply=None)
    try:
        with leanauth.Client(srv.url, timeout=0.5) as c:
            c._sock.resend_time = 50
            t0 = time.monotonic()
            with pytest.raises(leanauth.DeadlineExceeded):
                c.send("POST", "http://127.0.0.1:9/api/orders", body=b"once")
            took = time.monotonic() - t0
            # The call waits its deadline plus the grace for leanauthd's answer.
            assert 0.5 + leanauth.REPLY_GRACE_MS / 1000 - 0.05 <= took < 3, took
        assert len(srv.requests) == 1, f"request sent {len(srv.requests)} times"
        env = srv.requests[0]
        assert env.method == "leanauth.v1.TokenService/Send"
        assert env.timeout_ms == 500
        sreq = token_pb2.SendRequest.FromString(env.payload)
        assert (sreq.method, sreq.body, sreq.timeout_ms) == ("POST", b"once", 0)
    finally:
        srv.close()


def test_envelope_carries_deadline_and_request_id() -> None:
    def ok(req: rpc_pb2.RpcRequest) -> bytes:
        payload = token_pb2.GetAccessTokenResponse(
            token_type=token_pb2.TOKEN_TYPE_BEARER, access_token="t", expires_at_unix_ms=1_700_000_000_123,
            generation=9).SerializeToString()
        return rpc_pb2.RpcResponse(payload=payload).SerializeToString()

    srv = _FakeServer(reply=ok)
    try:
        with leanauth.Client(srv.url, timeout=2) as c:
            t = c.get_access_token("p", True, 8, timeout=1.25, request_id="rid-1")
            assert t.generation == 9
            assert t.expires_at.isoformat() == "2023-11-14T22:13:20.123000+00:00"
            t = c.get_access_token()
        first, second = srv.requests
        assert first.timeout_ms == 1250
        assert dict(first.metadata) == {"request-id": "rid-1"}
        req = token_pb2.GetAccessTokenRequest.FromString(first.payload)
        assert (req.profile, req.force_refresh, req.if_generation) == ("p", True, 8)
        assert second.timeout_ms == 2000
        assert dict(second.metadata) == {}
    finally:
        srv.close()


def test_malformed_reply_is_internal() -> None:
    srv = _FakeServer(reply=lambda req: b"\xff\xff\xff not protobuf")
    try:
        with leanauth.Client(srv.url, timeout=2) as c:
            with pytest.raises(leanauth.Internal):
                c.get_access_token()
    finally:
        srv.close()


def test_unknown_status_code_keeps_its_number() -> None:
    srv = _FakeServer(reply=lambda req: rpc_pb2.RpcResponse(
        status=rpc_pb2.Status(code=42, message="from the future")).SerializeToString())
    try:
        with leanauth.Client(srv.url, timeout=2) as c:
            with pytest.raises(leanauth.LeanAuthError) as ei:
                c.health()
        assert type(ei.value) is leanauth.LeanAuthError
        assert ei.value.code == 42
        assert ei.value.code_name == "CODE_42"
        assert str(ei.value) == "CODE_42: from the future"
    finally:
        srv.close()


def test_large_reply_is_received() -> None:
    # 8 MiB (send.max_body_bytes' default) is far past pynng's 1 MiB default.
    body = b"y" * (8 * 1024 * 1024)

    def big(req: rpc_pb2.RpcRequest) -> bytes:
        payload = token_pb2.SendResponse(status_code=200, body=body).SerializeToString()
        return rpc_pb2.RpcResponse(payload=payload).SerializeToString()

    srv = _FakeServer(reply=big)
    try:
        with leanauth.Client(srv.url, timeout=5) as c:
            r = c.send("GET", "http://127.0.0.1:9/api/big")
        assert r.body == body
    finally:
        srv.close()


def _restartable(env: Env) -> None:
    """leanauthd on a fixed port, so that a restarted one has the same URL."""
    env.cfg["listen"]["rpc"] = _free_tcp_url()
    env.start()


def test_send_is_not_resent_after_a_broken_connection(env: Env) -> None:
    _restartable(env)
    c = env.client()
    out: dict = {}

    def call() -> None:
        try:
            out["r"] = c.send("GET", env.allowed_url + "slow?ms=1000", timeout=15)
        except leanauth.LeanAuthError as e:
            out["e"] = e

    th = threading.Thread(target=call)
    th.start()
    assert env.standin.broker_wait("in_flight=1"), "the Send never reached the brokerage"
    import signal

    env.stop(signal.SIGKILL)
    th.join(10)
    assert not th.is_alive()
    assert isinstance(out.get("e"), leanauth.Unavailable), out
    assert "not re-sent" in out["e"].message
    # A new leanauthd on the same URL: the client reconnects, and the Send
    # is not carried out a second time.
    env.start()
    assert c.health(timeout=10)  # reconnected: a re-sent Send would be ahead of this
    # The stand-in counts a /slow request when it has slept: the first one
    # does; a second would within a second of the restart.
    assert env.standin.broker_wait("requests=1", timeout_ms=5000)
    assert not env.standin.broker_wait("requests=2", timeout_ms=1500)


def test_token_call_is_resent_after_a_broken_connection(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    _restartable(env)
    c = env.client()
    out: dict = {}

    def call() -> None:
        try:
            out["t"] = c.get_access_token(timeout=15)
        except leanauth.LeanAuthError as e:
            out["e"] = e

    th = threading.Thread(target=call)
    th.start()
    assert env.standin.lean_wait("hanging=1")
    import signal

    env.stop(signal.SIGKILL)
    env.start()  # idempotent: nng re-sends it to the new leanauthd
    th.join(20)
    assert not th.is_alive()
    assert "t" in out, out
    assert out["t"].generation == 1
    assert env.standin.lean_stat("refresh_calls") == 2
