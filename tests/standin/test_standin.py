#!/usr/bin/env python3
# test_standin.py -- self-test of tests/standin/standin.py: starts it as a
# subprocess and checks the behaviour the integration tests rely on.
# Plain unittest, stdlib only: python3 tests/standin/test_standin.py -v
"""Self-test for the Lean/brokerage stand-in."""

import base64
import hashlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin.py")
USER_ID = "123"
API_TOKEN = "api-SECRET-7f3a"
REFRESH_TOKEN = "rt-SECRET-91bc"
REFRESH = "live/auth0/refresh"
TIMEOUT_S = 10  # bound on every single HTTP exchange and process wait


def start_standin(*args, log=None):
    """Start the stand-in; returns (process, ready dict). Bounded wait."""
    proc = subprocess.Popen([sys.executable, STANDIN, *args],
                            stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        proc.wait(TIMEOUT_S)
        raise AssertionError(f"stand-in did not get ready (rc={proc.returncode})")
    return proc, json.loads(line)


def stop_standin(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT_S)
        proc.stdout.close()


def sign(ts, user=USER_ID, token=API_TOKEN):
    """The Lean API signature, computed independently of the stand-in."""
    digest = hashlib.sha256(f"{token}:{ts}".encode()).hexdigest()
    return "Basic " + base64.b64encode(f"{user}:{digest}".encode()).decode()


def exchange(url, method, path, body=None, headers=None, conn=None):
    """One exchange; returns (status, header list, body bytes).

    With conn given, that (keep-alive) connection is used and left open.
    """
    u = urllib.parse.urlsplit(url)
    c = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, u.path + path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        if conn is None:
            c.close()


class StandinCase(unittest.TestCase):
    """Shares one stand-in process; every test starts from a reset."""

    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(prefix="standin-log-", delete=False)
        cls.proc, ready = start_standin("--user-id", USER_ID, "--api-token", API_TOKEN,
                                        log=cls.log)
        cls.lean, cls.brk = ready["lean_url"], ready["brokerage_url"]

    @classmethod
    def tearDownClass(cls):
        stop_standin(cls.proc)
        cls.log.close()
        os.unlink(cls.log.name)

    def setUp(self):
        self.ctl(self.lean, "POST", "reset")
        self.ctl(self.brk, "POST", "reset")

    def ctl(self, base, method, what, body=None):
        status, _, data = exchange(base, method, "_control/" + what, body)
        self.assertEqual(status, 200, data)
        return json.loads(data)

    def refresh(self, account="A1", body=None, ts=None, auth=None, conn=None):
        """A signed refresh call; returns (status, parsed JSON or raw bytes)."""
        ts = int(time.time()) if ts is None else ts
        body = body if body is not None else {"brokerage": "charlesschwab",
                                               "accountId": account,
                                               "refreshToken": REFRESH_TOKEN}
        headers = {"Timestamp": str(ts), "Authorization": auth or sign(ts),
                   "Content-Type": "application/json"}
        status, _, data = exchange(self.lean, "POST", REFRESH, body, headers, conn)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def get(self, path, auth="Bearer t", **kw):
        headers = kw.pop("headers", {})
        if auth:
            headers["Authorization"] = auth
        return exchange(self.brk, kw.pop("method", "GET"), path, headers=headers, **kw)

    def in_thread(self, fn):
        """Run fn in a daemon thread; returns (thread, result list)."""
        out = []
        t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
        t.start()
        return t, out


class LeanTest(StandinCase):
    def test_signature_accepted(self):
        status, reply = self.refresh()
        self.assertEqual(status, 200)
        self.assertEqual(reply["success"], True)
        self.assertEqual(reply["tokenType"], "Bearer")
        self.assertRegex(reply["accessToken"], r"^tok-\d+$")
        s = self.ctl(self.lean, "GET", "stats")
        self.assertEqual((s["refresh_calls"], s["ok"], s["bad_signature"]), (1, 1, 0))
        self.assertEqual(s["issued"], [reply["accessToken"]])
        self.assertEqual(s["by_account"], {"A1": {"calls": 1, "ok": 1, "failed": 0}})
        self.assertEqual(s["last_body"]["refreshToken"], REFRESH_TOKEN)
        self.assertEqual(s["last_headers"]["timestamp"].isdigit(), True)

    def test_tokens_never_repeat_across_reset(self):
        _, a = self.refresh()
        self.ctl(self.lean, "POST", "reset")
        _, b = self.refresh()
        self.assertNotEqual(a["accessToken"], b["accessToken"])

    def test_bad_signatures_are_401_and_counted(self):
        ts = int(time.time())
        bad = [
            sign(ts, token="wrong"),                      # wrong API token
            sign(ts, user="124"),                         # wrong user id
            sign(ts + 1),                                 # hash of another timestamp
            sign(ts).replace("Basic", "Bearer"),          # wrong scheme
            "Basic " + base64.b64encode(                  # uppercase hex
                f"{USER_ID}:{hashlib.sha256(f'{API_TOKEN}:{ts}'.encode()).hexdigest().upper()}"
                .encode()).decode(),
            "Basic " + base64.b64encode(f"{USER_ID}:\u00e9t\u00e9".encode()).decode(),
        ]
        for auth in bad:
            with self.subTest(auth=auth):
                status, reply = self.refresh(ts=ts, auth=auth)
                self.assertEqual(status, 401)
                self.assertEqual(reply["success"], False)
                self.assertTrue(reply["errors"])
        old = int(time.time()) - 700
        status, _ = self.refresh(ts=old, auth=sign(old))  # signed, but stale
        self.assertEqual(status, 401)
        status, _, _ = exchange(self.lean, "POST", REFRESH,  # no headers at all
                            {"brokerage": "x", "accountId": "A1"})
        self.assertEqual(status, 401)
        s = self.ctl(self.lean, "GET", "stats")
        self.assertEqual(s["bad_signature"], len(bad) + 2)
        self.assertEqual(s["ok"], 0)
        self.assertEqual(s["issued"], [])

    def test_body_is_validated(self):
        cases = [
            {"brokerage": "CharlesSchwab", "accountId": "A1"},  # not lowercased
            {"brokerage": "charlesschwab"},                      # no accountId
            {"brokerage": "x", "accountId": "A1", "account_id": "A1"},  # unknown key
            {"brokerage": "x", "accountId": "A1", "deployId": None},    # null field
            ["not", "an", "object"],
        ]
        for body in cases:
            with self.subTest(body=body):
                status, reply = self.refresh(body=body)
                self.assertEqual(status, 400)
                self.assertEqual(reply["success"], False)
        self.assertEqual(self.ctl(self.lean, "GET", "stats")["bad_request"], len(cases))

    def test_plan_500_500_ok_is_per_account(self):
        self.ctl(self.lean, "POST", "plan", {"account_id": "A1", "plan": ["500", "500", "ok"],
                                             "default": "503"})
        got = [self.refresh("A1")[0] for _ in range(4)]
        self.assertEqual(got, [500, 500, 200, 503])
        self.assertEqual(self.refresh("B2")[0], 200)  # other accounts: default ok
        s = self.ctl(self.lean, "GET", "stats")
        self.assertEqual(s["by_account"]["A1"], {"calls": 4, "ok": 1, "failed": 3})
        self.assertEqual((s["refresh_calls"], s["ok"], s["failed"]), (5, 2, 3))

    def test_wildcard_plan_and_modes(self):
        expect = {
            "garbage": (200, lambda r: self.assertIsInstance(r, bytes)),
            "unauthorized": (200, lambda r: self.assertEqual(
                r, {"success": False, "errors": ["Invalid refresh token"]})),
            "http401": (401, lambda r: self.assertFalse(r["success"])),
            "http403": (403, lambda r: self.assertFalse(r["success"])),
            "notoken": (200, lambda r: self.assertEqual(
                r, {"success": True, "tokenType": "Bearer"})),
            "echo_secret": (200, lambda r: self.assertIn(REFRESH_TOKEN, r["errors"][0])),
            "slow:50": (200, lambda r: self.assertTrue(r["success"])),
        }
        self.ctl(self.lean, "POST", "plan", {"account_id": "*", "plan": list(expect)})
        for mode, (want_status, check) in expect.items():
            with self.subTest(mode=mode):
                status, reply = self.refresh("any-account")
                self.assertEqual(status, want_status)
                check(reply)

    def test_token_types(self):
        for token_type in ("SessionToken", 0, 1):
            with self.subTest(token_type=token_type):
                self.ctl(self.lean, "POST", "plan",
                         {"account_id": "A1", "token_type": token_type})
                status, reply = self.refresh("A1")
                self.assertEqual(status, 200)
                self.assertEqual(reply["tokenType"], token_type)
                self.assertIs(type(reply["tokenType"]), type(token_type))

    def test_control_rejects_typos(self):
        for body in ({"account_id": "A1", "plna": ["ok"]},
                     {"account_id": "A1", "plan": ["fail"]},
                     {"plan": ["ok"]}):
            with self.subTest(body=body):
                status, _, _ = exchange(self.lean, "POST", "_control/plan", body)
                self.assertEqual(status, 400)
        status, _, _ = exchange(self.lean, "GET", "_control/wait?call=1&timeout_ms=10")
        self.assertEqual(status, 400)

    def test_wait_is_bounded_and_wakes(self):
        t0 = time.monotonic()
        s = self.ctl(self.lean, "GET", "wait?calls=1&timeout_ms=100")
        self.assertFalse(s["reached"])
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)

        waiter, out = self.in_thread(
            lambda: self.ctl(self.lean, "GET", "wait?calls=2&timeout_ms=5000"))
        self.refresh()
        self.refresh()
        waiter.join(TIMEOUT_S)
        self.assertFalse(waiter.is_alive())
        self.assertTrue(out[0]["reached"])
        self.assertEqual(out[0]["refresh_calls"], 2)
        self.assertLess(time.monotonic() - t0, 4)  # woke early, not at timeout

    def test_hang_until_release(self):
        self.ctl(self.lean, "POST", "plan", {"account_id": "A1", "plan": ["hang"]})
        caller, out = self.in_thread(lambda: self.refresh("A1"))
        s = self.ctl(self.lean, "GET", "wait?calls=1&timeout_ms=5000")
        self.assertTrue(s["reached"])
        self.assertEqual((s["in_flight"], s["hanging"]), (1, 1))
        caller.join(0.2)
        self.assertTrue(caller.is_alive(), "hang answered before release")
        self.assertEqual(self.ctl(self.lean, "POST", "release")["released"], 1)
        caller.join(TIMEOUT_S)
        self.assertFalse(caller.is_alive())
        status, reply = out[0]
        self.assertEqual(status, 200)
        self.assertTrue(reply["success"])
        s = self.ctl(self.lean, "GET", "stats")
        self.assertEqual((s["in_flight"], s["hanging"], s["ok"]), (0, 0, 1))

    def test_hang_ends_when_client_disconnects(self):
        self.ctl(self.lean, "POST", "plan", {"account_id": "*", "plan": ["hang"]})
        u = urllib.parse.urlsplit(self.lean)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
        ts = int(time.time())
        conn.request("POST", "/" + REFRESH, json.dumps({"brokerage": "b", "accountId": "A1"}),
                     {"Timestamp": str(ts), "Authorization": sign(ts)})
        self.assertTrue(self.ctl(self.lean, "GET", "wait?hanging=1&timeout_ms=5000")["reached"])
        conn.close()
        s = self.ctl(self.lean, "GET", "wait?failed=1&timeout_ms=5000")
        self.assertTrue(s["reached"])
        self.assertEqual((s["in_flight"], s["hanging"], s["ok"]), (0, 0, 0))

    def test_logs_hold_no_secrets(self):
        self.ctl(self.lean, "POST", "plan", {"account_id": "*", "plan": ["echo_secret"]})
        self.refresh()
        _, reply = self.refresh()
        self.get("echo", auth="Bearer " + reply["accessToken"])
        self.ctl(self.lean, "GET", "wait?calls=2&timeout_ms=5000")
        with open(self.log.name, encoding="utf-8") as f:
            log = f.read()
        self.assertIn("POST /live/auth0/refresh 200 echo_secret", log)
        for secret in (API_TOKEN, REFRESH_TOKEN, reply["accessToken"], "Basic "):
            self.assertNotIn(secret, log)


class BrokerageTest(StandinCase):
    def test_echo_with_repeated_headers(self):
        headers = [("X-Dup", "1"), ("Authorization", "Bearer tok-9"), ("X-Dup", "2")]
        u = urllib.parse.urlsplit(self.brk)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
        try:
            c.putrequest("PUT", "/v1/orders/%41?x=1&y=2", skip_accept_encoding=True)
            for k, v in headers:
                c.putheader(k, v)
            c.putheader("Content-Length", "3")
            c.endheaders(b"\xff\x00a")
            r = c.getresponse()
            echo = json.loads(r.read())
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("X-Standin"), "brokerage")
            self.assertEqual(r.msg.get_all("Set-Cookie"), ["a=1", "b=2"])
        finally:
            c.close()
        self.assertEqual(echo["method"], "PUT")
        self.assertEqual(echo["path"], "/v1/orders/%41")
        self.assertEqual(echo["query"], "x=1&y=2")
        self.assertEqual([h for h in echo["headers"] if h[0] != "Host"],
                         [list(h) for h in headers] + [["Content-Length", "3"]])
        self.assertEqual((echo["body"], echo["body_len"]), ("\xff\x00a", 3))
        s = self.ctl(self.brk, "GET", "stats")
        self.assertEqual(s["last_request"], echo)
        self.assertEqual(s["authorizations"], ["Bearer tok-9"])

    def test_chunked_body_is_decoded(self):
        # An iterable body with no length makes http.client send it chunked.
        status, _, data = self.get("echo", method="POST", body=iter([b"ab", b"cde"]))
        self.assertEqual(status, 200)
        echo = json.loads(data)
        self.assertIn(["Transfer-Encoding", "chunked"], echo["headers"])
        self.assertEqual((echo["body"], echo["body_len"]), ("abcde", 5))

    def test_revoked_and_missing_authorization(self):
        self.ctl(self.brk, "POST", "revoke", {"tokens": ["tok-1"]})
        for auth in ("Bearer tok-1", "SessionToken tok-1", None):
            with self.subTest(auth=auth):
                status, headers, _ = self.get("echo", auth=auth)
                self.assertEqual(status, 401)
                self.assertIn(("WWW-Authenticate", "Bearer"), headers)
        self.assertEqual(self.get("echo", auth="Bearer tok-2")[0], 200)
        self.assertEqual(self.get("public/ping", auth=None)[0], 200)
        s = self.ctl(self.brk, "GET", "stats")
        self.assertEqual(s["by_status"], {"401": 3, "200": 2})
        self.ctl(self.brk, "POST", "reset")
        self.assertEqual(self.get("echo", auth="Bearer tok-1")[0], 200)

    def test_keep_alive_counts_one_connection(self):
        u = urllib.parse.urlsplit(self.brk)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
        try:
            ids = [json.loads(self.get("echo", conn=c)[2])["connection"] for _ in range(2)]
        finally:
            c.close()
        self.assertEqual(ids[0], ids[1])
        self.assertEqual(self.ctl(self.brk, "GET", "stats")["connections"], 1)
        third = json.loads(self.get("echo")[2])["connection"]
        self.assertNotEqual(third, ids[0])
        s = self.ctl(self.brk, "GET", "wait?requests=3&connections=2&timeout_ms=5000")
        self.assertTrue(s["reached"])
        self.assertEqual((s["requests"], s["connections"]), (3, 2))

    def test_special_paths(self):
        status, headers, _ = self.get("redirect")
        self.assertEqual(status, 302)
        self.assertIn(("Location", self.brk + "echo/redirected"), headers)
        status, _, data = self.get("api/v1/status/503")
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(data)["path"], "/api/v1/status/503")
        self.assertEqual(self.get("status/204")[0], 204)
        status, _, data = self.get("big?bytes=200000")
        self.assertEqual((status, data), (200, b"x" * 200000))
        status, headers, data = self.get("big?bytes=200000", method="HEAD")
        self.assertEqual((status, data), (200, b""))
        self.assertIn(("Content-Length", "200000"), headers)
        t0 = time.monotonic()
        caller, out = self.in_thread(lambda: self.get("slow?ms=300"))
        s = self.ctl(self.brk, "GET", "wait?in_flight=1&timeout_ms=5000")
        self.assertTrue(s["reached"])
        caller.join(TIMEOUT_S)
        self.assertEqual(out[0][0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertEqual(self.ctl(self.brk, "GET", "stats")["in_flight"], 0)


class ProcessTest(unittest.TestCase):
    """CLI and lifecycle: each test runs its own stand-in process."""

    def run_standin(self, *args):
        return subprocess.run([sys.executable, STANDIN, *args], capture_output=True,
                              timeout=TIMEOUT_S)

    def test_refuses_non_loopback_and_bad_usage(self):
        for args in (["--user-id", "1", "--api-token", "t", "--host", "0.0.0.0"],
                     ["--user-id", "1", "--api-token", "t", "--host", "192.0.2.1"],
                     ["--user-id", "1"],
                     ["--user-id", "1", "--api-token-file", "/nonexistent/token"]):
            with self.subTest(args=args):
                r = self.run_standin(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, b"")

    def test_token_file_ready_file_and_prefix(self):
        with tempfile.TemporaryDirectory() as d:
            token_file = os.path.join(d, "token")
            with open(token_file, "w") as f:
                f.write("from-file\n")
            ready_file = os.path.join(d, "ready.json")
            proc, ready = start_standin("--user-id", "7", "--api-token-file", token_file,
                                        "--ready-file", ready_file, "--token-prefix", "T")
            try:
                with open(ready_file) as f:
                    self.assertEqual(json.load(f), ready)
                self.assertEqual(ready["pid"], proc.pid)
                ts = int(time.time())
                status, _, data = exchange(ready["lean_url"], "POST", REFRESH,
                                       {"brokerage": "b", "accountId": "A"},
                                       {"Timestamp": str(ts),
                                        "Authorization": sign(ts, "7", "from-file")})
                self.assertEqual(status, 200, data)
                self.assertEqual(json.loads(data)["accessToken"], "T1")
            finally:
                self.assertEqual(stop_standin(proc), 0)

    def test_ipv6_loopback(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        proc, ready = start_standin("--user-id", USER_ID, "--api-token", API_TOKEN,
                                    "--host", "::1")
        try:
            self.assertTrue(ready["brokerage_url"].startswith("http://[::1]:"))
            status, _, _ = exchange(ready["brokerage_url"], "GET", "public/x")
            self.assertEqual(status, 200)
        finally:
            self.assertEqual(stop_standin(proc), 0)

    def test_sigterm_with_hanging_request_exits_0_promptly(self):
        proc, ready = start_standin("--user-id", USER_ID, "--api-token", API_TOKEN)
        lean = ready["lean_url"]
        try:
            exchange(lean, "POST", "_control/plan", {"account_id": "*", "default": "hang"})
            ts = int(time.time())
            outcome = []

            def call():
                try:
                    outcome.append(exchange(lean, "POST", REFRESH,
                                            {"brokerage": "b", "accountId": "A"},
                                            {"Timestamp": str(ts), "Authorization": sign(ts)}))
                except (http.client.HTTPException, OSError) as e:
                    outcome.append(e)

            t = threading.Thread(target=call, daemon=True)
            t.start()
            _, _, data = exchange(lean, "GET", "_control/wait?hanging=1&timeout_ms=5000")
            self.assertTrue(json.loads(data)["reached"])
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(TIMEOUT_S), 0)
            self.assertLess(time.monotonic() - t0, 3)
            t.join(TIMEOUT_S)
            self.assertFalse(t.is_alive())
            self.assertIsInstance(outcome[0], Exception, "held call was answered")
        finally:
            stop_standin(proc)


if __name__ == "__main__":
    unittest.main()
