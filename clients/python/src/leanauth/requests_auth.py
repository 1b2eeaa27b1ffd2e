"""requests_auth -- a requests auth adapter that takes tokens from leanauthd.

``requests`` is optional: ``leanauth`` imports this module (and so
requests) only when ``leanauth.LeanAuth`` is first used.
"""

from __future__ import annotations

from typing import Any, Optional

try:
    import requests
    from requests.auth import AuthBase
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("leanauth.LeanAuth needs requests: pip install 'leanauth[requests]'") from e

from .client import Client

__all__ = ["LeanAuth"]


class LeanAuth(AuthBase):
    """``requests`` auth that sets ``Authorization: <type> <token>`` from leanauthd.

    On a 401 answer it asks leanauthd for a fresh token once
    (``force_refresh`` with ``if_generation`` set to the rejected token's
    generation, so that many requests rejected together cause a single
    refresh) and retries the request once with it; a second 401 is returned
    as it is. The state of each request travels with the request, so one
    ``LeanAuth`` can serve many threads (as its ``Client`` can).

    >>> session.auth = LeanAuth(client, "schwab")
    >>> session.get("https://api.schwabapi.com/trader/v1/accounts")
    """

    def __init__(self, client: Client, profile: str = "", *, timeout: Optional[float] = None) -> None:
        """
        Args:
            client: a :class:`leanauth.Client` (blocking; requests is blocking).
            profile: the leanauthd profile; "" is the first profile.
            timeout: deadline of each token call (default: the client's).
        """
        self.client = client
        self.profile = profile
        self.timeout = timeout

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.client.get_access_token(self.profile, timeout=self.timeout)
        r.headers["Authorization"] = token.authorization
        # Per-request state rides on the request (copied to the retry below).
        setattr(r, "_leanauth_generation", token.generation)
        setattr(r, "_leanauth_retried", False)
        r.register_hook("response", self._on_response)
        return r

    def _on_response(self, resp: requests.Response, **kwargs: Any) -> requests.Response:
        """Response hook: on a first 401, refresh the token and resend once."""
        req = resp.request
        if resp.status_code != 401 or getattr(req, "_leanauth_retried", True):
            return resp
        generation = getattr(req, "_leanauth_generation", None)
        token = self.client.get_access_token(
            self.profile, force_refresh=True, if_generation=generation, timeout=self.timeout
        )
        # Drain the 401 so its connection can be reused.
        resp.content  # noqa: B018
        resp.close()
        prep = req.copy()
        if getattr(req, "_body_position", None) is not None:
            requests.utils.rewind_body(prep)  # a streamed body: back to its start
        jar = prep._cookies
        if jar is not None:
            requests.cookies.extract_cookies_to_jar(jar, req, resp.raw)
            prep.prepare_cookies(jar)
        prep.headers["Authorization"] = token.authorization
        setattr(prep, "_leanauth_generation", token.generation)
        setattr(prep, "_leanauth_retried", True)
        retry: requests.Response = resp.connection.send(prep, **kwargs)
        retry.history.append(resp)
        retry.request = prep
        return retry

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LeanAuth)
            and other.client is self.client
            and other.profile == self.profile
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LeanAuth({self.client!r}, profile={self.profile!r})"
