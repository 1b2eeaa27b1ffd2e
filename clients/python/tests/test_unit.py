"""Pure unit tests: the error table, value types, event decoding, topics."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest

import leanauth
from leanauth import errors, events
from leanauth._proto.leanauth.v1 import events_pb2, rpc_pb2

EXPECTED = {
    1: ("CANCELLED", leanauth.Cancelled),
    3: ("INVALID_ARGUMENT", leanauth.InvalidArgument),
    4: ("DEADLINE_EXCEEDED", leanauth.DeadlineExceeded),
    5: ("NOT_FOUND", leanauth.NotFound),
    7: ("PERMISSION_DENIED", leanauth.PermissionDenied),
    8: ("RESOURCE_EXHAUSTED", leanauth.ResourceExhausted),
    12: ("UNIMPLEMENTED", leanauth.Unimplemented),
    13: ("INTERNAL", leanauth.Internal),
    14: ("UNAVAILABLE", leanauth.Unavailable),
    16: ("UNAUTHENTICATED", leanauth.Unauthenticated),
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_error_table(code: int) -> None:
    name, cls = EXPECTED[code]
    e = leanauth.error_for(code, "detail")
    assert type(e) is cls
    assert isinstance(e, leanauth.LeanAuthError)
    assert (e.code, e.code_name, e.message) == (code, name, "detail")
    assert cls.CODE == code == getattr(rpc_pb2, name)
    assert str(e) == f"{name}: detail"
    assert cls("m").code == code
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls and (back.code, back.message) == (code, "detail")


def test_codes_without_a_class() -> None:
    e = leanauth.error_for(rpc_pb2.ABORTED, "x")
    assert type(e) is leanauth.LeanAuthError
    assert e.code_name == "ABORTED"
    assert leanauth.code_name(99) == "CODE_99"
    assert str(leanauth.LeanAuthError(2)) == "UNKNOWN"
    assert pickle.loads(pickle.dumps(e)).code == rpc_pb2.ABORTED


def test_token_type() -> None:
    T = leanauth.TokenType
    assert T.from_proto(1) is T.BEARER and T.from_proto(2) is T.SESSION_TOKEN
    assert T.from_proto(0) is T.UNSPECIFIED and T.from_proto(77) is T.UNSPECIFIED
    assert str(T.SESSION_TOKEN) == "SessionToken" and f"{T.BEARER}" == "Bearer"
    assert T.BEARER == "Bearer"
    assert T.SESSION_TOKEN.to_proto() == 2


def test_token_value() -> None:
    exp = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    t = leanauth.Token(leanauth.TokenType.SESSION_TOKEN, "s3cr3t-value", exp, 3)
    assert "s3cr3t" not in repr(t) and "s3cr3t" not in str(t)
    assert t.authorization == "SessionToken s3cr3t-value"
    assert leanauth.Token(leanauth.TokenType.UNSPECIFIED, "x", exp, 1).authorization == "Bearer x"
    with pytest.raises(Exception):
        t.generation = 4  # type: ignore[misc]  # frozen
    assert t.expires_in(exp - dt.timedelta(seconds=5)) == dt.timedelta(seconds=5)


def test_response_value() -> None:
    r = leanauth.Response(
        200, [("Content-Type", "text/plain; charset=latin-1"), ("Set-Cookie", "a"), ("set-cookie", "b")],
        "caf\u00e9".encode("latin-1"))
    assert r.ok and r.header("CONTENT-TYPE").startswith("text/plain")
    assert r.header_values("Set-Cookie") == ["a", "b"]
    assert r.encoding == "latin-1" and r.text == "caf\u00e9"
    assert leanauth.Response(404, [], b"").ok is False
    assert leanauth.Response(200, [], b'{"a": [1]}').json() == {"a": [1]}
    assert leanauth.Response(200, [("content-type", "x; charset=bogus")], b"ok").text == "ok"
    assert "caf" not in repr(r)


def test_unix_ms_conversion_is_exact() -> None:
    t = leanauth.types.from_unix_ms(1796400000123)
    assert t.tzinfo is dt.timezone.utc
    assert t.microsecond == 123000
    assert events._unix_ms(t) == 1796400000123
    assert events._unix_ms(leanauth.types.from_unix_ms(-1)) == -1


def test_decode_every_event_type() -> None:
    at = 1796400000000
    msgs = [
        events_pb2.AuthenticationFailed(profile="p", brokerage="B", account_id="A", error="e", attempts=4,
                                        at_unix_ms=at),
        events_pb2.TokenRefreshed(profile="p", token_type=2, expires_at_unix_ms=at + 5, at_unix_ms=at, generation=7),
        events_pb2.AuthenticationDegraded(profile="p", error="e", attempts=4, token_valid_until_unix_ms=at + 9,
                                          at_unix_ms=at),
        events_pb2.AuthenticationRecovered(profile="p", at_unix_ms=at),
    ]
    for m in msgs:
        data = f"leanauth.v1.{m.DESCRIPTOR.name}".encode() + b"\0" + m.SerializeToString()
        ev = leanauth.decode_event(data)
        assert ev is not None and type(ev).__name__ == m.DESCRIPTOR.name
        assert ev.profile == "p" and ev.at == leanauth.types.from_unix_ms(at)
        assert events.encode_event(ev) == data
    ev = leanauth.decode_event(b"leanauth.v1.TokenRefreshed\0" + msgs[1].SerializeToString())
    assert ev.token_type is leanauth.TokenType.SESSION_TOKEN and ev.generation == 7
    assert ev.expires_at == leanauth.types.from_unix_ms(at + 5)


@pytest.mark.parametrize("data", [
    b"", b"no-nul-here", b"leanauth.v1.FromTheFuture\0\x08\x01", b"leanauth.v1.AuthenticationFailed\0\xff\xff",
    b"\xff\xfe\0x",
])
def test_undecodable_events_are_skipped(data: bytes) -> None:
    assert leanauth.decode_event(data) is None


def test_topic_filters() -> None:
    f = events.topic_filters
    assert f(None) == [b""]
    assert f([leanauth.AuthenticationFailed]) == [b"leanauth.v1.AuthenticationFailed\0"]
    assert f("TokenRefreshed") == [b"leanauth.v1.TokenRefreshed\0"]
    assert f(["leanauth.v1.TokenRefreshed", leanauth.TokenRefreshed, b"TokenRefreshed"]) == [
        b"leanauth.v1.TokenRefreshed\0"]
    with pytest.raises(ValueError):
        f([])
    with pytest.raises(ValueError):
        f(["a\0b"])
    with pytest.raises(TypeError):
        f([3])  # type: ignore[list-item]


def test_import_does_not_need_requests() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['requests'] = None; import leanauth; from leanauth import *; "
            "c = leanauth.Client('tcp://127.0.0.1:1'); c.close(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.stdout.strip() == b"ok", out.stderr
    code = "import sys; sys.modules['requests'] = None; from leanauth import LeanAuth"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode != 0 and b"pip install 'leanauth[requests]'" in out.stderr


def test_errors_module_lists_one_class_per_code() -> None:
    assert {c.CODE for c in errors._BY_CODE.values()} == set(EXPECTED)
