"""Event subscription end to end: leanauthd publishes, Subscription decodes."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

import leanauth
from leanauth import AuthenticationFailed, TokenRefreshed, TokenType

from conftest import CANARY_ANY, Env


def _subscribe(c: leanauth.Client, topics=None, **kw) -> leanauth.Subscription:
    sub = c.subscribe(topics, **kw)
    assert sub.wait_connected(5), "no connection to the events socket"
    return sub


def test_authentication_failed_has_the_right_fields(env: Env) -> None:
    env.profile()["max_retry_count"] = 2
    env.standin.plan("A1", default="unauthorized")
    env.start()
    c = env.client()
    with _subscribe(c, [AuthenticationFailed], timeout=10) as sub:
        before = dt.datetime.now(dt.timezone.utc)
        with pytest.raises(leanauth.Unauthenticated):
            c.get_access_token()
        ev = next(sub)
    assert isinstance(ev, AuthenticationFailed)
    assert ev.profile == "schwab"
    assert ev.brokerage == "CharlesSchwab"
    assert ev.account_id == "A1"
    assert ev.error == "Invalid refresh token"
    assert ev.attempts == 3
    assert ev.at.tzinfo is not None
    assert before - dt.timedelta(seconds=2) <= ev.at <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    assert CANARY_ANY not in repr(ev)


def test_token_refreshed(daemon: Env) -> None:
    c = daemon.client()
    with _subscribe(c, ["TokenRefreshed"], timeout=10) as sub:
        t = c.get_access_token()
        ev = sub.get()
        assert isinstance(ev, TokenRefreshed)
        assert ev.profile == "schwab"
        assert ev.token_type is TokenType.BEARER
        assert ev.generation == t.generation == 1
        assert ev.expires_at == t.expires_at
        assert ev.at <= t.expires_at
        c.get_access_token(force_refresh=True)
        assert sub.get().generation == 2


def test_every_event_without_topics(env: Env) -> None:
    env.profile()["max_retry_count"] = 0
    env.standin.plan("A1", ["ok"], default="unauthorized")
    env.start()
    c = env.client()
    with _subscribe(c, timeout=10) as sub:
        assert sub.topics == [b""]
        c.get_access_token()
        with pytest.raises(leanauth.Unauthenticated):
            c.get_access_token(force_refresh=True)
        got = [type(sub.get()), type(sub.get())]
    assert got == [TokenRefreshed, AuthenticationFailed]


def test_topic_filter_is_exact(daemon: Env) -> None:
    c = daemon.client()
    # Only AuthenticationFailed: the TokenRefreshed that follows is filtered.
    with _subscribe(c, ["leanauth.v1.AuthenticationFailed"]) as sub:
        assert sub.topics == [b"leanauth.v1.AuthenticationFailed\0"]
        c.get_access_token()
        with pytest.raises(leanauth.DeadlineExceeded):
            sub.get(timeout=0.3)


def test_close_ends_a_blocked_iteration(daemon: Env) -> None:
    sub = _subscribe(daemon.client())
    seen: list = []
    done = threading.Event()

    def consume() -> None:
        for ev in sub:
            seen.append(ev)
        done.set()

    th = threading.Thread(target=consume)
    th.start()
    time.sleep(0.05)  # let it block in the iteration (not needed for correctness)
    sub.close()
    assert done.wait(5), "iteration did not end on close()"
    th.join(5)
    assert seen == []
    assert sub.closed
    with pytest.raises(leanauth.Cancelled):
        sub.get(timeout=0.1)
    sub.close()  # idempotent


def test_subscription_timeout(daemon: Env) -> None:
    with _subscribe(daemon.client(), timeout=0.2) as sub:
        t0 = time.monotonic()
        with pytest.raises(leanauth.DeadlineExceeded):
            next(sub)
        assert 0.19 <= time.monotonic() - t0 < 2


def test_bad_topics_are_rejected(daemon: Env) -> None:
    c = daemon.client()
    with pytest.raises(ValueError):
        c.subscribe([])
    with pytest.raises(TypeError):
        c.subscribe([int])
