"""errors -- the exceptions of the leanauth client, one per status code.

Every failure of a call raises a :class:`LeanAuthError`. leanauthd reports
failures with gRPC's canonical status codes (``RpcResponse.status.code``);
:func:`error_for` maps a code to its subclass, in one table, and the client
maps transport failures onto the same codes (no reply in time:
:class:`DeadlineExceeded`; not connected: :class:`Unavailable`; the client
was closed: :class:`Cancelled`). Messages never contain a secret: leanauthd
redacts its own, and the client never puts a token into one.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Type

from ._proto.leanauth.v1 import rpc_pb2

__all__ = [
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
]


def code_name(code: int) -> str:
    """Return the canonical name of a status code (``5`` -> ``"NOT_FOUND"``).

    Codes this version does not know are named ``CODE_<n>``.
    """
    try:
        return str(rpc_pb2.Code.Name(code))
    except ValueError:
        return f"CODE_{code}"


class LeanAuthError(Exception):
    """A call failed. ``code`` is the gRPC status code, ``message`` the detail.

    Catch this to handle every failure of the client; catch a subclass for
    one status. ``str(err)`` is ``"NOT_FOUND: unknown profile \\"x\\""``.
    """

    #: The status code a subclass stands for (UNKNOWN for the base class).
    CODE: int = rpc_pb2.UNKNOWN

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(code, message)
        self.code: int = int(code)
        self.message: str = message

    @property
    def code_name(self) -> str:
        """The code's canonical name, e.g. ``"UNAVAILABLE"``."""
        return code_name(self.code)

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}" if self.message else self.code_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"

    def __reduce__(self) -> Tuple[Any, ...]:
        # Subclasses take only a message; rebuild through the one table.
        return (error_for, (self.code, self.message))


class _CodedError(LeanAuthError):
    """Base of the per-code subclasses: constructed from a message alone."""

    def __init__(self, message: str = "") -> None:
        super().__init__(self.CODE, message)


class Cancelled(_CodedError):
    """CANCELLED (1): the call was abandoned, e.g. the client was closed."""

    CODE = rpc_pb2.CANCELLED


class InvalidArgument(_CodedError):
    """INVALID_ARGUMENT (3): a malformed request (bad HTTP method, bad URL...)."""

    CODE = rpc_pb2.INVALID_ARGUMENT


class DeadlineExceeded(_CodedError):
    """DEADLINE_EXCEEDED (4): no answer within the call's timeout."""

    CODE = rpc_pb2.DEADLINE_EXCEEDED


class NotFound(_CodedError):
    """NOT_FOUND (5): no such profile."""

    CODE = rpc_pb2.NOT_FOUND


class PermissionDenied(_CodedError):
    """PERMISSION_DENIED (7): e.g. a Send URL outside the profile's allowed_urls."""

    CODE = rpc_pb2.PERMISSION_DENIED


class ResourceExhausted(_CodedError):
    """RESOURCE_EXHAUSTED (8): a request or reply too large, or the server full."""

    CODE = rpc_pb2.RESOURCE_EXHAUSTED


class Unimplemented(_CodedError):
    """UNIMPLEMENTED (12): the server does not know the method."""

    CODE = rpc_pb2.UNIMPLEMENTED


class Internal(_CodedError):
    """INTERNAL (13): a bug, or a reply that could not be decoded."""

    CODE = rpc_pb2.INTERNAL


class Unavailable(_CodedError):
    """UNAVAILABLE (14): leanauthd or its upstream cannot be reached right now."""

    CODE = rpc_pb2.UNAVAILABLE


class Unauthenticated(_CodedError):
    """UNAUTHENTICATED (16): the Lean API refused to issue a token."""

    CODE = rpc_pb2.UNAUTHENTICATED


# The one mapping from status codes to exception classes.
_BY_CODE: Dict[int, Type[_CodedError]] = {
    cls.CODE: cls
    for cls in (
        Cancelled,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        PermissionDenied,
        ResourceExhausted,
        Unimplemented,
        Internal,
        Unavailable,
        Unauthenticated,
    )
}


def error_for(code: int, message: str = "") -> LeanAuthError:
    """Return the exception for a non-OK status code.

    Codes without a subclass of their own (UNKNOWN, ABORTED, codes added
    later, ...) give a plain :class:`LeanAuthError` carrying the code.
    """
    cls = _BY_CODE.get(int(code))
    if cls is not None:
        return cls(message)
    return LeanAuthError(code, message)
