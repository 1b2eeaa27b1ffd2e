// test_err.c -- the one table from la_err to wire status codes.
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <string.h>

#include "common/err.h"

Test(err, every_error_has_its_canonical_status)
{
	struct {
		la_err e;
		int    status;
	} want[] = {
	    {LA_OK, 0},
	    {LA_ERR_INVALID, 3},
	    {LA_ERR_TIMEOUT, 4},
	    {LA_ERR_NOT_FOUND, 5},
	    {LA_ERR_DENIED, 7},
	    {LA_ERR_TOO_BIG, 8},
	    {LA_ERR_BUSY, 8},
	    {LA_ERR_UNIMPLEMENTED, 12},
	    {LA_ERR_INTERNAL, 13},
	    {LA_ERR_NOMEM, 13},
	    {LA_ERR_UNAVAILABLE, 14},
	    {LA_ERR_SHUTDOWN, 14},
	    {LA_ERR_UNAUTHENTICATED, 16},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert_eq(la_err_status(want[i].e), want[i].status,
		    "la_err %d", (int) want[i].e);
	}
}

Test(err, every_error_has_a_description)
{
	for (int e = 0; e < LA_ERR_COUNT_; e++) {
		const char *s = la_strerror((la_err) e);
		cr_assert_not_null(s);
		cr_assert_gt(strlen(s), 0, "la_err %d has no text", e);
	}
	cr_assert_str_eq(la_strerror((la_err) 999), "unknown error");
	cr_assert_eq(la_err_status((la_err) 999), 13);
}

Test(err, nng_errors_translate_once)
{
	cr_assert_eq(la_err_from_nng(0), LA_OK);
	cr_assert_eq(la_err_from_nng(NNG_ETIMEDOUT), LA_ERR_TIMEOUT);
	cr_assert_eq(la_err_from_nng(NNG_ECLOSED), LA_ERR_SHUTDOWN);
	cr_assert_eq(la_err_from_nng(NNG_ECANCELED), LA_ERR_SHUTDOWN);
	cr_assert_eq(la_err_from_nng(NNG_ENOMEM), LA_ERR_NOMEM);
	cr_assert_eq(la_err_from_nng(NNG_EMSGSIZE), LA_ERR_TOO_BIG);
	cr_assert_eq(la_err_from_nng(NNG_EADDRINUSE), LA_ERR_INTERNAL);
}
