// consumer.c -- a program outside the tree that uses the installed
// libleanauth: built with pkg-config and with find_package(leanauth) by
// tests/install/check.sh.
#include <leanauth.h>
#include <stdio.h>

int
main(void)
{
	leanauth_client *c;
	leanauth_error   err;
	// Nothing listens here: the call must fail cleanly with UNAVAILABLE.
	leanauth_options o  = {.timeout_ms = 200, .connect_timeout_ms = 200};
	int              rv = leanauth_open(&c, "tcp://127.0.0.1:1", &o, &err);
	printf("%s\n", leanauth_code_name(rv));
	return (rv == LEANAUTH_UNAVAILABLE ? 0 : 1);
}
