"""AsyncClient: the same calls as coroutines, concurrently on one socket."""

from __future__ import annotations

import asyncio
import time

import pytest

import leanauth
from leanauth import AuthenticationFailed, TokenRefreshed

from conftest import CANARY_ACCESS_PREFIX, Env

N = 50


def run(coro):  # pytest-asyncio is not needed for a handful of tests
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_gather_50_calls_one_refresh(env: Env) -> None:
    env.standin.plan("A1", ["slow:500"])
    env.start()

    async def main() -> list:
        async with leanauth.AsyncClient(env.rpc_url) as c:
            return await asyncio.gather(*(c.get_access_token(timeout=20) for _ in range(N)))

    tokens = run(main())
    assert len(tokens) == N
    assert len({t.access_token for t in tokens}) == 1
    assert tokens[0].access_token.startswith(CANARY_ACCESS_PREFIX)
    assert env.standin.lean_stat("refresh_calls") == 1


def test_force_refresh_and_if_generation(daemon: Env) -> None:
    async def main() -> None:
        c = daemon.async_client()
        bad = await c.get_access_token()
        fresh = await asyncio.gather(
            *(c.get_access_token(force_refresh=True, if_generation=bad.generation) for _ in range(10)))
        assert {t.generation for t in fresh} == {2}

    run(main())
    assert daemon.standin.lean_stat("refresh_calls") == 2


def test_errors(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()

    async def main() -> None:
        c = env.async_client()
        with pytest.raises(leanauth.NotFound):
            await c.get_access_token("nope")
        t0 = time.monotonic()
        with pytest.raises(leanauth.DeadlineExceeded):
            await c.get_access_token(timeout=0.3)
        assert time.monotonic() - t0 < 1.3
        with pytest.raises(leanauth.PermissionDenied):
            await c.send("GET", env.standin.brokerage_url + "elsewhere")
        with pytest.raises(leanauth.InvalidArgument):
            await c.send("BREW", env.allowed_url)
        with pytest.raises(leanauth.NotFound):
            await c.health("nope")

    run(main())
    env.standin.lean("_control/release", {})


def test_send_and_health(daemon: Env) -> None:
    async def main() -> None:
        c = daemon.async_client()
        assert await c.health() is True
        rs = await asyncio.gather(*(c.send("POST", daemon.allowed_url + f"o/{i}", body=str(i)) for i in range(20)))
        for i, r in enumerate(rs):
            assert r.status_code == 200
            assert r.json()["path"] == f"/api/o/{i}"
            assert r.json()["body"] == str(i)

    run(main())


def test_not_connected_is_unavailable() -> None:
    async def main() -> None:
        async with leanauth.AsyncClient("tcp://127.0.0.1:1", timeout=0.3) as c:
            with pytest.raises(leanauth.Unavailable):
                await c.get_access_token()

    run(main())


def test_cancelling_a_call(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()

    async def main() -> None:
        c = env.async_client()
        task = asyncio.ensure_future(c.get_access_token(timeout=30))
        await asyncio.sleep(0)  # start it
        assert await asyncio.get_running_loop().run_in_executor(None, env.standin.lean_wait, "hanging=1")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        env.standin.lean("_control/release", {})
        assert (await c.get_access_token()).generation == 1

    run(main())


def test_closing_the_client_cancels_calls_in_flight(env: Env) -> None:
    env.standin.plan("A1", ["hang"])
    env.start()

    async def main() -> None:
        c = leanauth.AsyncClient(env.rpc_url)
        task = asyncio.ensure_future(c.get_access_token(timeout=30))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, env.standin.lean_wait, "hanging=1")
        await c.aclose()
        with pytest.raises(leanauth.Cancelled):
            await task
        with pytest.raises(leanauth.Cancelled):
            await c.get_access_token()

    run(main())
    env.standin.lean("_control/release", {})


def test_async_subscription(env: Env) -> None:
    env.profile()["max_retry_count"] = 1
    env.standin.plan("A1", ["ok"], default="unauthorized")
    env.start()

    async def main() -> list:
        c = env.async_client()
        got = []
        async with c.subscribe([TokenRefreshed, AuthenticationFailed], timeout=10) as sub:
            assert await sub.wait_connected(5)
            await c.get_access_token()
            with pytest.raises(leanauth.Unauthenticated):
                await c.get_access_token(force_refresh=True)
            async for ev in sub:
                got.append(ev)
                if isinstance(ev, AuthenticationFailed):
                    break
            with pytest.raises(leanauth.DeadlineExceeded):
                await sub.get(timeout=0.2)
        with pytest.raises(leanauth.Cancelled):
            await sub.get()
        return got

    got = run(main())
    assert [type(e) for e in got] == [TokenRefreshed, AuthenticationFailed]
    assert got[1].attempts == 2 and got[1].account_id == "A1"


def test_async_subscription_close_ends_iteration(daemon: Env) -> None:
    async def main() -> None:
        sub = daemon.async_client().subscribe()
        assert await sub.wait_connected(5)

        async def consume() -> list:
            return [ev async for ev in sub]

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)  # let it block (not needed for correctness)
        sub.close()
        assert await asyncio.wait_for(task, 5) == []

    run(main())


def test_wait_connected_times_out() -> None:
    async def main() -> None:
        async with leanauth.AsyncSubscription("tcp://127.0.0.1:1") as sub:
            t0 = time.monotonic()
            assert await sub.wait_connected(0.2) is False
            assert time.monotonic() - t0 < 2

    run(main())
