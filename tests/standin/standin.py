#!/usr/bin/env python3
# standin.py -- the offline stand-ins for the Lean platform API and for a
# brokerage HTTP API, used by every integration test and the README demo.
# One process, two loopback ports; scripted failures and stats via /_control/.
# Standard library only, so it runs wherever Python 3.11 does.
"""Stand-in Lean platform API + brokerage API (see tests/standin/README.md)."""

import argparse
import base64
import binascii
import collections
import hashlib
import hmac
import ipaddress
import json
import os
import re
import select
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Every wait the stand-in does on a client's behalf ends by this bound, so a
# forgotten hang or a huge slow=... can never wedge a test run.
MAX_HOLD_S = 120.0
# Timestamps further than this from our clock are rejected, as upstream does.
MAX_SKEW_S = 600
MAX_LEAN_BODY = 1 << 20
MAX_BROKERAGE_BODY = 64 << 20
MAX_BIG_BYTES = 1 << 30
# Lists kept for inspection stay bounded however long a soak test runs.
KEEP_LAST = 1000

REFRESH_PATHS = ("/live/auth0/refresh", "/api/v2/live/auth0/refresh")
LEAN_BODY_KEYS = {"brokerage", "accountId", "refreshToken", "deployId"}
SIMPLE_MODES = {"ok", "500", "503", "garbage", "unauthorized", "http401",
                "http403", "notoken", "hang", "echo_secret"}


class BadRequest(Exception):
    """A request the stand-in refuses with HTTP 400 (message is safe to log)."""


def valid_mode(mode):
    return isinstance(mode, str) and (
        mode in SIMPLE_MODES or re.fullmatch(r"slow:\d{1,9}", mode) is not None)


def parse_wait_query(query, aliases):
    """Split a /_control/wait query into (timeout_s, {stat: minimum}).

    Any integer stat may be waited on; several conditions must all hold.
    """
    qs = urllib.parse.parse_qs(query, keep_blank_values=True)
    timeout_ms = 5000
    wants = {}
    for key, values in qs.items():
        try:
            value = int(values[-1])
        except ValueError:
            raise BadRequest(f"{key} must be an integer") from None
        if key == "timeout_ms":
            timeout_ms = value
        else:
            wants[aliases.get(key, key)] = value
    return min(max(timeout_ms, 0), MAX_HOLD_S * 1000) / 1000.0, wants


class StandinServer(ThreadingHTTPServer):
    """One listening port; owns the connection-id counter for its handlers."""

    daemon_threads = True  # a held request must never delay process exit
    allow_reuse_address = True
    request_queue_size = 128  # bursts of new connections must not lose SYNs

    def __init__(self, host, port, handler, state, stop):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self.stop = stop
        self._conn_lock = threading.Lock()
        self._conn_seq = 0
        super().__init__((host, port), handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can
        # stall for seconds on a machine without DNS; we only need the port.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def next_conn_id(self):
        with self._conn_lock:
            self._conn_seq += 1
            return self._conn_seq

    def url(self):
        host, port = self.server_address[:2]
        if self.address_family == socket.AF_INET6:
            host = f"[{host}]"
        return f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """Plumbing shared by both stand-ins: bodies, replies, control, logging."""

    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is testable
    # Headers and body go out in separate writes; without TCP_NODELAY the
    # body waits for the client's delayed ACK (~40 ms a reply).
    disable_nagle_algorithm = True
    name = "?"
    max_body = MAX_LEAN_BODY  # control bodies; the brokerage raises it

    def setup(self):
        super().setup()
        self.conn_id = self.server.next_conn_id()

    def handle_one_request(self):
        # Cleared per request, so a keep-alive connection never logs the
        # previous request's path against a malformed one.
        self.started = time.monotonic()
        self.raw_path, self.note = None, ""
        super().handle_one_request()

    # Any method reaches dispatch; the stand-ins decide what each one means.
    def dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        self.raw_path, self.raw_query = split.path, split.query
        try:
            if self.raw_path.startswith("/_control/"):
                self.control(self.raw_path[len("/_control/"):])
            else:
                self.serve()
        except BadRequest as e:
            self.note = "bad_request"
            self.close_connection = True  # the body may be half read
            self.send_json(400, {"success": False, "errors": [str(e)]})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = dispatch

    # Control endpoints both stand-ins have; control_more adds the rest.
    wait_aliases = {}

    def control(self, what):
        state = self.server.state
        if what == "stats" and self.command in ("GET", "HEAD"):
            self.send_json(200, state.stats())
        elif what == "wait" and self.command == "GET":
            self.control_wait()
        elif what == "reset" and self.command == "POST":
            self.read_body()
            state.reset()
            self.send_json(200, {"success": True})
        elif not self.control_more(what):
            self.send_json(404, {"success": False,
                                 "errors": [f"no {self.command} /_control/{what}"]})

    def control_wait(self):
        state = self.server.state
        timeout_s, wants = parse_wait_query(self.raw_query, self.wait_aliases)
        counters = {k for k, v in state.stats().items() if isinstance(v, int)}
        unknown = sorted(set(wants) - counters)
        if unknown:
            raise BadRequest(f"cannot wait on {', '.join(unknown)}; "
                             f"counters: {', '.join(sorted(counters))}")
        reached, stats = wait_for_stats(state.cond, state.stats, wants, timeout_s,
                                        self.server.stop)
        stats["reached"] = reached
        self.send_json(200, stats)

    def read_body(self):
        """The whole request body: Content-Length or chunked, at most max_body."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise BadRequest(f"unsupported Transfer-Encoding {te!r}")
            return self._read_chunked()
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        if not cl.strip().isdigit():
            raise BadRequest("bad Content-Length")
        n = int(cl)
        if n > self.max_body:
            raise BadRequest(f"body larger than {self.max_body} bytes")
        body = self.rfile.read(n)
        if len(body) != n:
            raise BadRequest("body shorter than Content-Length")
        return body

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size line") from None
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise BadRequest(f"body larger than {self.max_body} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) != b"\r\n":
                raise BadRequest("truncated chunk")
            parts.append(chunk)
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailers: read and ignored
        return b"".join(parts)

    def read_json_object(self):
        body = self.read_body()
        if not body:
            return {}
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body is not JSON") from None
        if not isinstance(obj, dict):
            raise BadRequest("body is not a JSON object")
        return obj

    def send_bytes(self, status, body, content_type="application/json",
                   headers=(), content_length=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        # 204/304 carry no body and must not announce one.
        if status not in (204, 304):
            self.send_header("Content-Type", content_type)
            length = len(body) if content_length is None else content_length
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send_bytes(status, json.dumps(obj).encode(), headers=headers)

    # Logging: one line per request with method, path (never the query),
    # status and an outcome note. Headers and bodies carry secrets, so the
    # default log_message (which can echo a raw request line) is silenced.
    def log_request(self, code="-", size="-"):
        path = (self.raw_path or "?").encode("unicode_escape").decode()
        ms = (time.monotonic() - self.started) * 1000
        note = f" {self.note}" if self.note else ""
        code = int(code) if isinstance(code, int) else code
        sys.stderr.write(f"standin {self.name} conn={self.conn_id} {self.command or '?'} "
                         f"{path} {code}{note} {ms:.0f}ms\n")

    def log_message(self, format, *args):  # noqa: A002 (stdlib's signature)
        pass


# --------------------------------------------------------------------------
# Lean platform API stand-in


class LeanState:
    """Plans, counters and recorded requests of the Lean stand-in.

    One condition guards everything and is notified on every change, so
    /_control/wait and held (hang) requests wake as soon as something moves.
    """

    def __init__(self, user_id, api_token, token_prefix):
        self.user_id = user_id
        self.api_token = api_token
        self.token_prefix = token_prefix
        self.cond = threading.Condition()
        self.token_seq = 0  # never reset: tokens stay unique for the process
        self.release_gen = 0
        self.in_flight = 0
        self.hanging = 0
        self.reset()

    def reset(self):
        with self.cond:
            self.plans = {}
            self.refresh_calls = self.ok = self.failed = 0
            self.bad_signature = self.bad_request = 0
            self.by_account = {}
            self.last_body = self.last_body_raw = self.last_path = None
            self.last_headers = {}
            self.issued = collections.deque(maxlen=KEEP_LAST)
            self.release_gen += 1  # reset answers held requests too
            self.cond.notify_all()

    def release(self):
        with self.cond:
            n = self.hanging
            self.release_gen += 1
            self.cond.notify_all()
            return n

    def set_plan(self, account_id, plan, default, token_type):
        with self.cond:
            self.plans[account_id] = {"plan": collections.deque(plan),
                                      "default": default,
                                      "token_type": token_type}
            self.cond.notify_all()

    def begin(self, path, headers, raw, body, account, accepted):
        """Count one refresh call, record what it carried and, if accepted,
        take its plan step. Returns (mode, token_type, gen); mode is None
        for a call that was not accepted.

        All of it happens under one lock, including a hang's registration and
        the release generation gen it waits to change: a release sent after
        wait?calls=N therefore always reaches a hang that call N started.
        """
        with self.cond:
            self.refresh_calls += 1
            self.in_flight += 1
            self.last_path = path
            self.last_headers = headers
            self.last_body_raw = raw.decode("latin-1")
            self.last_body = body
            if account is not None:
                acc = self.by_account.setdefault(account,
                                                 {"calls": 0, "ok": 0, "failed": 0})
                acc["calls"] += 1
            mode, token_type = None, None
            if accepted:
                # The most specific entry wins: the account's, else "*".
                entry = self.plans.get(account) or self.plans.get("*")
                if entry is None:
                    mode, token_type = "ok", "Bearer"
                else:
                    mode = entry["plan"].popleft() if entry["plan"] else entry["default"]
                    token_type = entry["token_type"]
                if mode == "hang":
                    self.hanging += 1
            self.cond.notify_all()
            return mode, token_type, self.release_gen

    def issue(self):
        with self.cond:
            self.token_seq += 1
            tok = f"{self.token_prefix}{self.token_seq}"
            self.issued.append(tok)
            return tok

    def finish(self, account, outcome):
        """outcome: "ok", "failed", "bad_signature" or "bad_request"."""
        with self.cond:
            self.in_flight -= 1
            if outcome == "ok":
                self.ok += 1
            else:
                self.failed += 1
                if outcome != "failed":
                    setattr(self, outcome, getattr(self, outcome) + 1)
            acc = self.by_account.get(account)
            if acc is not None:
                acc["ok" if outcome == "ok" else "failed"] += 1
            self.cond.notify_all()

    def hold(self, gen, stop, client_gone):
        """Block a hang request; returns "released", "gone", "stop" or "timeout"."""
        deadline = time.monotonic() + MAX_HOLD_S
        with self.cond:
            try:
                while True:
                    if self.release_gen != gen:
                        return "released"
                    if stop.is_set():
                        return "stop"
                    if client_gone():
                        return "gone"
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return "timeout"
                    # Short slices: a client hanging up wakes nobody, so poll.
                    self.cond.wait(min(left, 0.05))
            finally:
                self.hanging -= 1
                self.cond.notify_all()

    def stats(self):
        with self.cond:
            return {
                "refresh_calls": self.refresh_calls,
                "ok": self.ok,
                "failed": self.failed,
                "bad_signature": self.bad_signature,
                "bad_request": self.bad_request,
                "in_flight": self.in_flight,
                "hanging": self.hanging,
                "by_account": {k: dict(v) for k, v in self.by_account.items()},
                "last_path": self.last_path,
                "last_headers": dict(self.last_headers),
                "last_body": self.last_body,
                "last_body_raw": self.last_body_raw,
                "issued": list(self.issued),
            }


def wait_for_stats(cond, stats, wants, timeout_s, stop):
    """Block until every stats()[key] >= want (or timeout/stop)."""
    deadline = time.monotonic() + timeout_s

    def reached(s):
        return all(isinstance(s.get(k), int) and s[k] >= v for k, v in wants.items())

    with cond:
        while True:
            s = stats()  # the condition's lock is reentrant
            if reached(s) or stop.is_set():
                return reached(s), s
            left = deadline - time.monotonic()
            if left <= 0:
                return False, s
            cond.wait(min(left, 0.25))


def signature_error(state, headers):
    """None if Timestamp/Authorization sign the call as upstream expects."""
    ts = headers.get("Timestamp")
    if ts is None:
        return "Missing Timestamp header."
    if not re.fullmatch(r"\d{1,12}", ts.strip()):
        return "Timestamp is not an integer."
    if abs(int(ts) - time.time()) > MAX_SKEW_S:
        return "Timestamp is too far from the server's clock."
    auth = headers.get("Authorization") or ""
    scheme, _, cred = auth.partition(" ")
    if scheme != "Basic":
        return "Missing Basic Authorization header."
    try:
        user, sep, got = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "Authorization is not base64."
    want = hashlib.sha256(f"{state.api_token}:{ts.strip()}".encode()).hexdigest()
    if not sep or user != state.user_id or not hmac.compare_digest(got.encode(), want.encode()):
        return "Hash doesn't match."
    return None


def refresh_body_error(body):
    """None if body is the refresh call's JSON object, else why not."""
    if not isinstance(body, dict):
        return "Body must be a JSON object."
    unknown = sorted(set(body) - LEAN_BODY_KEYS)
    if unknown:
        return f"Unknown field(s): {', '.join(unknown)}."
    for key in ("brokerage", "accountId"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"Missing or empty {key}."
    if body["brokerage"] != body["brokerage"].lower():
        return "brokerage must be lowercase."
    for key in ("refreshToken", "deployId"):
        if key in body and not isinstance(body[key], str):
            return f"{key} must be a string."
    return None


class LeanHandler(Handler):
    name = "lean"
    wait_aliases = {"calls": "refresh_calls"}

    def control_more(self, what):
        if what == "release" and self.command == "POST":
            self.read_body()
            self.send_json(200, {"success": True, "released": self.server.state.release()})
        elif what == "plan" and self.command == "POST":
            self.control_plan(self.read_json_object())
        else:
            return False
        return True

    def control_plan(self, req):
        # Unknown keys are refused so a typo in a test never passes silently.
        unknown = sorted(set(req) - {"account_id", "plan", "default", "token_type"})
        if unknown:
            raise BadRequest(f"unknown plan key(s): {', '.join(unknown)}")
        account = req.get("account_id")
        plan = req.get("plan", [])
        default = req.get("default", "ok")
        token_type = req.get("token_type", "Bearer")
        if not isinstance(account, str) or not account:
            raise BadRequest("account_id is required")
        if not isinstance(plan, list) or not all(valid_mode(m) for m in plan + [default]):
            raise BadRequest(f"bad mode in plan/default; modes: {sorted(SIMPLE_MODES)} "
                             "or slow:<ms>")
        # Any string or integer passes, so clients' handling of an unknown
        # token type can be tested too.
        if isinstance(token_type, bool) or not isinstance(token_type, (str, int)):
            raise BadRequest("token_type must be a string or an integer")
        self.server.state.set_plan(account, plan, default, token_type)
        self.send_json(200, {"success": True})

    def serve(self):
        if self.raw_path not in REFRESH_PATHS:
            self.send_json(404, {"success": False, "errors": ["Not found."]})
            return
        state = self.server.state
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        account = body.get("accountId") if isinstance(body, dict) else None
        account = account if isinstance(account, str) else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        rejected = self.reject(state, body)
        mode, token_type, gen = state.begin(self.raw_path, headers, raw, body, account,
                                            accepted=rejected is None)
        outcome, status, reply = "failed", None, None
        try:
            outcome, status, reply = rejected or self.answer(state, body, mode,
                                                             token_type, gen)
        finally:
            # Counted before the reply leaves: a client holding its answer
            # always finds it in the stats.
            state.finish(account, outcome)
        if status is None:
            self.close_connection = True  # dropped without an answer
        elif isinstance(reply, bytes):
            self.send_bytes(status, reply, content_type="text/html")
        else:
            self.send_json(status, reply)

    def fail(self, status, message, outcome="failed"):
        if outcome != "failed":
            self.note = outcome
        return outcome, status, {"success": False, "errors": [message]}

    # reject() and answer() decide a reply without sending it: (outcome for
    # stats, HTTP status or None to drop the connection, JSON object or bytes).

    def reject(self, state, body):
        """The reply to a call refused before any plan applies, else None."""
        if self.command != "POST":
            return self.fail(405, "Use POST.")
        why = signature_error(state, self.headers)
        if why:
            return self.fail(401, why, "bad_signature")
        why = refresh_body_error(body)
        if why:
            return self.fail(400, why, "bad_request")
        return None

    def answer(self, state, body, mode, token_type, gen):
        """The reply to an accepted call, following its plan step."""
        self.note = mode
        if mode.startswith("slow:"):
            self.server.stop.wait(min(int(mode[5:]) / 1000.0, MAX_HOLD_S))
        elif mode == "hang":
            how = state.hold(gen, self.server.stop, self.client_gone)
            self.note = f"hang:{how}"
            if how in ("gone", "stop"):
                return "failed", None, None
            if how == "timeout":
                return self.fail(504, "Held for too long (hang timed out).")

        if mode == "500":
            return self.fail(500, "Internal server error (scripted).")
        if mode == "503":
            return self.fail(503, "Service unavailable (scripted).")
        if mode == "http401":
            return self.fail(401, "Unauthorized (scripted).")
        if mode == "http403":
            return self.fail(403, "Forbidden (scripted).")
        if mode == "unauthorized":
            return self.fail(200, "Invalid refresh token")
        if mode == "echo_secret":
            # Upstreams do quote what they were sent; leanauthd must redact it.
            return self.fail(200, f"Invalid refresh token '{body.get('refreshToken', '')}'"
                                  f" for account {body['accountId']}")
        if mode == "garbage":
            return "failed", 200, b"<html><body>502 Bad Gateway</body></html>"
        if mode == "notoken":
            return "failed", 200, {"success": True, "tokenType": token_type}
        return "ok", 200, {"success": True, "tokenType": token_type,
                           "accessToken": state.issue()}

    def client_gone(self):
        """True once the client has closed its end (EOF readable, no data)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


# --------------------------------------------------------------------------
# Brokerage API stand-in


class BrokerageState:
    """Revoked tokens, counters and the last request of the brokerage stand-in."""

    def __init__(self):
        self.cond = threading.Condition()
        self.in_flight = 0  # a gauge: reset leaves it alone
        self.reset()

    def reset(self):
        with self.cond:
            self.revoked = set()
            self.requests = 0
            self.conn_ids = set()  # distinct connections that carried requests
            self.by_status = {}
            self.last_request = None
            self.authorizations = collections.deque(maxlen=KEEP_LAST)
            self.cond.notify_all()

    def revoke(self, tokens):
        with self.cond:
            self.revoked.update(tokens)

    def add_in_flight(self, delta):
        with self.cond:
            self.in_flight += delta
            self.cond.notify_all()

    def is_revoked(self, token):
        with self.cond:
            return token in self.revoked

    def record(self, echo, status):
        with self.cond:
            self.requests += 1
            self.conn_ids.add(echo["connection"])
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.last_request = echo
            for name, value in echo["headers"]:
                if name.lower() == "authorization":
                    self.authorizations.append(value)
            self.cond.notify_all()

    def stats(self):
        with self.cond:
            return {
                "requests": self.requests,
                "connections": len(self.conn_ids),
                "by_status": dict(self.by_status),
                "last_request": self.last_request,
                "authorizations": list(self.authorizations),
                "revoked": len(self.revoked),
                "in_flight": self.in_flight,
            }


# Special endpoints work under any prefix (/v1/status/503 == /status/503), so
# tests can put them under a profile's allowed_urls path.
RE_STATUS = re.compile(r".*/status/(\d{3})")
RE_LEAF = re.compile(r".*/(redirect|big|slow)")


class BrokerageHandler(Handler):
    name = "brokerage"
    max_body = MAX_BROKERAGE_BODY

    def control_more(self, what):
        if what != "revoke" or self.command != "POST":
            return False
        tokens = self.read_json_object().get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise BadRequest("tokens must be a list of strings")
        self.server.state.revoke(tokens)
        self.send_json(200, {"success": True})
        return True

    def serve(self):
        # in_flight lets a test see a /slow call arrive before it is answered.
        self.server.state.add_in_flight(1)
        try:
            self.serve_counted()
        finally:
            self.server.state.add_in_flight(-1)

    def serve_counted(self):
        body = self.read_body()
        echo = {
            "method": self.command,
            "path": self.raw_path,
            "query": self.raw_query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("latin-1"),
            "body_len": len(body),
            "connection": self.conn_id,
        }
        status, payload, headers = self.route(echo)
        self.server.state.record(echo, status)
        headers = [("X-Standin", "brokerage"),
                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")] + headers
        if isinstance(payload, int):  # /big: payload is a byte count
            self.send_big(status, payload, headers)
        else:
            self.send_json(status, payload, headers)

    def route(self, echo):
        """(status, echo-or-byte-count, extra headers) for one request."""
        auth = self.headers.get("Authorization")
        if auth is None:
            if "/public/" not in self.raw_path + "/":
                self.note = "no_auth"
                return 401, {"error": "missing authorization"}, [("WWW-Authenticate", "Bearer")]
        else:
            scheme, _, token = auth.partition(" ")
            if scheme in ("Bearer", "SessionToken") and self.server.state.is_revoked(token.strip()):
                self.note = "revoked"
                return 401, {"error": "token revoked"}, [("WWW-Authenticate", "Bearer")]

        query = urllib.parse.parse_qs(self.raw_query)
        m = RE_STATUS.fullmatch(self.raw_path)
        if m:
            code = int(m.group(1))
            if not 200 <= code <= 599:
                raise BadRequest("status must be 200..599")
            return code, echo, []
        m = RE_LEAF.fullmatch(self.raw_path)
        leaf = m.group(1) if m else None
        if leaf == "redirect":
            return 302, echo, [("Location", self.server.url() + "echo/redirected")]
        if leaf == "big":
            n = self.int_param(query, "bytes", 0)
            if n > MAX_BIG_BYTES:
                raise BadRequest(f"bytes must be <= {MAX_BIG_BYTES}")
            return 200, n, []
        if leaf == "slow":
            ms = self.int_param(query, "ms", 0)
            self.server.stop.wait(min(ms / 1000.0, MAX_HOLD_S))
        return 200, echo, []

    @staticmethod
    def int_param(query, key, default):
        try:
            value = int(query.get(key, [default])[-1])
        except ValueError:
            raise BadRequest(f"{key} must be an integer") from None
        if value < 0:
            raise BadRequest(f"{key} must be >= 0")
        return value

    def send_big(self, status, n, headers):
        self.send_bytes(status, b"", content_type="application/octet-stream",
                        headers=headers, content_length=n)
        if self.command == "HEAD":
            return
        block = b"x" * 65536
        while n > 0:
            self.wfile.write(block[:n])
            n -= len(block)


# --------------------------------------------------------------------------
# Process: arguments, listening, ready line, shutdown.


def parse_args(argv):
    p = argparse.ArgumentParser(description="Stand-in Lean platform API and brokerage API.")
    p.add_argument("--user-id", required=True)
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--api-token")
    tok.add_argument("--api-token-file", metavar="PATH")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--lean-port", type=int, default=0)
    p.add_argument("--brokerage-port", type=int, default=0)
    p.add_argument("--token-prefix", default="tok-")
    p.add_argument("--ready-file", metavar="PATH")
    return p.parse_args(argv)


def usage_error(msg):
    print(f"standin: {msg}", file=sys.stderr)
    sys.exit(2)


def loopback_host(host):
    """The literal address to bind, or None if host is not loopback."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return str(addr) if addr.is_loopback else None


def read_api_token(args):
    if args.api_token is not None:
        token = args.api_token
    else:
        try:
            with open(args.api_token_file, encoding="utf-8") as f:
                token = f.read().rstrip("\r\n")  # mounted secrets end in a newline
        except OSError as e:
            usage_error(f"--api-token-file: {e.strerror}")
    if not token:
        usage_error("the API token is empty")
    return token


def write_atomically(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".standin-ready-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    args = parse_args(argv)
    host = loopback_host(args.host)
    if host is None:
        usage_error(f"--host {args.host!r} is not a loopback address")
    for opt in ("lean_port", "brokerage_port"):
        if not 0 <= getattr(args, opt) <= 65535:
            usage_error(f"--{opt.replace('_', '-')} must be 0..65535")
    api_token = read_api_token(args)

    stop = threading.Event()
    try:
        lean = StandinServer(host, args.lean_port, LeanHandler,
                             LeanState(args.user_id, api_token, args.token_prefix), stop)
        brokerage = StandinServer(host, args.brokerage_port, BrokerageHandler,
                                  BrokerageState(), stop)
    except OSError as e:
        print(f"standin: cannot listen on {host}: {e.strerror}", file=sys.stderr)
        return 1

    # Block the signals before any thread starts (threads inherit the mask)
    # and take them synchronously below: no handler runs inside a lock.
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                                name=f"serve-{s.RequestHandlerClass.name}", daemon=True)
               for s in (lean, brokerage)]
    for t in threads:
        t.start()

    ready = json.dumps({"lean_url": lean.url(), "brokerage_url": brokerage.url(),
                        "pid": os.getpid()})
    if args.ready_file:
        try:
            write_atomically(args.ready_file, ready + "\n")
        except OSError as e:
            print(f"standin: --ready-file: {e.strerror}", file=sys.stderr)
            return 1
    sys.stdout.write(ready + "\n")
    sys.stdout.flush()

    sig = signal.sigwait(signals)
    print(f"standin: {signal.Signals(sig).name}, stopping", file=sys.stderr)
    stop.set()
    for s in (lean, brokerage):
        with s.state.cond:  # wake held requests and waiters at once
            s.state.cond.notify_all()
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
