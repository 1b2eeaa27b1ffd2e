"""LeanAuth: requests against the brokerage stand-in, tokens from leanauthd."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

requests = pytest.importorskip("requests")

import leanauth  # noqa: E402
from leanauth import LeanAuth  # noqa: E402

from conftest import CANARY_ACCESS_PREFIX, CANARY_ANY, Env  # noqa: E402


@pytest.fixture
def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # loopback only: ignore any proxy settings
    yield s
    s.close()


def _auth_header(echo: dict) -> str:
    (value,) = [v for n, v in echo["headers"] if n.lower() == "authorization"]
    return value


def test_sets_the_authorization_header(daemon: Env, client: leanauth.Client, session) -> None:
    r = session.get(daemon.standin.brokerage_url + "v1/accounts", auth=LeanAuth(client, "schwab"), timeout=10)
    assert r.status_code == 200
    value = _auth_header(r.json())
    assert value == "Bearer " + client.get_access_token().access_token
    assert value.startswith("Bearer " + CANARY_ACCESS_PREFIX)
    assert r.history == []


def test_session_token_scheme(env: Env, session) -> None:
    env.standin.plan("A1", token_type="SessionToken")
    env.start()
    r = session.get(env.standin.brokerage_url + "x", auth=LeanAuth(env.client()), timeout=10)
    assert _auth_header(r.json()).startswith("SessionToken " + CANARY_ACCESS_PREFIX)


def test_401_refreshes_once_and_retries(daemon: Env, client: leanauth.Client, session) -> None:
    auth = LeanAuth(client)
    old = client.get_access_token()
    daemon.standin.broker("_control/revoke", {"tokens": [old.access_token]})
    r = session.post(daemon.standin.brokerage_url + "v1/orders", json={"qty": 1}, auth=auth, timeout=10)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [401]
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["body"] == '{"qty": 1}', "the body is sent again on the retry"
    new = client.get_access_token()
    assert new.generation == old.generation + 1
    assert _auth_header(echo) == new.authorization
    assert daemon.standin.lean_stat("refresh_calls") == 2
    auths = daemon.standin.broker("_control/stats")["authorizations"]
    assert auths[-2:] == [old.authorization, new.authorization]


def test_second_401_is_returned_as_it_is(daemon: Env, client: leanauth.Client, session) -> None:
    # /status/401 answers 401 whatever the token: one refresh, one retry, no loop.
    r = session.get(daemon.standin.brokerage_url + "status/401", auth=LeanAuth(client), timeout=10)
    assert r.status_code == 401
    assert len(r.history) == 1
    assert daemon.standin.broker_stat("requests") == 2
    assert daemon.standin.lean_stat("refresh_calls") == 2


def test_concurrent_401s_cause_one_refresh(daemon: Env, client: leanauth.Client, session) -> None:
    auth = LeanAuth(client)
    old = client.get_access_token()
    daemon.standin.broker("_control/revoke", {"tokens": [old.access_token]})
    barrier = threading.Barrier(10)

    def call(_: int) -> int:
        with requests.Session() as s:
            s.trust_env = False
            barrier.wait(10)
            return s.get(daemon.standin.brokerage_url + "x", auth=auth, timeout=10).status_code

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(call, range(10))) == [200] * 10
    assert daemon.standin.lean_stat("refresh_calls") == 2, "if_generation: one refresh for all"


def test_token_errors_propagate(env: Env, session) -> None:
    env.start()
    auth = LeanAuth(env.client(), "nope")
    with pytest.raises(leanauth.NotFound):
        session.get(env.standin.brokerage_url + "x", auth=auth, timeout=10)
    assert env.standin.broker_stat("requests") == 0
    assert CANARY_ANY not in repr(auth)
