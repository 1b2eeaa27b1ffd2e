// err.h -- the one error type of leanauthd, and the one table that maps it
// to the wire's status codes (gRPC canonical numbers, DESIGN.md).
#ifndef LA_ERR_H
#define LA_ERR_H

typedef enum la_err {
	LA_OK = 0,
	LA_ERR_INVALID,   // malformed input            -> INVALID_ARGUMENT
	LA_ERR_TIMEOUT,   // caller's deadline passed   -> DEADLINE_EXCEEDED
	LA_ERR_NOT_FOUND, // unknown profile            -> NOT_FOUND
	LA_ERR_DENIED,    // URL not allowed            -> PERMISSION_DENIED
	LA_ERR_TOO_BIG,   // message/body over a cap    -> RESOURCE_EXHAUSTED
	LA_ERR_BUSY,      // worker queue full          -> RESOURCE_EXHAUSTED
	LA_ERR_UNIMPLEMENTED,   // unknown method             -> UNIMPLEMENTED
	LA_ERR_INTERNAL,        // a bug or a library failure -> INTERNAL
	LA_ERR_NOMEM,           // allocation failed          -> INTERNAL
	LA_ERR_UNAVAILABLE,     // upstream down/garbled      -> UNAVAILABLE
	LA_ERR_SHUTDOWN,        // server is stopping         -> UNAVAILABLE
	LA_ERR_UNAUTHENTICATED, // upstream refused us        -> UNAUTHENTICATED
	LA_ERR_PENDING,         // not an error: completes later through an aio
	LA_ERR_COUNT_
} la_err;

// Canonical status codes (the subset leanauthd produces).
enum {
	LA_STATUS_OK                 = 0,
	LA_STATUS_INVALID_ARGUMENT   = 3,
	LA_STATUS_DEADLINE_EXCEEDED  = 4,
	LA_STATUS_NOT_FOUND          = 5,
	LA_STATUS_PERMISSION_DENIED  = 7,
	LA_STATUS_RESOURCE_EXHAUSTED = 8,
	LA_STATUS_UNIMPLEMENTED      = 12,
	LA_STATUS_INTERNAL           = 13,
	LA_STATUS_UNAVAILABLE        = 14,
	LA_STATUS_UNAUTHENTICATED    = 16,
};

// la_err_status returns the wire status code for e.
int la_err_status(la_err e);

// la_strerror returns a short static description of e.
const char *la_strerror(la_err e);

// la_err_from_nng translates an nng error number, once, at the nng edge.
la_err la_err_from_nng(int rv);

#endif // LA_ERR_H
