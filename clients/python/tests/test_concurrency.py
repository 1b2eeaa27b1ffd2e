"""Many threads on one Client: one nng context per call, one upstream refresh."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import leanauth

from conftest import Env

N = 50


def test_50_threads_cold_share_one_refresh(env: Env) -> None:
    # A slow upstream makes sure the 50 calls overlap the one refresh.
    env.standin.plan("A1", ["slow:500"])
    env.start()
    c = env.client()
    barrier = threading.Barrier(N)

    def call(_: int) -> leanauth.Token:
        barrier.wait(10)
        return c.get_access_token(timeout=20)

    with ThreadPoolExecutor(N) as pool:
        tokens = list(pool.map(call, range(N)))
    assert len({t.access_token for t in tokens}) == 1
    assert {t.generation for t in tokens} == {1}
    assert env.standin.lean_stat("refresh_calls") == 1


def test_50_threads_forced_with_if_generation_cause_one_refresh(env: Env) -> None:
    env.start()
    c = env.client()
    bad = c.get_access_token()
    env.standin.plan("A1", ["slow:300"])
    barrier = threading.Barrier(N)

    def call(_: int) -> leanauth.Token:
        barrier.wait(10)
        return c.get_access_token(force_refresh=True, if_generation=bad.generation, timeout=20)

    with ThreadPoolExecutor(N) as pool:
        tokens = list(pool.map(call, range(N)))
    assert {t.generation for t in tokens} == {2}
    assert env.standin.lean_stat("refresh_calls") == 2


def test_mixed_calls_from_many_threads(daemon: Env) -> None:
    c = daemon.client()
    barrier = threading.Barrier(N)

    def call(i: int) -> object:
        barrier.wait(10)
        if i % 3 == 0:
            return c.send("GET", daemon.allowed_url + f"n/{i}").json()["path"]
        if i % 3 == 1:
            return c.health()
        return c.get_access_token().generation

    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(call, range(N)))
    for i, r in enumerate(results):
        assert r == ({0: f"/api/n/{i}", 1: True, 2: 1}[i % 3]), (i, r)
    assert daemon.standin.broker_stat("requests") == len(range(0, N, 3))
