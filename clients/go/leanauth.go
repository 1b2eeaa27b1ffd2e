// Package leanauth is the Go client of leanauthd, the token broker for
// QuantConnect Lean trading processes.
//
// A Client asks leanauthd for brokerage access tokens (GetAccessToken), has
// it make HTTP calls with them (Send) and checks its health (Health), over
// nng request/reply with protobuf envelopes (see DESIGN.md, "Wire contract").
// Subscribe receives its events, such as AuthenticationFailed, on which a
// trading process should shut down gracefully. TokenSource and Transport plug
// the tokens into golang.org/x/oauth2 and net/http.
//
//	c, err := leanauth.Dial("tcp://127.0.0.1:7450")
//	if err != nil { ... }
//	defer c.Close()
//	tok, err := c.GetAccessToken(ctx, "schwab")
//
// The client talks nng through libnng (cgo; Debian: libnng-dev), the library
// leanauthd itself uses.
//
// # Deadlines
//
// A call's deadline is its context's deadline, or WithTimeout's when the
// context has none. It travels to leanauthd in the envelope's timeout_ms, and
// the client waits a little longer (WithReplyGrace, default 1s) so that
// leanauthd's own DEADLINE_EXCEEDED reply, with its message, arrives. A
// context that is cancelled (rather than timing out) ends the call at once.
//
// # Requests are never sent twice
//
// nng's REQ protocol resends a request that has not been answered within its
// resend time (nng's NNG_OPT_REQ_RESENDTIME, mangos' OptionRetryTime; one
// minute by default). A resent Send would make the brokerage call twice, so
// every call's context gets a resend time one minute past that call's whole
// wait: the request is sent once, and the context is closed when the call
// ends. nng also resends an unanswered request at once on a new connection
// when its connection breaks: harmless for GetAccessToken and Health, but
// not for Send, so a Send's context has resending turned off altogether and
// a broken connection fails the call with ErrUnavailable ("may or may not
// have been carried out") instead.
//
// # Concurrency
//
// A Client is safe for concurrent use: it has one REQ socket, and every call
// opens its own nng context on it, so calls never wait for one another.
package leanauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/leanauth/leanauth/clients/go/internal/nng"
	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"google.golang.org/protobuf/proto"
)

// The envelope's method names.
const (
	MethodGetAccessToken = "leanauth.v1.TokenService/GetAccessToken"
	MethodSend           = "leanauth.v1.TokenService/Send"
	MethodHealthCheck    = "leanauth.v1.Health/Check"
)

// Defaults for Dial's options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultReplyGrace   = time.Second
	DefaultMaxReplySize = 64 << 20
	resendMargin        = time.Minute
)

// Client is a connection to leanauthd. Create it with Dial; it is safe for
// concurrent use. Close it when done.
type Client struct {
	url  string
	opts options
	sock *nng.Socket

	mu     sync.RWMutex // guards closed against calls starting during Close
	closed bool
}

type options struct {
	timeout        time.Duration
	connectTimeout time.Duration
	grace          time.Duration
	maxReply       int
	tls            *TLSConfig
	socketResend   time.Duration // tests only: the socket's default resend time
}

// Option configures Dial and NewSubscriber.
type Option func(*options)

// WithTimeout sets the deadline of calls whose context has none (default
// 10s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithConnectTimeout makes Dial (and NewSubscriber) wait up to d for the
// connection and fail with ErrUnavailable if it is not up by then. Without it
// they return at once and nng keeps connecting in the background; calls made
// before it is up wait for it within their deadline.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.connectTimeout = d }
}

// WithReplyGrace sets how long past a call's deadline the client still waits
// for leanauthd's reply (default 1s), so that leanauthd's DEADLINE_EXCEEDED
// answer, not a local timeout, ends the call.
func WithReplyGrace(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.grace = d
		}
	}
}

// WithMaxReplySize caps the size of a reply (default 64 MiB, enough for any
// Send response leanauthd relays). A larger reply drops the connection and
// the call fails.
func WithMaxReplySize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxReply = n
		}
	}
}

// WithTLS configures tls+tcp:// URLs (see TLSConfig).
func WithTLS(cfg *TLSConfig) Option {
	return func(o *options) { o.tls = cfg }
}

// TLSConfig configures a tls+tcp:// connection. The handshake is made by nng
// (with mbedTLS on Debian), not crypto/tls, so certificates and keys are
// given as PEM rather than as a *tls.Config (whose root pool cannot be read
// back out).
type TLSConfig struct {
	// RootCAs is the PEM bundle of certificate authorities that may sign
	// leanauthd's certificate. Required unless InsecureSkipVerify.
	RootCAs []byte
	// Certificate and Key are the client's certificate chain and private key
	// in PEM, for servers that require client certificates. Optional.
	Certificate, Key []byte
	// ServerName is the name leanauthd's certificate must carry; empty means
	// the URL's host.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. Tests only.
	InsecureSkipVerify bool
}

// TLSConfigFromFiles reads PEM files into a TLSConfig; certFile and keyFile
// may be empty.
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*TLSConfig, error) {
	var cfg TLSConfig
	var err error
	if cfg.RootCAs, err = os.ReadFile(caFile); err != nil {
		return nil, err
	}
	if certFile != "" {
		if cfg.Certificate, err = os.ReadFile(certFile); err != nil {
			return nil, err
		}
	}
	if keyFile != "" {
		if cfg.Key, err = os.ReadFile(keyFile); err != nil {
			return nil, err
		}
	}
	return &cfg, nil
}

func buildOptions(opts []Option) options {
	o := options{timeout: DefaultTimeout, grace: DefaultReplyGrace, maxReply: DefaultMaxReplySize}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// openSocket checks the options, opens a socket of protocol p and starts
// connecting it to addr; with WithConnectTimeout it waits for the
// connection.
func openSocket(p nng.Proto, addr string, o *options) (*nng.Socket, error) {
	if addr == "" {
		return nil, errorf(InvalidArgument, "empty url")
	}
	ntls, err := o.tls.nng(addr)
	if err != nil {
		return nil, err
	}
	s, err := nng.Open(p)
	if err != nil {
		return nil, errorf(Internal, "open socket: %v", err)
	}
	if err := setupAndConnect(s, p, addr, ntls, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func setupAndConnect(s *nng.Socket, p nng.Proto, addr string, ntls *nng.TLS, o *options) error {
	if err := s.SetRecvMaxSize(o.maxReply); err != nil {
		return errorf(Internal, "recv-size-max: %v", err)
	}
	if p == nng.Req && o.socketResend != 0 {
		if err := s.SetResendTime(o.socketResend); err != nil {
			return errorf(Internal, "resend time: %v", err)
		}
	}
	if err := s.Dial(addr, ntls, 10*time.Millisecond, time.Second); err != nil {
		code := Unavailable
		if errors.Is(err, nng.EINVAL) || errors.Is(err, nng.EADDRINVAL) ||
			errors.Is(err, nng.ENOTSUP) || errors.Is(err, nng.ECRYPTO) {
			code = InvalidArgument
		}
		return errorf(code, "dial %s: %v", addr, err)
	}
	if o.connectTimeout > 0 {
		until := time.Now().Add(o.connectTimeout)
		for s.Connected() == 0 {
			if time.Now().After(until) {
				return errorf(Unavailable, "cannot connect to leanauthd at %s within %v",
					addr, o.connectTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// nng checks the configuration and converts it for nng; nil for nil.
func (t *TLSConfig) nng(addr string) (*nng.TLS, error) {
	if t == nil {
		return nil, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, errorf(InvalidArgument, "url %q: %v", addr, err)
	}
	if (len(t.Certificate) == 0) != (len(t.Key) == 0) {
		return nil, errorf(InvalidArgument, "tls: give both a certificate and its key, or neither")
	}
	if len(t.RootCAs) == 0 && !t.InsecureSkipVerify {
		return nil, errorf(InvalidArgument, "tls: RootCAs is required unless InsecureSkipVerify")
	}
	n := &nng.TLS{
		CAPEM:      string(t.RootCAs),
		CertPEM:    string(t.Certificate),
		KeyPEM:     string(t.Key),
		ServerName: t.ServerName,
		Verify:     !t.InsecureSkipVerify,
	}
	if n.ServerName == "" {
		n.ServerName = u.Hostname()
	}
	return n, nil
}

// Dial connects to leanauthd's RPC URL (tcp://host:port, tls+tcp://host:port
// with WithTLS, ipc:///path). Without WithConnectTimeout it returns at once
// and nng connects, and reconnects, in the background.
func Dial(url string, opts ...Option) (*Client, error) {
	o := buildOptions(opts)
	s, err := openSocket(nng.Req, url, &o)
	if err != nil {
		return nil, err
	}
	return &Client{url: url, opts: o, sock: s}, nil
}

// Close closes the connection. Calls in flight fail with ErrCanceled; later
// calls fail at once. Close is idempotent.
//
// Close returns within a few seconds even when libnng 1.5.2 hangs closing a
// connection that a reply is arriving on (an nng bug fixed in 1.6.0); it
// then returns an error, and the process can still exit normally.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.sock.Close(); err != nil {
		return errorf(Internal, "close: %v", err)
	}
	return nil
}

// URL returns the URL the client was dialed with.
func (c *Client) URL() string { return c.url }

type requestIDKey struct{}

// WithRequestID returns a context whose calls carry id as the envelope's
// "request-id" metadata, which leanauthd logs with every line about the call
// so that a client's log and the server's can be joined.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFromContext returns the id set by WithRequestID.
func RequestIDFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}

// NewRequestID returns a random request id ("go-" and 16 hex digits).
func NewRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "go-" + hex.EncodeToString(b[:])
}

// callTimeout returns the deadline to put in the envelope: the context's,
// else the client's default. ok is false when the deadline has passed.
func (c *Client) callTimeout(ctx context.Context) (time.Duration, bool) {
	if d, has := ctx.Deadline(); has {
		left := time.Until(d)
		return left, left > 0
	}
	return c.opts.timeout, true
}

// timeoutMS converts a call's remaining time to the envelope's timeout_ms,
// rounding up (a remaining 0.4 ms is 1, never 0, which would mean "the
// server's default").
func timeoutMS(d time.Duration) uint32 {
	if d <= 0 {
		return 1
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return uint32(ms)
}

// buildRequest encodes the envelope for one call.
func buildRequest(method string, payload proto.Message, timeoutMs uint32, requestID string) ([]byte, error) {
	body, err := proto.Marshal(payload)
	if err != nil {
		return nil, errorf(Internal, "encode %s request: %v", method, err)
	}
	env := &leanauthpb.RpcRequest{Method: method, Payload: body, TimeoutMs: timeoutMs}
	if requestID != "" {
		env.Metadata = map[string]string{"request-id": requestID}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return nil, errorf(Internal, "encode envelope: %v", err)
	}
	return b, nil
}

// parseResponse decodes a reply envelope: the method's response message into
// out on OK, the status as an *Error otherwise.
func parseResponse(b []byte, out proto.Message) error {
	var env leanauthpb.RpcResponse
	if err := proto.Unmarshal(b, &env); err != nil {
		return errorf(Internal, "malformed reply from leanauthd: %v", err)
	}
	if st := env.GetStatus(); st.GetCode() != int32(OK) {
		return &Error{Code: Code(st.GetCode()), Message: st.GetMessage()}
	}
	if err := proto.Unmarshal(env.GetPayload(), out); err != nil {
		return errorf(Internal, "malformed %s in reply: %v",
			out.ProtoReflect().Descriptor().Name(), err)
	}
	wipe(env.Payload)
	return nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// call makes one exchange on its own nng context.
func (c *Client) call(ctx context.Context, method string, req, resp proto.Message) error {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return errorf(Canceled, "%s: %v", method, err)
	}
	timeout, ok := c.callTimeout(ctx)
	if !ok {
		return errorf(DeadlineExceeded, "%s: deadline passed before the call", method)
	}
	rid, _ := RequestIDFromContext(ctx)
	msg, err := buildRequest(method, req, timeoutMS(timeout), rid)
	if err != nil {
		return err
	}

	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errorf(Canceled, "client is closed")
	}
	nctx, err := c.sock.OpenCtx()
	c.mu.RUnlock()
	if err != nil {
		if nng.IsClosed(err) {
			return errorf(Canceled, "client is closed")
		}
		return errorf(Internal, "open context: %v", err)
	}
	defer nctx.Close()
	wait := timeout + c.opts.grace
	// Never resend within this call (see the package doc). nng's REQ also
	// resends at once on a new connection when the one the request went
	// out on breaks; a Send must never run twice, so for it resending is
	// off altogether (a negative duration is nng's "infinite").
	resend := wait + resendMargin
	if method == MethodSend {
		resend = -1
	}
	if err := nctx.SetResendTime(resend); err != nil {
		return errorf(Internal, "resend time: %v", err)
	}

	// Abort at once when ctx is cancelled; when its deadline passes, keep
	// waiting (up to grace) for leanauthd's DEADLINE_EXCEEDED reply.
	abort, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	defer stop()

	reply, err := nctx.Call(abort, msg, wait)
	if err != nil {
		return c.transportError(ctx, method, timeout, err)
	}
	defer wipe(reply)
	return parseResponse(reply, resp)
}

func (c *Client) transportError(ctx context.Context, method string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, nng.ECANCELED):
		return errorf(Canceled, "%s: %v", method, context.Cause(ctx))
	case nng.IsClosed(err):
		return errorf(Canceled, "client is closed")
	case errors.Is(err, nng.ECONNRESET):
		return errorf(Unavailable, "connection to leanauthd at %s lost before the reply; "+
			"the request was not resent and may or may not have been carried out", c.url)
	case c.sock.Connected() == 0:
		return errorf(Unavailable, "not connected to leanauthd at %s", c.url)
	case errors.Is(err, nng.ETIMEDOUT):
		return errorf(DeadlineExceeded, "no reply from leanauthd within %v", timeout.Round(time.Millisecond))
	}
	return errorf(Unavailable, "leanauthd at %s: %v", c.url, err)
}

// String describes the client for logs.
func (c *Client) String() string { return fmt.Sprintf("leanauth.Client(%s)", c.url) }
