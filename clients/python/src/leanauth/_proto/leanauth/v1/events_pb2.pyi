from leanauth._proto.leanauth.v1 import token_pb2 as _token_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthenticationDegraded(_message.Message):
    __slots__ = ["at_unix_ms", "attempts", "error", "profile", "token_valid_until_unix_ms"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_VALID_UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    at_unix_ms: int
    attempts: int
    error: str
    profile: str
    token_valid_until_unix_ms: int
    def __init__(self, profile: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., token_valid_until_unix_ms: _Optional[int] = ..., at_unix_ms: _Optional[int] = ...) -> None: ...

class AuthenticationFailed(_message.Message):
    __slots__ = ["account_id", "at_unix_ms", "attempts", "brokerage", "error", "profile"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BROKERAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    at_unix_ms: int
    attempts: int
    brokerage: str
    error: str
    profile: str
    def __init__(self, profile: _Optional[str] = ..., brokerage: _Optional[str] = ..., account_id: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., at_unix_ms: _Optional[int] = ...) -> None: ...

class AuthenticationRecovered(_message.Message):
    __slots__ = ["at_unix_ms", "profile"]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    at_unix_ms: int
    profile: str
    def __init__(self, profile: _Optional[str] = ..., at_unix_ms: _Optional[int] = ...) -> None: ...

class TokenRefreshed(_message.Message):
    __slots__ = ["at_unix_ms", "expires_at_unix_ms", "generation", "profile", "token_type"]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    at_unix_ms: int
    expires_at_unix_ms: int
    generation: int
    profile: str
    token_type: _token_pb2.TokenType
    def __init__(self, profile: _Optional[str] = ..., token_type: _Optional[_Union[_token_pb2.TokenType, str]] = ..., expires_at_unix_ms: _Optional[int] = ..., at_unix_ms: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...
