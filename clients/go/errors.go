package leanauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
)

// Code is a status code from leanauthd: gRPC's canonical codes, with the same
// numbers (leanauth.v1.Code).
type Code int32

// The status codes. leanauthd uses OK, InvalidArgument, DeadlineExceeded,
// NotFound, PermissionDenied, ResourceExhausted, Unimplemented, Internal,
// Unavailable and Unauthenticated; the rest exist so that any code survives.
const (
	OK                 Code = Code(leanauthpb.Code_OK)
	Canceled           Code = Code(leanauthpb.Code_CANCELLED)
	Unknown            Code = Code(leanauthpb.Code_UNKNOWN)
	InvalidArgument    Code = Code(leanauthpb.Code_INVALID_ARGUMENT)
	DeadlineExceeded   Code = Code(leanauthpb.Code_DEADLINE_EXCEEDED)
	NotFound           Code = Code(leanauthpb.Code_NOT_FOUND)
	AlreadyExists      Code = Code(leanauthpb.Code_ALREADY_EXISTS)
	PermissionDenied   Code = Code(leanauthpb.Code_PERMISSION_DENIED)
	ResourceExhausted  Code = Code(leanauthpb.Code_RESOURCE_EXHAUSTED)
	FailedPrecondition Code = Code(leanauthpb.Code_FAILED_PRECONDITION)
	Aborted            Code = Code(leanauthpb.Code_ABORTED)
	OutOfRange         Code = Code(leanauthpb.Code_OUT_OF_RANGE)
	Unimplemented      Code = Code(leanauthpb.Code_UNIMPLEMENTED)
	Internal           Code = Code(leanauthpb.Code_INTERNAL)
	Unavailable        Code = Code(leanauthpb.Code_UNAVAILABLE)
	DataLoss           Code = Code(leanauthpb.Code_DATA_LOSS)
	Unauthenticated    Code = Code(leanauthpb.Code_UNAUTHENTICATED)
)

// String returns the code's proto name, e.g. "NOT_FOUND", or "CODE(42)" for
// a number this client does not know.
func (c Code) String() string {
	if name, ok := leanauthpb.Code_name[int32(c)]; ok {
		return name
	}
	return fmt.Sprintf("CODE(%d)", int32(c))
}

// Error is a failed call: leanauthd's status, or one the client made up for a
// failure on its side (no connection, no reply in time, a malformed reply).
// Message never contains a secret.
//
// Compare with the sentinels: errors.Is(err, leanauth.ErrNotFound). Deadline
// errors also match context.DeadlineExceeded, and cancellations
// context.Canceled. errors.As(err, &e) with e *Error gives Code and Message.
type Error struct {
	Code    Code
	Message string
}

// Error formats the error as "leanauth: CODE: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return "leanauth: " + e.Code.String()
	}
	return "leanauth: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is an *Error with the same code (so any error
// matches its code's sentinel), or the context error matching a
// DEADLINE_EXCEEDED or CANCELLED code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t != nil && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	switch target {
	case context.DeadlineExceeded:
		return e.Code == DeadlineExceeded
	case context.Canceled:
		return e.Code == Canceled
	}
	return false
}

// Sentinel errors, one per code leanauthd returns. They carry no message, so
// errors.Is matches any *Error with their code.
var (
	ErrInvalidArgument   = &Error{Code: InvalidArgument}
	ErrDeadlineExceeded  = &Error{Code: DeadlineExceeded}
	ErrNotFound          = &Error{Code: NotFound}
	ErrPermissionDenied  = &Error{Code: PermissionDenied}
	ErrResourceExhausted = &Error{Code: ResourceExhausted}
	ErrUnimplemented     = &Error{Code: Unimplemented}
	ErrInternal          = &Error{Code: Internal}
	ErrUnavailable       = &Error{Code: Unavailable}
	ErrUnauthenticated   = &Error{Code: Unauthenticated}
	ErrCanceled          = &Error{Code: Canceled}
)

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns err's code: OK for nil, the code of an *Error in its chain,
// DeadlineExceeded or Canceled for the context errors, Unknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return Canceled
	}
	return Unknown
}
