"""Fixtures: the stand-in Lean/brokerage APIs and a real leanauthd, per test.

Each test that asks for ``env`` gets its own stand-in (tests/standin) and a
leanauthd config (ports 0, canary secrets) it may edit before
``env.start()``; ``daemon`` is the same with leanauthd already started.
Teardown stops both and asserts that no "CANARY-" string reached
leanauthd's log. Every wait has a deadline.

leanauthd is $LEANAUTHD_BIN, or build/server/leanauthd under the repo root.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import leanauth

REPO = Path(__file__).resolve().parents[3]
STANDIN_PY = REPO / "tests" / "standin" / "standin.py"
CLIENT_DIR = REPO / "clients" / "python"

# Secrets given to leanauthd; the stand-in issues access tokens that start
# with CANARY_ACCESS_PREFIX. None may ever appear in leanauthd's log.
CANARY_API_TOKEN = "CANARY-APITOKEN-5d1e"
CANARY_REFRESH_TOKEN = "CANARY-REFRESH-77b0"
CANARY_ACCESS_PREFIX = "CANARY-ACCESS-"
CANARY_ANY = "CANARY-"

# The stand-in's control API is plain HTTP on loopback: never via a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def leanauthd_bin() -> Path:
    return Path(os.environ.get("LEANAUTHD_BIN") or REPO / "build" / "server" / "leanauthd")


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if the test process dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    """Poll pred until it returns something truthy; fail after timeout."""
    until = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= until:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_line_with_deadline(proc: subprocess.Popen, timeout: float, what: str) -> str:
    """The next line of proc.stdout, within timeout. Bytes read past the
    line are kept (on proc) for the next call."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf: bytes = getattr(proc, "_la_pending", b"")
    until = time.monotonic() + timeout
    while b"\n" not in buf:
        left = until - time.monotonic()
        if left <= 0:
            pytest.fail(f"{what}: no line within {timeout} s (got {buf!r})")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            pytest.fail(f"{what}: exited before printing a line (got {buf!r})")
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    proc._la_pending = rest  # type: ignore[attr-defined]
    return line.decode()


class Standin:
    """The stand-in Lean API + brokerage API, and its control API."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "standin.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN_PY), "--user-id", "4242", "--api-token", CANARY_API_TOKEN,
             "--token-prefix", CANARY_ACCESS_PREFIX],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            preexec_fn=_die_with_parent,
        )
        try:
            ready = json.loads(read_line_with_deadline(self.proc, 15, "stand-in"))
        except BaseException:
            self.stop()
            raise
        self.lean_url: str = ready["lean_url"]
        self.brokerage_url: str = ready["brokerage_url"]

    def _http(self, base: str, path: str, body: Any = None) -> Dict[str, Any]:
        url = base + path.lstrip("/")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(req, timeout=130) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            pytest.fail(f"stand-in {path}: HTTP {e.code}: {e.read()[:300]!r}")

    def lean(self, path: str, body: Any = None) -> Dict[str, Any]:
        return self._http(self.lean_url, path, body)

    def broker(self, path: str, body: Any = None) -> Dict[str, Any]:
        return self._http(self.brokerage_url, path, body)

    def lean_stat(self, key: str) -> int:
        return int(self.lean("_control/stats")[key])

    def broker_stat(self, key: str) -> int:
        return int(self.broker("_control/stats")[key])

    def plan(self, account: str, plan: List[str] = (), default: str = "ok", token_type: Any = None) -> None:
        body: Dict[str, Any] = {"account_id": account, "plan": list(plan), "default": default}
        if token_type is not None:
            body["token_type"] = token_type
        self.lean("_control/plan", body)

    def lean_wait(self, query: str, timeout_ms: int = 5000) -> bool:
        return bool(self.lean(f"_control/wait?{query}&timeout_ms={timeout_ms}").get("reached"))

    def broker_wait(self, query: str, timeout_ms: int = 5000) -> bool:
        return bool(self.broker(f"_control/wait?{query}&timeout_ms={timeout_ms}").get("reached"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


class Env:
    """A stand-in, a leanauthd config to edit, and (after start()) leanauthd."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.standin = Standin(workdir)
        self.cfg_path = workdir / "leanauthd.json"
        self.log_path = workdir / "leanauthd.log"
        self.logs: List[Path] = []  # one per start(); all checked for canaries
        self.proc: Optional[subprocess.Popen] = None
        self.rpc_url = ""
        self.events_url = ""
        self.http_addr = ""
        self._clients: List[Any] = []
        self.cfg: Dict[str, Any] = {
            "listen": {"rpc": "tcp://127.0.0.1:0", "events": "tcp://127.0.0.1:0", "http": "127.0.0.1:0"},
            "workers": 4,
            "log_level": "debug",
            "lean_api": {"url": self.standin.lean_url, "user_id": "4242", "api_token": CANARY_API_TOKEN,
                         "timeout_ms": 5000},
            "profiles": [{
                "name": "schwab", "brokerage": "CharlesSchwab", "account_id": "A1",
                "refresh_token": CANARY_REFRESH_TOKEN, "max_retry_count": 3, "retry_interval_ms": 50,
                "send": {"allowed_urls": [self.allowed_url], "timeout_ms": 5000, "max_body_bytes": 65536},
            }],
        }

    @property
    def allowed_url(self) -> str:
        """Send is allowed under this prefix of the brokerage stand-in."""
        return self.standin.brokerage_url + "api/"

    def profile(self, i: int = 0) -> Dict[str, Any]:
        return self.cfg["profiles"][i]

    def add_profile(self, name: str, account_id: str) -> Dict[str, Any]:
        p = json.loads(json.dumps(self.profile(0)))
        p["name"] = name
        p["account_id"] = account_id
        self.cfg["profiles"].append(p)
        return p

    def start(self) -> "Env":
        """Write the config, start leanauthd, wait for its ready line."""
        binary = leanauthd_bin()
        if not binary.is_file():
            pytest.fail(f"leanauthd not found at {binary}: build it (cmake --build build) or set LEANAUTHD_BIN")
        self.cfg_path.write_text(json.dumps(self.cfg, indent=2))
        if self.logs:  # a restart: a log of its own
            self.log_path = self.dir / f"leanauthd-{len(self.logs) + 1}.log"
        self.logs.append(self.log_path)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(binary), "--config", str(self.cfg_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                preexec_fn=_die_with_parent,
            )

        def ready() -> Optional[Dict[str, Any]]:
            for line in self.log().splitlines():
                if '"msg":"ready"' in line:
                    return json.loads(line)
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"leanauthd exited during startup:\n{self.log()}")
            return None

        r = wait_until(ready, 15, "leanauthd's ready line")
        self.rpc_url, self.events_url, self.http_addr = r["rpc"], r["events"], r["http"]
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, timeout: float = 5) -> None:
        wait_until(lambda: needle in self.log(), timeout, f"{needle!r} in leanauthd's log")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal leanauthd and wait for it; returns its exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def client(self, **kw: Any) -> leanauth.Client:
        """A Client on this leanauthd, closed at teardown."""
        kw.setdefault("events_url", self.events_url)
        c = leanauth.Client(self.rpc_url, **kw)
        self._clients.append(c)
        return c

    def async_client(self, **kw: Any) -> leanauth.AsyncClient:
        kw.setdefault("events_url", self.events_url)
        c = leanauth.AsyncClient(self.rpc_url, **kw)
        self._clients.append(c)
        return c

    def teardown(self) -> None:
        for c in self._clients:
            c.close()
        # A clean shutdown after every test: SIGTERM, exit 0 (an ASan build
        # reports leaks and errors there).
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                rc = "no exit within 15 s of SIGTERM"
        self.standin.stop()
        for path in self.logs:
            log = path.read_text(errors="replace") if path.exists() else ""
            assert CANARY_ANY not in log, f"a canary secret reached leanauthd's log (kept in {path})"
            for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                assert bad not in log, f"{bad} in leanauthd's log {path}"
        assert rc in (None, 0), f"leanauthd's exit after SIGTERM: {rc} (log {self.log_path})"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """Stand-in running, leanauthd configured but not started."""
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.teardown()


@pytest.fixture
def daemon(env: Env) -> Env:
    """Stand-in and leanauthd running with the default config."""
    return env.start()


@pytest.fixture
def client(daemon: Env) -> leanauth.Client:
    return daemon.client()
