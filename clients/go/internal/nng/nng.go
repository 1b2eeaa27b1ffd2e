// Package nng is leanauth's thin cgo binding to libnng, the C library that
// leanauthd itself uses: REQ contexts and SUB for the client, REP and PUB for
// the tests' fake servers. Everything here is safe for concurrent use unless
// a comment says otherwise.
//
// The pure-Go mangos library was the first choice; it could not be had when
// this client was written, so the client links libnng (Debian: libnng-dev).
package nng

/*
#cgo LDFLAGS: -lnng
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

// la_pipes tracks the ids of the socket's connected pipes: a pipe counts
// from ADD_POST until its REM_POST (nng also sends REM_POST for pipes that
// never reached ADD_POST, which a plain counter would get wrong).
typedef struct la_pipes {
	pthread_mutex_t mu;
	uint32_t        ids[16];
	int             n;
} la_pipes;

static void
la_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	la_pipes *ps = arg;
	uint32_t  id = nng_pipe_id(p);
	pthread_mutex_lock(&ps->mu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		if (ps->n < 16) {
			ps->ids[ps->n++] = id;
		}
	} else {
		for (int i = 0; i < ps->n; i++) {
			if (ps->ids[i] == id) {
				ps->ids[i] = ps->ids[--ps->n];
				break;
			}
		}
	}
	pthread_mutex_unlock(&ps->mu);
}

static la_pipes *
la_pipes_watch(nng_socket s, int *rv)
{
	la_pipes *ps = calloc(1, sizeof(*ps));
	if (ps == NULL) {
		*rv = NNG_ENOMEM;
		return (NULL);
	}
	pthread_mutex_init(&ps->mu, NULL);
	if ((*rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, la_pipe_cb, ps)) == 0) {
		*rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, la_pipe_cb, ps);
	}
	return (ps);
}

static int
la_pipes_count(la_pipes *ps)
{
	pthread_mutex_lock(&ps->mu);
	int n = ps->n;
	pthread_mutex_unlock(&ps->mu);
	return (n);
}

static void
la_pipes_free(la_pipes *ps)
{
	if (ps != NULL) {
		pthread_mutex_destroy(&ps->mu);
		free(ps);
	}
}

static int
la_subscribe(nng_socket s, const void *topic, size_t n)
{
	return (nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, topic, n));
}

static int
la_set_recvmax(nng_socket s, size_t n)
{
	return (nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, n));
}

static int
la_sock_resend(nng_socket s, nng_duration d)
{
	return (nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, d));
}

static int
la_ctx_resend(nng_ctx c, nng_duration d)
{
	return (nng_ctx_set_ms(c, NNG_OPT_REQ_RESENDTIME, d));
}

static int
la_ctx_get_resend(nng_ctx c, nng_duration *d)
{
	return (nng_ctx_get_ms(c, NNG_OPT_REQ_RESENDTIME, d));
}

// la_tls builds a client or server TLS config. PEM strings may be NULL.
static int
la_tls(nng_tls_config **out, int server, const char *ca, const char *cert,
    const char *key, const char *name, int verify)
{
	nng_tls_config *tc;
	int             rv;
	if ((rv = nng_tls_config_alloc(&tc, server ? NNG_TLS_MODE_SERVER
	                                           : NNG_TLS_MODE_CLIENT)) != 0) {
		return (rv);
	}
	if (ca != NULL && (rv = nng_tls_config_ca_chain(tc, ca, NULL)) != 0) {
		goto fail;
	}
	if (cert != NULL && (rv = nng_tls_config_own_cert(tc, cert, key, NULL)) != 0) {
		goto fail;
	}
	if (name != NULL && (rv = nng_tls_config_server_name(tc, name)) != 0) {
		goto fail;
	}
	if ((rv = nng_tls_config_auth_mode(tc, verify ? NNG_TLS_AUTH_MODE_REQUIRED
	                                              : NNG_TLS_AUTH_MODE_NONE)) != 0) {
		goto fail;
	}
	*out = tc;
	return (0);
fail:
	nng_tls_config_free(tc);
	return (rv);
}

static int
la_dialer_tls(nng_dialer d, nng_tls_config *tc)
{
	return (nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc));
}

static int
la_listener_tls(nng_listener l, nng_tls_config *tc)
{
	return (nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc));
}

static int
la_listener_port(nng_listener l, int *port)
{
	return (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, port));
}

static int
la_dialer_reconnect(nng_dialer d, nng_duration min, nng_duration max)
{
	int rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, min);
	if (rv == 0) {
		rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, max);
	}
	return (rv);
}

// la_msg_take copies a message's body out and wipes it before freeing: a
// reply may carry an access token.
static void
la_msg_take(nng_msg *m, void *dst)
{
	size_t n = nng_msg_len(m);
	if (n > 0) {
		memcpy(dst, nng_msg_body(m), n);
		memset(nng_msg_body(m), 0, n);
	}
	nng_msg_free(m);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Errno is an nng error number.
type Errno int

// The nng errors this package's callers tell apart.
const (
	EINTR        Errno = C.NNG_EINTR
	ENOMEM       Errno = C.NNG_ENOMEM
	EINVAL       Errno = C.NNG_EINVAL
	ETIMEDOUT    Errno = C.NNG_ETIMEDOUT
	ECONNREFUSED Errno = C.NNG_ECONNREFUSED
	ECONNRESET   Errno = C.NNG_ECONNRESET
	ECLOSED      Errno = C.NNG_ECLOSED
	ESTATE       Errno = C.NNG_ESTATE
	ENOTSUP      Errno = C.NNG_ENOTSUP
	EADDRINVAL   Errno = C.NNG_EADDRINVAL
	ECANCELED    Errno = C.NNG_ECANCELED
	EMSGSIZE     Errno = C.NNG_EMSGSIZE
	ECRYPTO      Errno = C.NNG_ECRYPTO
	EPEERAUTH    Errno = C.NNG_EPEERAUTH
)

// Error returns nng's description of the error.
func (e Errno) Error() string { return C.GoString(C.nng_strerror(C.int(e))) }

func errno(rv C.int) error {
	if rv == 0 {
		return nil
	}
	return Errno(rv)
}

// Proto names an SP protocol.
type Proto int

// The protocols leanauth speaks.
const (
	Req Proto = iota
	Rep
	Pub
	Sub
)

// TLS is a TLS configuration for tls+tcp:// dialers (client) and listeners
// (server). PEM fields may be empty.
type TLS struct {
	CAPEM      string // trusted roots; verification needs them
	CertPEM    string // own certificate chain
	KeyPEM     string // own key
	ServerName string // client: name to verify the server's certificate against
	Verify     bool   // client: verify the server; server: require a client cert
}

func (t *TLS) config(server bool) (*C.nng_tls_config, error) {
	var cs []*C.char
	str := func(s string) *C.char {
		if s == "" {
			return nil
		}
		p := C.CString(s)
		cs = append(cs, p)
		return p
	}
	defer func() {
		for _, p := range cs {
			C.memset(unsafe.Pointer(p), 0, C.strlen(p)) // keys are secrets
			C.free(unsafe.Pointer(p))
		}
	}()
	var tc *C.nng_tls_config
	srv, verify := C.int(0), C.int(0)
	if server {
		srv = 1
	}
	if t.Verify {
		verify = 1
	}
	rv := C.la_tls(&tc, srv, str(t.CAPEM), str(t.CertPEM), str(t.KeyPEM),
		str(t.ServerName), verify)
	if rv != 0 {
		return nil, Errno(rv)
	}
	return tc, nil
}

// Socket is an nng socket with its connected pipes tracked.
//
// nng 1.5 can crash when an aio is cancelled, or a context closed, while its
// socket is being closed; so those happen under mu's read lock and only
// while the socket is open, and Close takes the write lock.
type Socket struct {
	s      C.nng_socket
	mu     sync.RWMutex
	closed bool
	pipes  *C.la_pipes // freed once closed
}

// Open opens a socket of protocol p.
func Open(p Proto) (*Socket, error) {
	var s C.nng_socket
	var rv C.int
	switch p {
	case Req:
		rv = C.nng_req0_open(&s)
	case Rep:
		rv = C.nng_rep0_open(&s)
	case Pub:
		rv = C.nng_pub0_open(&s)
	case Sub:
		rv = C.nng_sub0_open(&s)
	default:
		return nil, EINVAL
	}
	if rv != 0 {
		return nil, Errno(rv)
	}
	ps := C.la_pipes_watch(s, &rv)
	if rv != 0 {
		C.nng_close(s)
		C.la_pipes_free(ps)
		return nil, Errno(rv)
	}
	return &Socket{s: s, pipes: ps}, nil
}

// CloseWait bounds how long Close waits for nng_close (see Close).
var CloseWait = 3 * time.Second

// Close closes the socket; operations blocked on it return ECLOSED. It is
// idempotent.
//
// nng 1.5.2 (Debian 12's) can hang in nng_close when a message arrives on a
// TCP connection just as it is being closed (a race in its TCP transport,
// fixed in nng 1.6.0). So nng_close runs on its own goroutine and Close
// returns ETIMEDOUT after CloseWait rather than hang its caller; the socket
// is unusable either way.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	// From here on no operation starts and no aio is cancelled on this
	// socket (ifOpen), so none can race nng_close.
	s.closed = true
	s.mu.Unlock()
	done := make(chan C.int, 1)
	go func() {
		rv := C.nng_close(s.s)
		// nng_close returns after every pipe callback has run, and no Go
		// code reads pipes once closed is set.
		C.la_pipes_free(s.pipes)
		done <- rv
	}()
	select {
	case rv := <-done:
		return errno(rv)
	case <-time.After(CloseWait):
		return ETIMEDOUT
	}
}

// ifOpen runs f under the read lock if the socket is still open.
func (s *Socket) ifOpen(f func()) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	f()
	return true
}

// Connected reports how many pipes (connections) the socket has.
func (s *Socket) Connected() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0
	}
	return int(C.la_pipes_count(s.pipes))
}

// SetRecvMaxSize caps the size of messages received; larger ones drop the
// connection. 0 means no limit.
func (s *Socket) SetRecvMaxSize(n int) error {
	return errno(C.la_set_recvmax(s.s, C.size_t(n)))
}

// SetResendTime sets a REQ socket's default resend time for new contexts.
func (s *Socket) SetResendTime(d time.Duration) error {
	return errno(C.la_sock_resend(s.s, durationMS(d)))
}

// Subscribe adds a SUB prefix filter.
func (s *Socket) Subscribe(topic []byte) error {
	var p unsafe.Pointer
	if len(topic) > 0 {
		c := C.CBytes(topic)
		defer C.free(c)
		p = c
	}
	return errno(C.la_subscribe(s.s, p, C.size_t(len(topic))))
}

// Dial starts dialing addr in the background: Dial returns at once, and nng
// keeps (re)connecting, waiting between reconnectMin and reconnectMax.
func (s *Socket) Dial(addr string, tls *TLS, reconnectMin, reconnectMax time.Duration) error {
	caddr := C.CString(addr)
	defer C.free(unsafe.Pointer(caddr))
	var d C.nng_dialer
	if rv := C.nng_dialer_create(&d, s.s, caddr); rv != 0 {
		return Errno(rv)
	}
	if err := s.setupDialer(d, tls, reconnectMin, reconnectMax); err != nil {
		C.nng_dialer_close(d)
		return err
	}
	if rv := C.nng_dialer_start(d, C.NNG_FLAG_NONBLOCK); rv != 0 {
		C.nng_dialer_close(d)
		return Errno(rv)
	}
	return nil
}

func (s *Socket) setupDialer(d C.nng_dialer, tls *TLS, rmin, rmax time.Duration) error {
	if rmin > 0 && rmax > 0 {
		if rv := C.la_dialer_reconnect(d, durationMS(rmin), durationMS(rmax)); rv != 0 {
			return Errno(rv)
		}
	}
	if tls == nil {
		return nil
	}
	tc, err := tls.config(false)
	if err != nil {
		return err
	}
	defer C.nng_tls_config_free(tc)
	return errno(C.la_dialer_tls(d, tc))
}

// Listen listens on addr and returns the address actually bound (with the
// port resolved when addr asked for port 0 on tcp:// or tls+tcp://).
func (s *Socket) Listen(addr string, tls *TLS) (string, error) {
	caddr := C.CString(addr)
	defer C.free(unsafe.Pointer(caddr))
	var l C.nng_listener
	if rv := C.nng_listener_create(&l, s.s, caddr); rv != 0 {
		return "", Errno(rv)
	}
	if tls != nil {
		tc, err := tls.config(true)
		if err != nil {
			C.nng_listener_close(l)
			return "", err
		}
		rv := C.la_listener_tls(l, tc)
		C.nng_tls_config_free(tc)
		if rv != 0 {
			C.nng_listener_close(l)
			return "", Errno(rv)
		}
	}
	if rv := C.nng_listener_start(l, 0); rv != 0 {
		C.nng_listener_close(l)
		return "", Errno(rv)
	}
	if !strings.Contains(addr, "tcp://") {
		return addr, nil
	}
	var port C.int
	if rv := C.la_listener_port(l, &port); rv != 0 {
		return "", Errno(rv)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", addr, err)
	}
	u.Host = u.Hostname() + ":" + strconv.Itoa(int(port))
	if strings.Contains(u.Hostname(), ":") {
		u.Host = "[" + u.Hostname() + "]:" + strconv.Itoa(int(port))
	}
	return u.String(), nil
}

// Recv receives one message on the socket (SUB, or a REP without
// contexts), waiting until one arrives or the socket is closed.
func (s *Socket) Recv() ([]byte, error) {
	o, err := newOp(context.Background(), s)
	if err != nil {
		return nil, err
	}
	defer o.free()
	if err := o.start(-1, func() { C.nng_recv_aio(s.s, o.aio) }); err != nil {
		return nil, err
	}
	return take(C.nng_aio_get_msg(o.aio)), nil
}

// Send sends one message on the socket (PUB in tests).
func (s *Socket) Send(b []byte) error {
	o, err := newOp(context.Background(), s)
	if err != nil {
		return err
	}
	defer o.free()
	m, err := newMsg(b)
	if err != nil {
		return err
	}
	C.nng_aio_set_msg(o.aio, m)
	if err := o.start(-1, func() { C.nng_send_aio(s.s, o.aio) }); err != nil {
		if m := C.nng_aio_get_msg(o.aio); m != nil {
			C.nng_msg_free(m)
		}
		return err
	}
	return nil
}

func newMsg(b []byte) (*C.nng_msg, error) {
	var m *C.nng_msg
	if rv := C.nng_msg_alloc(&m, C.size_t(len(b))); rv != 0 {
		return nil, Errno(rv)
	}
	if len(b) > 0 {
		C.memcpy(C.nng_msg_body(m), unsafe.Pointer(&b[0]), C.size_t(len(b)))
	}
	return m, nil
}

func take(m *C.nng_msg) []byte {
	b := make([]byte, int(C.nng_msg_len(m)))
	var dst unsafe.Pointer
	if len(b) > 0 {
		dst = unsafe.Pointer(&b[0])
	}
	C.la_msg_take(m, dst)
	return b
}

// durationMS converts d to nng milliseconds, rounding up and saturating;
// d < 0 means infinite.
func durationMS(d time.Duration) C.nng_duration {
	if d < 0 {
		return C.NNG_DURATION_INFINITE
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > 1<<31-1 {
		ms = 1<<31 - 1
	}
	return C.nng_duration(ms)
}

// Ctx is an nng context: one request/reply state machine on a socket.
type Ctx struct {
	c C.nng_ctx
	s *Socket
}

// OpenCtx opens a context on the socket.
func (s *Socket) OpenCtx() (*Ctx, error) {
	var c C.nng_ctx
	rv := C.int(C.NNG_ECLOSED)
	s.ifOpen(func() { rv = C.nng_ctx_open(&c, s.s) })
	if rv != 0 {
		return nil, Errno(rv)
	}
	return &Ctx{c: c, s: s}, nil
}

// Close closes the context, abandoning any request in it. (Closing the
// socket closes its contexts.)
func (c *Ctx) Close() error {
	var rv C.int
	c.s.ifOpen(func() { rv = C.nng_ctx_close(c.c) })
	return errno(rv)
}

// SetResendTime sets a REQ context's resend time (negative: never resend).
func (c *Ctx) SetResendTime(d time.Duration) error {
	return errno(C.la_ctx_resend(c.c, durationMS(d)))
}

// ResendTime reads a REQ context's resend time.
func (c *Ctx) ResendTime() (time.Duration, error) {
	var d C.nng_duration
	if rv := C.la_ctx_get_resend(c.c, &d); rv != 0 {
		return 0, Errno(rv)
	}
	if d < 0 {
		return -1, nil
	}
	return time.Duration(d) * time.Millisecond, nil
}

// op runs one asynchronous operation on an aio, waits for it, and aborts it
// when ctx is done. Cancellation cannot slip between two operations: the
// flag and the start are taken under one lock.
type op struct {
	aio     *C.nng_aio
	mu      sync.Mutex
	aborted bool
	s       *Socket
	done    chan struct{}
	stop    func() bool
}

func newOp(ctx context.Context, s *Socket) (*op, error) {
	o := &op{done: make(chan struct{}), s: s}
	if rv := C.nng_aio_alloc(&o.aio, nil, nil); rv != 0 {
		return nil, Errno(rv)
	}
	o.stop = context.AfterFunc(ctx, func() {
		defer close(o.done)
		o.mu.Lock()
		o.aborted = true
		s.ifOpen(func() { C.nng_aio_cancel(o.aio) })
		o.mu.Unlock()
	})
	return o, nil
}

// start runs f (which must only start an operation) unless aborted.
func (o *op) start(timeout time.Duration, f func()) error {
	C.nng_aio_set_timeout(o.aio, durationMS(timeout))
	o.mu.Lock()
	if o.aborted {
		o.mu.Unlock()
		return ECANCELED
	}
	open := o.s.ifOpen(f)
	o.mu.Unlock()
	if !open {
		return ECLOSED
	}
	C.nng_aio_wait(o.aio)
	return errno(C.nng_aio_result(o.aio))
}

func (o *op) free() {
	if !o.stop() {
		<-o.done
	}
	C.nng_aio_free(o.aio)
}

// Call sends req on a REQ context and waits for the reply, for at most
// timeout in all. It returns ECANCELED as soon as ctx is done.
func (c *Ctx) Call(ctx context.Context, req []byte, timeout time.Duration) ([]byte, error) {
	o, err := newOp(ctx, c.s)
	if err != nil {
		return nil, err
	}
	defer o.free()
	m, err := newMsg(req)
	if err != nil {
		return nil, err
	}
	until := time.Now().Add(timeout)
	C.nng_aio_set_msg(o.aio, m)
	if err := o.start(timeout, func() { C.nng_ctx_send(c.c, o.aio) }); err != nil {
		if m := C.nng_aio_get_msg(o.aio); m != nil {
			C.nng_msg_free(m)
		}
		return nil, err
	}
	C.nng_aio_set_msg(o.aio, nil)
	left := time.Until(until)
	if left < time.Millisecond {
		left = time.Millisecond
	}
	if err := o.start(left, func() { C.nng_ctx_recv(c.c, o.aio) }); err != nil {
		return nil, err
	}
	return take(C.nng_aio_get_msg(o.aio)), nil
}

// Recv receives one message on the context (REP in tests); timeout < 0
// waits forever.
func (c *Ctx) Recv(ctx context.Context, timeout time.Duration) ([]byte, error) {
	o, err := newOp(ctx, c.s)
	if err != nil {
		return nil, err
	}
	defer o.free()
	if err := o.start(timeout, func() { C.nng_ctx_recv(c.c, o.aio) }); err != nil {
		return nil, err
	}
	return take(C.nng_aio_get_msg(o.aio)), nil
}

// Send sends one message on the context (a REP reply in tests).
func (c *Ctx) Send(ctx context.Context, b []byte, timeout time.Duration) error {
	o, err := newOp(ctx, c.s)
	if err != nil {
		return err
	}
	defer o.free()
	m, err := newMsg(b)
	if err != nil {
		return err
	}
	C.nng_aio_set_msg(o.aio, m)
	if err := o.start(timeout, func() { C.nng_ctx_send(c.c, o.aio) }); err != nil {
		if m := C.nng_aio_get_msg(o.aio); m != nil {
			C.nng_msg_free(m)
		}
		return err
	}
	return nil
}

// IsClosed reports whether err means the socket or context was closed.
func IsClosed(err error) bool { return errors.Is(err, ECLOSED) }
