"""leanauth -- Python client of leanauthd, the token broker for Lean trading processes.

>>> from leanauth import Client
>>> with Client("tcp://127.0.0.1:7450") as c:
...     token = c.get_access_token("schwab")
...     r = c.send("GET", "https://api.schwabapi.com/trader/v1/accounts", profile="schwab")

See README.md for the API. ``LeanAuth`` (the requests adapter) is imported
on first use, so requests stays optional.
"""

from __future__ import annotations

from typing import Any

from .aio import AsyncClient, AsyncSubscription
from .client import Client, Subscription
from .errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    LeanAuthError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    code_name,
    error_for,
)
from .events import (
    AuthenticationDegraded,
    AuthenticationFailed,
    AuthenticationRecovered,
    Event,
    TokenRefreshed,
    decode_event,
)
from ._wire import DEFAULT_EVENTS_URL, DEFAULT_URL, REPLY_GRACE_MS, RESEND_MARGIN_MS
from .types import Response, TLSConfig, Token, TokenType

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "Subscription",
    "AsyncSubscription",
    # LeanAuth is left out so that `from leanauth import *` never needs requests.
    "Token",
    "TokenType",
    "Response",
    "TLSConfig",
    "Event",
    "AuthenticationFailed",
    "TokenRefreshed",
    "AuthenticationDegraded",
    "AuthenticationRecovered",
    "decode_event",
    "LeanAuthError",
    "Cancelled",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "Unauthenticated",
    "error_for",
    "code_name",
    "DEFAULT_URL",
    "DEFAULT_EVENTS_URL",
    "REPLY_GRACE_MS",
    "RESEND_MARGIN_MS",
]


def __getattr__(name: str) -> Any:
    # PEP 562: import the requests adapter (and requests) only when used.
    if name == "LeanAuth":
        from .requests_auth import LeanAuth

        return LeanAuth
    raise AttributeError(f"module 'leanauth' has no attribute {name!r}")
