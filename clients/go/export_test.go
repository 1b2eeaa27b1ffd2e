package leanauth

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
)

// Hooks for the external (leanauth_test) tests.

// Invoke makes a raw call with any method name.
func (c *Client) Invoke(ctx context.Context, method string, req, resp proto.Message) error {
	return c.call(ctx, method, req, resp)
}

// WithSocketResendForTest sets the REQ socket's default resend time, which
// every call must override.
func WithSocketResendForTest(d time.Duration) Option {
	return func(o *options) { o.socketResend = d }
}

var (
	BuildRequest  = buildRequest
	ParseResponse = parseResponse
	TimeoutMS     = timeoutMS
)
