"""Send end to end: leanauthd calls the brokerage stand-in with the token."""

from __future__ import annotations

import pytest

import leanauth

from conftest import CANARY_ACCESS_PREFIX, Env


def test_round_trip(daemon: Env, client: leanauth.Client) -> None:
    url = daemon.allowed_url + "orders?x=1"
    r = client.send(
        "post", url,
        headers=[("Content-Type", "application/json"), ("X-Trace", "a"), ("X-Trace", "b"),
                 ("Authorization", "Bearer forged")],
        body='{"qty": 1, "sym": "€"}',
    )
    assert r.status_code == 200
    assert r.ok
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/api/orders"
    assert echo["query"] == "x=1"
    assert echo["body"].encode("latin-1").decode("utf-8") == '{"qty": 1, "sym": "€"}'
    sent = echo["headers"]
    auth = [v for n, v in sent if n.lower() == "authorization"]
    assert len(auth) == 1 and auth[0].startswith("Bearer " + CANARY_ACCESS_PREFIX), "replaced, not added"
    assert [v for n, v in sent if n.lower() == "x-trace"] == ["a", "b"]
    # Upstream headers come back in order, repeated ones included.
    assert r.header("x-standin") == "brokerage"
    assert r.header("X-STANDIN") == "brokerage"
    assert r.header("x-missing") is None
    assert r.header("x-missing", "d") == "d"
    assert r.header_values("set-cookie") == ["a=1", "b=2"]
    assert ("Set-Cookie", "a=1") in r.headers or ("set-cookie", "a=1") in r.headers
    assert "application/json" in (r.header("content-type") or "")
    assert isinstance(r.text, str) and r.text.startswith("{")
    assert "CANARY" not in repr(r)
    # The token used is the one GetAccessToken hands out.
    assert auth[0] == client.get_access_token().authorization


def test_headers_as_a_dict_and_bytes_body(daemon: Env, client: leanauth.Client) -> None:
    r = client.send("PUT", daemon.allowed_url + "x", headers={"X-One": "1"}, body=b"\x00\xffbin")
    echo = r.json()
    assert echo["method"] == "PUT"
    assert ["X-One", "1"] in echo["headers"]
    assert echo["body_len"] == 5


def test_upstream_status_passes_through(daemon: Env, client: leanauth.Client) -> None:
    r = client.send("GET", daemon.allowed_url + "status/503")
    assert r.status_code == 503
    assert not r.ok
    r = client.send("GET", daemon.allowed_url + "redirect")
    assert r.status_code == 302, "redirects are not followed"
    assert r.header("location", "").endswith("/echo/redirected")


def test_head_has_no_body(daemon: Env, client: leanauth.Client) -> None:
    r = client.send("HEAD", daemon.allowed_url + "x")
    assert r.status_code == 200
    assert r.body == b""


def test_url_outside_the_allowlist_is_permission_denied(daemon: Env, client: leanauth.Client) -> None:
    for url in (daemon.standin.brokerage_url + "other/", daemon.standin.brokerage_url + "apix",
                "http://example.invalid/api/"):
        with pytest.raises(leanauth.PermissionDenied) as ei:
            client.send("GET", url)
        assert ei.value.code == 7
    assert daemon.standin.broker_stat("requests") == 0, "nothing was sent"


def test_bad_http_method_is_invalid_argument(daemon: Env, client: leanauth.Client) -> None:
    with pytest.raises(leanauth.InvalidArgument) as ei:
        client.send("BREW", daemon.allowed_url + "pot")
    assert ei.value.code == 3
    assert "GET" in ei.value.message
    assert daemon.standin.broker_stat("requests") == 0


def test_oversized_request_is_resource_exhausted(daemon: Env, client: leanauth.Client) -> None:
    # max_body_bytes is 64 KiB; leanauthd refuses requests past it plus
    # 64 KiB of envelope slack without reading further.
    with pytest.raises(leanauth.ResourceExhausted) as ei:
        client.send("POST", daemon.allowed_url + "big", body=b"x" * (256 * 1024))
    assert ei.value.code == 8
    assert daemon.standin.broker_stat("requests") == 0
    # The server and the client live on.
    assert client.send("GET", daemon.allowed_url + "x").status_code == 200


def test_unreachable_upstream_is_unavailable(env: Env) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.profile()["send"]["allowed_urls"].append(f"http://127.0.0.1:{port}/")
    env.start()
    with pytest.raises(leanauth.Unavailable):
        env.client().send("GET", f"http://127.0.0.1:{port}/x")


def test_send_timeout_is_deadline_exceeded(daemon: Env, client: leanauth.Client) -> None:
    with pytest.raises(leanauth.DeadlineExceeded):
        client.send("GET", daemon.allowed_url + "slow?ms=3000", timeout=0.3)


def test_401_is_refreshed_and_retried_by_the_server(daemon: Env, client: leanauth.Client) -> None:
    first = client.get_access_token()
    daemon.standin.broker("_control/revoke", {"tokens": [first.access_token]})
    r = client.send("GET", daemon.allowed_url + "x")
    assert r.status_code == 200
    assert client.get_access_token().generation == 2


def test_client_side_argument_checks(client: leanauth.Client) -> None:
    with pytest.raises(leanauth.InvalidArgument):
        client.send("GET", "http://x/", headers=[("only-a-name",)])  # type: ignore[list-item]
    with pytest.raises(leanauth.InvalidArgument):
        client.send("GET", "http://x/", body=12)  # type: ignore[arg-type]
    with pytest.raises(leanauth.InvalidArgument):
        client.send("GET", "")
    with pytest.raises(leanauth.InvalidArgument):
        client.get_access_token(timeout=0)
    with pytest.raises(leanauth.InvalidArgument):
        client.get_access_token(timeout=float("nan"))
