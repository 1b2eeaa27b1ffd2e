"""examples/shutdown_on_auth_failure.py end to end."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

import leanauth

from conftest import CANARY_ANY, CLIENT_DIR, Env, read_line_with_deadline

EXAMPLE = CLIENT_DIR / "examples" / "shutdown_on_auth_failure.py"


def _start(env: Env, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--url", env.rpc_url, "--events-url", env.events_url, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        first = read_line_with_deadline(proc, 20, "example")
        assert first.startswith("got a Bearer token (generation 1)"), first
        assert CANARY_ANY not in first
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc


def _finish(proc: subprocess.Popen) -> str:
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the example did not exit: {out!r} {err!r}")
    text = (getattr(proc, "_la_pending", b"") + out).decode()
    assert proc.returncode == 0, (proc.returncode, text, err.decode())
    assert CANARY_ANY not in text + err.decode()
    return text


def test_exits_0_on_authentication_failed(env: Env) -> None:
    env.profile()["max_retry_count"] = 1
    env.start()
    proc = _start(env, "--profile", "schwab")
    # Its stdout line comes after it has subscribed and got its token.
    line = read_line_with_deadline(proc, 10, "example")
    assert line == "waiting for AuthenticationFailed"
    # Another client's bad token: the refresh fails, leanauthd publishes.
    env.standin.plan("A1", default="unauthorized")
    with pytest.raises(leanauth.Unauthenticated):
        env.client().get_access_token("schwab", force_refresh=True)
    text = _finish(proc)
    assert ("AuthenticationFailed for profile 'schwab' (account A1, CharlesSchwab) after 2 attempts: "
            "Invalid refresh token; shutting down") in text
    assert text.rstrip().endswith("stopped cleanly")


def test_other_profiles_failures_are_ignored(env: Env) -> None:
    env.add_profile("ibkr", "B2")["max_retry_count"] = 0
    env.start()
    proc = _start(env, "--profile", "schwab")
    assert read_line_with_deadline(proc, 10, "example") == "waiting for AuthenticationFailed"
    env.standin.plan("B2", default="unauthorized")
    sub = env.client().subscribe([leanauth.AuthenticationFailed], timeout=10)
    assert sub.wait_connected(5)
    with pytest.raises(leanauth.Unauthenticated):
        env.client().get_access_token("ibkr")
    assert sub.get().profile == "ibkr"  # published, and the example got it too
    sub.close()
    assert proc.poll() is None, "exited on another profile's failure"
    proc.send_signal(signal.SIGTERM)
    assert "SIGTERM received; shutting down" in _finish(proc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_0_on_signal(daemon: Env, sig: int) -> None:
    proc = _start(daemon)
    assert read_line_with_deadline(proc, 10, "example") == "waiting for AuthenticationFailed"
    proc.send_signal(sig)
    text = _finish(proc)
    assert f"{signal.Signals(sig).name} received; shutting down" in text
    assert text.rstrip().endswith("stopped cleanly")


def test_exits_1_without_a_token(env: Env) -> None:
    env.start()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", env.rpc_url, "--events-url", env.events_url, "--profile", "nope"],
        capture_output=True, timeout=30,
    )
    assert proc.returncode == 1
    assert b"NOT_FOUND" in proc.stderr
