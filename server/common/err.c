// err.c -- the single place where errors become wire status codes.
#include "err.h"

#include <nng/nng.h>

static const struct {
	int         status;
	const char *text;
} la_err_table[LA_ERR_COUNT_] = {
    [LA_OK]            = {LA_STATUS_OK, "ok"},
    [LA_ERR_INVALID]   = {LA_STATUS_INVALID_ARGUMENT, "invalid argument"},
    [LA_ERR_TIMEOUT]   = {LA_STATUS_DEADLINE_EXCEEDED, "deadline exceeded"},
    [LA_ERR_NOT_FOUND] = {LA_STATUS_NOT_FOUND, "not found"},
    [LA_ERR_DENIED]    = {LA_STATUS_PERMISSION_DENIED, "permission denied"},
    [LA_ERR_TOO_BIG]   = {LA_STATUS_RESOURCE_EXHAUSTED, "too large"},
    [LA_ERR_BUSY]      = {LA_STATUS_RESOURCE_EXHAUSTED, "server busy"},
    [LA_ERR_UNIMPLEMENTED]   = {LA_STATUS_UNIMPLEMENTED, "unimplemented"},
    [LA_ERR_INTERNAL]        = {LA_STATUS_INTERNAL, "internal error"},
    [LA_ERR_NOMEM]           = {LA_STATUS_INTERNAL, "out of memory"},
    [LA_ERR_UNAVAILABLE]     = {LA_STATUS_UNAVAILABLE, "unavailable"},
    [LA_ERR_SHUTDOWN]        = {LA_STATUS_UNAVAILABLE, "shutting down"},
    [LA_ERR_UNAUTHENTICATED] = {LA_STATUS_UNAUTHENTICATED, "unauthenticated"},
    [LA_ERR_PENDING]         = {LA_STATUS_INTERNAL, "pending"},
};

int
la_err_status(la_err e)
{
	if ((unsigned) e >= LA_ERR_COUNT_) {
		return (LA_STATUS_INTERNAL);
	}
	return (la_err_table[e].status);
}

const char *
la_strerror(la_err e)
{
	if ((unsigned) e >= LA_ERR_COUNT_) {
		return ("unknown error");
	}
	return (la_err_table[e].text);
}

la_err
la_err_from_nng(int rv)
{
	switch (rv) {
	case 0:
		return (LA_OK);
	case NNG_ETIMEDOUT:
		return (LA_ERR_TIMEOUT);
	case NNG_ENOMEM:
		return (LA_ERR_NOMEM);
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return (LA_ERR_SHUTDOWN);
	case NNG_EMSGSIZE:
		return (LA_ERR_TOO_BIG);
	case NNG_EINVAL:
		return (LA_ERR_INVALID);
	default:
		return (LA_ERR_INTERNAL);
	}
}
