"""GetAccessToken end to end: Client against a real leanauthd and the stand-in."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import leanauth
from leanauth import TokenType

from conftest import CANARY_ACCESS_PREFIX, CANARY_ANY, CANARY_REFRESH_TOKEN, Env


def test_token_is_returned_and_cached(daemon: Env, client: leanauth.Client) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    first = client.get_access_token()
    assert first.access_token.startswith(CANARY_ACCESS_PREFIX)
    assert first.token_type is TokenType.BEARER
    assert first.token_type == "Bearer"
    assert first.generation == 1
    assert first.expires_at.tzinfo is not None
    # Defaults: 1800 s lifetime minus the 120 s offset.
    assert before + dt.timedelta(seconds=1670) < first.expires_at < before + dt.timedelta(seconds=1690)
    assert first.authorization == "Bearer " + first.access_token
    for _ in range(20):
        t = client.get_access_token("schwab")
        assert t == first
    assert daemon.standin.lean_stat("refresh_calls") == 1
    assert daemon.standin.lean_stat("bad_signature") == 0
    body = daemon.standin.lean("_control/stats")["last_body"]
    assert body == {"brokerage": "charlesschwab", "accountId": "A1", "refreshToken": CANARY_REFRESH_TOKEN}


def test_token_repr_hides_the_secret(client: leanauth.Client) -> None:
    t = client.get_access_token()
    for text in (repr(t), str(t)):
        assert t.access_token not in text
        assert CANARY_ANY not in text
        assert "generation=1" in text


def test_session_token_type(env: Env) -> None:
    env.standin.plan("A1", token_type=1)
    env.start()
    t = env.client().get_access_token()
    assert t.token_type is TokenType.SESSION_TOKEN
    assert t.authorization.startswith("SessionToken ")


def test_force_refresh_fetches_a_new_token(daemon: Env, client: leanauth.Client) -> None:
    a = client.get_access_token()
    b = client.get_access_token(force_refresh=True)
    assert a.access_token != b.access_token
    assert b.generation == 2
    assert daemon.standin.lean_stat("refresh_calls") == 2


def test_if_generation_refreshes_only_the_bad_generation(daemon: Env, client: leanauth.Client) -> None:
    bad = client.get_access_token()
    fresh = client.get_access_token(force_refresh=True, if_generation=bad.generation)
    assert fresh.generation == 2
    # A late caller holding the same bad token: no second refresh.
    late = client.get_access_token(force_refresh=True, if_generation=bad.generation)
    assert late == fresh
    assert daemon.standin.lean_stat("refresh_calls") == 2


def test_if_generation_needs_force_refresh(client: leanauth.Client) -> None:
    with pytest.raises(leanauth.InvalidArgument, match="force_refresh"):
        client.get_access_token(if_generation=1)


def test_unknown_profile_is_not_found(daemon: Env, client: leanauth.Client) -> None:
    with pytest.raises(leanauth.NotFound) as ei:
        client.get_access_token("nope")
    assert ei.value.code == 5
    assert ei.value.code_name == "NOT_FOUND"
    assert "nope" in ei.value.message
    assert daemon.standin.lean_stat("refresh_calls") == 0


def test_refused_refresh_is_unauthenticated(env: Env) -> None:
    env.profile()["max_retry_count"] = 1
    env.standin.plan("A1", default="unauthorized")
    env.start()
    with pytest.raises(leanauth.Unauthenticated) as ei:
        env.client().get_access_token()
    assert ei.value.code == 16
    assert ei.value.message == "Invalid refresh token"
    assert env.standin.lean_stat("refresh_calls") == 2


def test_persistent_5xx_is_unavailable(env: Env) -> None:
    env.profile()["max_retry_count"] = 2
    env.standin.plan("A1", default="500")
    env.start()
    with pytest.raises(leanauth.Unavailable) as ei:
        env.client().get_access_token()
    assert "HTTP 500" in ei.value.message
    assert env.standin.lean_stat("refresh_calls") == 3


def test_deadline_exceeded_while_the_refresh_goes_on(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()
    c = env.client()
    t0 = time.monotonic()
    with pytest.raises(leanauth.DeadlineExceeded) as ei:
        c.get_access_token(timeout=0.3)
    took = time.monotonic() - t0
    assert 0.29 <= took < 1.3, took
    assert ei.value.code == 4
    assert env.standin.lean_wait("hanging=1")
    env.standin.lean("_control/release", {})
    t = c.get_access_token()
    assert t.generation == 1
    assert env.standin.lean_stat("refresh_calls") == 1


def test_client_deadline_is_the_default_timeout(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()
    c = env.client(timeout=0.4)
    t0 = time.monotonic()
    with pytest.raises(leanauth.DeadlineExceeded):
        c.get_access_token()
    assert 0.39 <= time.monotonic() - t0 < 1.4
    env.standin.lean("_control/release", {})


def test_health(daemon: Env, client: leanauth.Client) -> None:
    assert client.health() is True
    assert client.health("schwab") is True
    with pytest.raises(leanauth.NotFound):
        client.health("nope")


def test_request_id_reaches_the_server_log(daemon: Env, client: leanauth.Client) -> None:
    client.get_access_token(request_id="py-req-7f3a")
    daemon.wait_log("py-req-7f3a")


def test_profiles_are_independent(env: Env) -> None:
    env.add_profile("ibkr", "B2")["max_retry_count"] = 0
    env.standin.plan("B2", default="unauthorized")
    env.start()
    c = env.client()
    with pytest.raises(leanauth.Unauthenticated):
        c.get_access_token("ibkr")
    assert c.get_access_token("schwab").generation == 1


def test_sigterm_answers_a_waiting_caller(env: Env) -> None:
    import threading

    env.standin.plan("A1", default="hang")
    env.start()
    c = env.client()
    result: dict = {}

    def call() -> None:
        try:
            c.get_access_token(timeout=30)
        except leanauth.LeanAuthError as e:
            result["error"] = e

    th = threading.Thread(target=call)
    th.start()
    assert env.standin.lean_wait("hanging=1"), "the refresh never started"
    assert env.stop() == 0
    th.join(10)
    assert not th.is_alive()
    assert isinstance(result.get("error"), leanauth.Unavailable), result
    assert "shutting down" in result["error"].message
