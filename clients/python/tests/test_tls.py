"""tls+tcp:// to leanauthd: server verified by its CA, optional client certificate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import leanauth

from conftest import Env

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _cert(dir: Path, name: str, cn: str) -> tuple:
    """A self-signed EC certificate for cn (and 127.0.0.1), with its key."""
    cert, key = dir / f"{name}.crt", dir / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def _tls_env(env: Env, require_client_cert: bool = False, client_ca: str = "") -> tuple:
    cert, key = _cert(env.dir, "server", "localhost")
    env.cfg["listen"]["rpc"] = "tls+tcp://127.0.0.1:0"
    env.cfg["listen"]["events"] = "tls+tcp://127.0.0.1:0"
    env.cfg["listen"]["tls"] = {"cert_file": cert, "key_file": key}
    if require_client_cert:
        env.cfg["listen"]["tls"].update(ca_file=client_ca, require_client_cert=True)
    env.start()
    assert env.rpc_url.startswith("tls+tcp://127.0.0.1:")
    return cert, key


def test_verified_server(env: Env) -> None:
    cert, _ = _tls_env(env)
    tls = leanauth.TLSConfig(ca_file=cert, server_name="localhost")
    with leanauth.Client(env.rpc_url, tls=tls, events_url=env.events_url) as c:
        with c.subscribe([leanauth.TokenRefreshed], timeout=10) as sub:
            assert sub.wait_connected(5)
            t = c.get_access_token()
            assert sub.get().generation == t.generation == 1
        assert c.health()


def test_wrong_ca_does_not_connect(env: Env) -> None:
    _tls_env(env)
    other, _ = _cert(env.dir, "other", "localhost")
    with leanauth.Client(env.rpc_url, tls=leanauth.TLSConfig(ca_file=other, server_name="localhost"),
                         timeout=0.5) as c:
        with pytest.raises(leanauth.Unavailable):
            c.get_access_token()


def test_client_certificate(env: Env) -> None:
    ccert, ckey = _cert(env.dir, "client", "trader")
    cert, _ = _tls_env(env, require_client_cert=True, client_ca=ccert)
    tls = leanauth.TLSConfig(ca_file=cert, cert_file=ccert, key_file=ckey, server_name="localhost")
    with leanauth.Client(env.rpc_url, tls=tls) as c:
        assert c.get_access_token().generation == 1
    # Without one, the server refuses the connection.
    with leanauth.Client(env.rpc_url, tls=leanauth.TLSConfig(ca_file=cert, server_name="localhost"),
                         timeout=0.5) as c:
        with pytest.raises(leanauth.Unavailable):
            c.get_access_token()


def test_async_client_over_tls(env: Env) -> None:
    import asyncio

    cert, _ = _tls_env(env)

    async def main() -> int:
        async with leanauth.AsyncClient(env.rpc_url, tls=leanauth.TLSConfig(ca_file=cert)) as c:
            return (await c.get_access_token()).generation

    assert asyncio.run(asyncio.wait_for(main(), 30)) == 1
