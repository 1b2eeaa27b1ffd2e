package leanauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"google.golang.org/protobuf/proto"
)

// Unit tests against a fake REP server: envelope building, error mapping,
// deadlines, cancellation, resend, concurrency.

func tokenReply(gen uint64) *leanauthpb.RpcResponse {
	return okReply(&leanauthpb.GetAccessTokenResponse{
		TokenType: leanauthpb.TokenType_TOKEN_TYPE_BEARER, AccessToken: "secret-" + fmt.Sprint(gen),
		ExpiresAtUnixMs: 1796400000123, Generation: gen,
	})
}

func TestEnvelopeCarriesMethodPayloadDeadlineAndRequestID(t *testing.T) {
	got := make(chan *leanauthpb.RpcRequest, 1)
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		got <- r
		return tokenReply(7)
	})
	c := dialFake(t, f)
	ctx, cancel := context.WithTimeout(WithRequestID(context.Background(), "req-9"), 2500*time.Millisecond)
	defer cancel()
	tok, err := c.GetAccessToken(ctx, "schwab", IfGeneration(6))
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Method != MethodGetAccessToken {
		t.Errorf("method %q", r.Method)
	}
	if r.TimeoutMs < 2000 || r.TimeoutMs > 2500 {
		t.Errorf("timeout_ms %d, want the context's ~2500", r.TimeoutMs)
	}
	if r.Metadata["request-id"] != "req-9" || len(r.Metadata) != 1 {
		t.Errorf("metadata %v", r.Metadata)
	}
	var req leanauthpb.GetAccessTokenRequest
	if err := proto.Unmarshal(r.Payload, &req); err != nil {
		t.Fatal(err)
	}
	if req.Profile != "schwab" || !req.ForceRefresh || req.IfGeneration != 6 {
		t.Errorf("payload %v", &req)
	}
	want := Token{Type: TokenTypeBearer, AccessToken: "secret-7",
		ExpiresAt: time.UnixMilli(1796400000123), Generation: 7}
	if tok.Type != want.Type || tok.AccessToken != want.AccessToken ||
		!tok.ExpiresAt.Equal(want.ExpiresAt) || tok.Generation != 7 {
		t.Errorf("token %+v", *tok)
	}
}

func TestDefaultTimeoutWhenContextHasNoDeadline(t *testing.T) {
	got := make(chan uint32, 2)
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		got <- r.TimeoutMs
		if len(r.Metadata) != 0 {
			t.Errorf("metadata without WithRequestID: %v", r.Metadata)
		}
		return okReply(&leanauthpb.HealthCheckResponse{Status: leanauthpb.ServingStatus_SERVING})
	})
	c := dialFake(t, f, WithTimeout(1234*time.Millisecond))
	ok, err := c.Health(context.Background(), "")
	if err != nil || !ok {
		t.Fatalf("Health: %v %v", ok, err)
	}
	if ms := <-got; ms != 1234 {
		t.Errorf("timeout_ms %d, want 1234", ms)
	}
}

func TestStatusCodesMapToErrors(t *testing.T) {
	cases := []struct {
		code     Code
		sentinel error
	}{
		{InvalidArgument, ErrInvalidArgument},
		{DeadlineExceeded, ErrDeadlineExceeded},
		{NotFound, ErrNotFound},
		{PermissionDenied, ErrPermissionDenied},
		{ResourceExhausted, ErrResourceExhausted},
		{Unimplemented, ErrUnimplemented},
		{Internal, ErrInternal},
		{Unavailable, ErrUnavailable},
		{Unauthenticated, ErrUnauthenticated},
		{Code(99), nil},
	}
	var mu sync.Mutex
	var next Code
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		mu.Lock()
		defer mu.Unlock()
		return errReply(next, "detail for "+next.String())
	})
	c := dialFake(t, f)
	all := []error{ErrInvalidArgument, ErrDeadlineExceeded, ErrNotFound, ErrPermissionDenied,
		ErrResourceExhausted, ErrUnimplemented, ErrInternal, ErrUnavailable, ErrUnauthenticated}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			mu.Lock()
			next = tc.code
			mu.Unlock()
			_, err := c.GetAccessToken(context.Background(), "")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("errors.As: %T %v", err, err)
			}
			if e.Code != tc.code || e.Message != "detail for "+tc.code.String() {
				t.Errorf("got %+v", e)
			}
			for _, s := range all {
				if errors.Is(err, s) != (s == tc.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tc.sentinel))
				}
			}
			if errors.Is(err, context.DeadlineExceeded) != (tc.code == DeadlineExceeded) {
				t.Errorf("errors.Is(context.DeadlineExceeded) wrong for %v", tc.code)
			}
			if CodeOf(fmt.Errorf("wrapped: %w", err)) != tc.code {
				t.Errorf("CodeOf through a wrap")
			}
		})
	}
}

func TestErrorStrings(t *testing.T) {
	e := &Error{Code: NotFound, Message: `unknown profile "x"`}
	if got := e.Error(); got != `leanauth: NOT_FOUND: unknown profile "x"` {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrUnavailable.Error(); got != "leanauth: UNAVAILABLE" {
		t.Errorf("sentinel Error() = %q", got)
	}
	if Code(42).String() != "CODE(42)" || Unauthenticated.String() != "UNAUTHENTICATED" {
		t.Error("Code.String")
	}
	if !errors.Is(&Error{Code: NotFound, Message: "m"}, &Error{Code: NotFound, Message: "m"}) ||
		errors.Is(&Error{Code: NotFound, Message: "m"}, &Error{Code: NotFound, Message: "n"}) {
		t.Error("Is with messages")
	}
	if CodeOf(nil) != OK || CodeOf(errors.New("x")) != Unknown ||
		CodeOf(context.Canceled) != Canceled || CodeOf(context.DeadlineExceeded) != DeadlineExceeded {
		t.Error("CodeOf")
	}
	if !errors.Is(&Error{Code: Canceled}, context.Canceled) {
		t.Error("Canceled is context.Canceled")
	}
}

func TestMalformedReplyIsInternal(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		// An OK status whose payload is not a GetAccessTokenResponse.
		return &leanauthpb.RpcResponse{Status: &leanauthpb.Status{}, Payload: []byte{0xff, 0xff, 0xff}}
	})
	c := dialFake(t, f)
	_, err := c.GetAccessToken(context.Background(), "")
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("got %v", err)
	}
	if err := parseResponse([]byte{0x0a, 0xff}, &leanauthpb.HealthCheckResponse{}); !errors.Is(err, ErrInternal) {
		t.Fatalf("garbage envelope: %v", err)
	}
	// A reply without a status is OK.
	b, _ := proto.Marshal(&leanauthpb.RpcResponse{})
	if err := parseResponse(b, &leanauthpb.HealthCheckResponse{}); err != nil {
		t.Fatalf("empty reply: %v", err)
	}
}

func TestNoReplyIsDeadlineExceededAfterGrace(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse { return nil })
	c := dialFake(t, f, WithReplyGrace(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := c.GetAccessToken(ctx, "")
	took := time.Since(t0)
	if !errors.Is(err, ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if took < 480*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v, want deadline + grace (500ms)", took)
	}
}

func TestServersDeadlineReplyWithinGraceWins(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		time.Sleep(time.Duration(r.TimeoutMs)*time.Millisecond + 50*time.Millisecond)
		return errReply(DeadlineExceeded, "no token within 200 ms")
	})
	c := dialFake(t, f, WithReplyGrace(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.GetAccessToken(ctx, "")
	var e *Error
	if !errors.As(err, &e) || e.Code != DeadlineExceeded || e.Message != "no token within 200 ms" {
		t.Fatalf("got %v, want the server's DEADLINE_EXCEEDED", err)
	}
}

func TestExpiredContextFailsWithoutSending(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse { return tokenReply(1) })
	c := dialFake(t, f)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.GetAccessToken(ctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.GetAccessToken(ctx2, ""); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("got %v", err)
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestCancelEndsTheCallAtOnce(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse { return nil })
	c := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := c.GetAccessToken(ctx, "")
		done <- err
	}()
	waitFor(t, func() bool { return f.requests.Load() == 1 }, 5*time.Second)
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("took %v after cancel", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end on cancel")
	}
}

func TestCloseEndsCallsInFlight(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse { return nil })
	c := dialFake(t, f)
	done := make(chan error, 1)
	go func() {
		_, err := c.GetAccessToken(context.Background(), "")
		done <- err
	}()
	waitFor(t, func() bool { return f.requests.Load() == 1 }, 5*time.Second)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end on Close")
	}
	if _, err := c.GetAccessToken(context.Background(), ""); !errors.Is(err, ErrCanceled) ||
		!strings.Contains(err.Error(), "closed") {
		t.Fatalf("after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// The REQ socket's default resend time is set to 50 ms here; each call must
// override it, so a request held for 600 ms still reaches the server once.
func TestRequestIsNeverResent(t *testing.T) {
	f := startFake(t, 4, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		time.Sleep(600 * time.Millisecond)
		return tokenReply(1)
	})
	c := dialFake(t, f, WithSocketResendForTest(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.GetAccessToken(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Fatalf("server received %d requests, want 1", n)
	}
	// And the override really is past the call's whole wait.
	nctx, err := c.sock.OpenCtx()
	if err != nil {
		t.Fatal(err)
	}
	defer nctx.Close()
	if d, _ := nctx.ResendTime(); d != 50*time.Millisecond {
		t.Fatalf("socket default %v, want the test's 50ms", d)
	}
}

func TestNotConnectedIsUnavailable(t *testing.T) {
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse { return nil })
	url := f.url
	f.close() // nothing listens there now
	if _, err := Dial(url, WithConnectTimeout(200*time.Millisecond)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Dial: %v", err)
	}
	c, err := Dial(url)
	if err != nil {
		t.Fatalf("Dial without connect timeout: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.GetAccessToken(ctx, "")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("got %v", err)
	}
}

func TestDialRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "bogus://x", "tcp://"} {
		if _, err := Dial(u); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Dial(%q): %v", u, err)
		}
	}
	if _, err := Dial("tls+tcp://127.0.0.1:1", WithTLS(&TLSConfig{})); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("TLS without roots: %v", err)
	}
	if _, err := Dial("tls+tcp://127.0.0.1:1", WithTLS(&TLSConfig{InsecureSkipVerify: true, Key: []byte("k")})); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("TLS key without cert: %v", err)
	}
}

// Concurrent calls each get their own reply: one nng context per call.
func TestConcurrentCallsGetTheirOwnReplies(t *testing.T) {
	f := startFake(t, 8, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		var req leanauthpb.GetAccessTokenRequest
		proto.Unmarshal(r.Payload, &req)
		time.Sleep(5 * time.Millisecond)
		return okReply(&leanauthpb.GetAccessTokenResponse{AccessToken: "for-" + req.Profile})
	})
	c := dialFake(t, f)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := fmt.Sprintf("p%d", i)
			tok, err := c.GetAccessToken(context.Background(), p)
			if err == nil && tok.AccessToken != "for-"+p {
				err = fmt.Errorf("%s got %s", p, tok.AccessToken)
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSendEnvelope(t *testing.T) {
	got := make(chan *leanauthpb.SendRequest, 1)
	f := startFake(t, 1, func(r *leanauthpb.RpcRequest) *leanauthpb.RpcResponse {
		var req leanauthpb.SendRequest
		if r.Method != MethodSend || proto.Unmarshal(r.Payload, &req) != nil {
			return errReply(InvalidArgument, "bad")
		}
		got <- &req
		return okReply(&leanauthpb.SendResponse{StatusCode: 404, Headers: []*leanauthpb.Header{
			{Name: "set-cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}},
			Body: []byte("not found")})
	})
	c := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, &SendRequest{
		Profile: "p", Method: "POST", URL: "http://x/api/",
		Header:  map[string][]string{"Z-Last": {"z"}, "A-First": {"1", "2"}},
		Headers: []Header{{"X-Trace", "a"}, {"X-Trace", "b"}},
		Body:    []byte{0, 1, 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := <-got
	var names []string
	for _, h := range req.Headers {
		names = append(names, h.Name+"="+h.Value)
	}
	if strings.Join(names, ",") != "A-First=1,A-First=2,Z-Last=z,X-Trace=a,X-Trace=b" {
		t.Errorf("headers %v", names)
	}
	if req.Method != "POST" || req.Url != "http://x/api/" || string(req.Body) != "\x00\x01\x02" ||
		req.TimeoutMs < 2500 || req.TimeoutMs > 3000 {
		t.Errorf("request %v", req)
	}
	if resp.StatusCode != 404 || string(resp.Body) != "not found" ||
		strings.Join(resp.Header.Values("Set-Cookie"), ",") != "a=1,b=2" ||
		len(resp.Headers) != 2 || resp.Headers[0].Name != "set-cookie" {
		t.Errorf("response %+v", resp)
	}
	// An empty method means GET.
	if r := sendRequestToPB(&SendRequest{URL: "u"}, 0); r.Method != "GET" {
		t.Errorf("default method %q", r.Method)
	}
}

func TestTimeoutMSRoundsUp(t *testing.T) {
	cases := map[time.Duration]uint32{
		0: 1, -time.Second: 1, 400 * time.Microsecond: 1, time.Millisecond: 1,
		1001 * time.Microsecond: 2, 2500 * time.Millisecond: 2500, 1 << 62: 1<<32 - 1,
	}
	for d, want := range cases {
		if got := timeoutMS(d); got != want {
			t.Errorf("timeoutMS(%v) = %d, want %d", d, got, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool, d time.Duration) {
	t.Helper()
	until := time.Now().Add(d)
	for !cond() {
		if time.Now().After(until) {
			t.Fatalf("condition not reached within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
