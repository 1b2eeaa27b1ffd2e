package leanauth

import (
	"context"
	"net/http"
	"sort"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
)

// Header is one HTTP header line, for callers that need exact order or
// repeated names.
type Header struct {
	Name, Value string
}

// SendRequest is an HTTP call for leanauthd to make with the profile's
// token.
type SendRequest struct {
	// Profile names the token's profile; "" means leanauthd's first.
	Profile string
	// Method is GET, HEAD, POST, PUT, PATCH or DELETE ("" means GET).
	Method string
	// URL must lie under one of the profile's send.allowed_urls, or the call
	// fails with ErrPermissionDenied and nothing is sent.
	URL string
	// Header is sent first, names in sorted order, values in order.
	Header http.Header
	// Headers are sent after Header, in order.
	Headers []Header
	// Body is the request body (may be nil).
	Body []byte
}

// SendResponse is the upstream's answer, whatever its status.
type SendResponse struct {
	// StatusCode is the upstream's HTTP status (a 401 after leanauthd's one
	// refresh-and-retry, a 3xx as it came: redirects are not followed).
	StatusCode int
	// Header holds the response headers, names canonicalized.
	Header http.Header
	// Headers holds them as received, in order.
	Headers []Header
	// Body is the response body.
	Body []byte
}

// Send has leanauthd make an HTTP call with the profile's token in the
// Authorization header (replacing any the request has), refreshing the token
// and retrying once on a 401. The upstream's status, whatever it is, is in
// the response; an error means the call itself failed: ErrPermissionDenied
// (URL not allowed), ErrInvalidArgument (bad method or URL),
// ErrResourceExhausted (body too large), ErrDeadlineExceeded,
// ErrUnavailable (upstream unreachable), ErrUnimplemented (Send disabled).
//
// The context's deadline (or WithTimeout's) bounds the whole call, upstream
// included. A Send is never sent to leanauthd twice (see the package doc).
func (c *Client) Send(ctx context.Context, r *SendRequest) (*SendResponse, error) {
	timeout, ok := c.callTimeout(ctx)
	if !ok {
		return nil, errorf(DeadlineExceeded, "%s: deadline passed before the call", MethodSend)
	}
	req := sendRequestToPB(r, timeoutMS(timeout))
	var resp leanauthpb.SendResponse
	if err := c.call(ctx, MethodSend, req, &resp); err != nil {
		return nil, err
	}
	return sendResponseFromPB(&resp), nil
}

func sendRequestToPB(r *SendRequest, timeoutMs uint32) *leanauthpb.SendRequest {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	req := &leanauthpb.SendRequest{
		Profile:   r.Profile,
		Method:    method,
		Url:       r.URL,
		Body:      r.Body,
		TimeoutMs: timeoutMs,
	}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			req.Headers = append(req.Headers, &leanauthpb.Header{Name: name, Value: v})
		}
	}
	for _, h := range r.Headers {
		req.Headers = append(req.Headers, &leanauthpb.Header{Name: h.Name, Value: h.Value})
	}
	return req
}

func sendResponseFromPB(r *leanauthpb.SendResponse) *SendResponse {
	out := &SendResponse{
		StatusCode: int(r.GetStatusCode()),
		Header:     make(http.Header, len(r.GetHeaders())),
		Body:       r.GetBody(),
	}
	if out.Body == nil {
		out.Body = []byte{}
	}
	for _, h := range r.GetHeaders() {
		out.Headers = append(out.Headers, Header{Name: h.GetName(), Value: h.GetValue()})
		out.Header.Add(h.GetName(), h.GetValue())
	}
	return out
}
