from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
TOKEN_TYPE_BEARER: TokenType
TOKEN_TYPE_SESSION_TOKEN: TokenType
TOKEN_TYPE_UNSPECIFIED: TokenType

class GetAccessTokenRequest(_message.Message):
    __slots__ = ["force_refresh", "if_generation", "profile"]
    FORCE_REFRESH_FIELD_NUMBER: _ClassVar[int]
    IF_GENERATION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    force_refresh: bool
    if_generation: int
    profile: str
    def __init__(self, profile: _Optional[str] = ..., force_refresh: bool = ..., if_generation: _Optional[int] = ...) -> None: ...

class GetAccessTokenResponse(_message.Message):
    __slots__ = ["access_token", "expires_at_unix_ms", "generation", "token_type"]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expires_at_unix_ms: int
    generation: int
    token_type: TokenType
    def __init__(self, token_type: _Optional[_Union[TokenType, str]] = ..., access_token: _Optional[str] = ..., expires_at_unix_ms: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ["name", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ["body", "headers", "method", "profile", "timeout_ms", "url"]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    method: str
    profile: str
    timeout_ms: int
    url: str
    def __init__(self, profile: _Optional[str] = ..., method: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ["body", "headers", "status_code"]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    status_code: int
    def __init__(self, status_code: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class TokenType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
