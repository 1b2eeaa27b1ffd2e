package leanauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"golang.org/x/oauth2"
)

// Integration tests: the real leanauthd against the stand-in APIs.

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestTokenIsReturnedAndCached(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 20*time.Second)
	before := time.Now()
	first, err := c.GetAccessToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.AccessToken, canaryAccessPrefix) || first.Type != leanauth.TokenTypeBearer ||
		first.Generation != 1 || !first.ExpiresAt.After(before) || !first.Valid() {
		t.Fatalf("token %v", first)
	}
	for i := 0; i < 20; i++ {
		tok, err := c.GetAccessToken(ctx, "schwab")
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != first.AccessToken || tok.Generation != 1 || !tok.ExpiresAt.Equal(first.ExpiresAt) {
			t.Fatalf("call %d: %v, want the cached %v", i, tok, first)
		}
	}
	if n := e.leanStat("refresh_calls"); n != 1 {
		t.Fatalf("refresh_calls = %d, want 1", n)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", first, first, first, first); strings.Contains(s, canaryAny) {
		t.Fatalf("token printed: %s", s)
	}
}

func TestSessionTokenType(t *testing.T) {
	e := newEnv(t)
	e.lean("_control/plan", map[string]any{"account_id": "A1", "token_type": "SessionToken"})
	e.start()
	tok, err := e.client().GetAccessToken(ctxTimeout(t, 20*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Type != leanauth.TokenTypeSessionToken || !strings.HasPrefix(tok.AuthorizationHeader(), "SessionToken ") {
		t.Fatalf("token %v", tok)
	}
}

func TestForceRefreshAndIfGeneration(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 20*time.Second)
	a, err := c.GetAccessToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.GetAccessToken(ctx, "", leanauth.ForceRefresh())
	if err != nil {
		t.Fatal(err)
	}
	if b.AccessToken == a.AccessToken || b.Generation != 2 || e.leanStat("refresh_calls") != 2 {
		t.Fatalf("forced: %v after %v", b, a)
	}
	// A caller that saw generation 1 refused gets generation 2, no refresh.
	c2, err := c.GetAccessToken(ctx, "", leanauth.IfGeneration(a.Generation))
	if err != nil {
		t.Fatal(err)
	}
	if c2.AccessToken != b.AccessToken || c2.Generation != 2 || e.leanStat("refresh_calls") != 2 {
		t.Fatalf("stale IfGeneration refreshed: %v", c2)
	}
	// The current generation refused: one refresh.
	d, err := c.GetAccessToken(ctx, "", leanauth.IfGeneration(2))
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 3 || e.leanStat("refresh_calls") != 3 {
		t.Fatalf("IfGeneration(current): %v", d)
	}
}

func TestFiftyGoroutinesShareOneRefresh(t *testing.T) {
	e := newEnv(t)
	e.plan("A1", []string{"slow:300"}, "ok")
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 30*time.Second)
	const n = 50
	toks := make([]*leanauth.Token, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			toks[i], errs[i] = c.GetAccessToken(ctx, "schwab")
		}(i)
	}
	close(start)
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if toks[i].AccessToken != toks[0].AccessToken {
			t.Fatalf("goroutine %d got another token", i)
		}
	}
	if got := e.leanStat("refresh_calls"); got != 1 {
		t.Fatalf("refresh_calls = %d, want 1", got)
	}
}

func TestErrors(t *testing.T) {
	t.Run("unauthorized refresh is Unauthenticated", func(t *testing.T) {
		e := newEnv(t)
		e.profile(0)["max_retry_count"] = 1
		e.plan("A1", nil, "unauthorized")
		e.start()
		_, err := e.client().GetAccessToken(ctxTimeout(t, 20*time.Second), "")
		var le *leanauth.Error
		if !errors.Is(err, leanauth.ErrUnauthenticated) || !errors.As(err, &le) ||
			le.Message != "Invalid refresh token" {
			t.Fatalf("got %v", err)
		}
		if n := e.leanStat("refresh_calls"); n != 2 {
			t.Fatalf("refresh_calls = %d, want max_retry_count+1 = 2", n)
		}
	})
	t.Run("upstream 500 is Unavailable", func(t *testing.T) {
		e := newEnv(t)
		e.profile(0)["max_retry_count"] = 1
		e.plan("A1", nil, "500")
		e.start()
		_, err := e.client().GetAccessToken(ctxTimeout(t, 20*time.Second), "")
		if !errors.Is(err, leanauth.ErrUnavailable) || !strings.Contains(err.Error(), "500") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("hanging upstream and a short deadline is DeadlineExceeded", func(t *testing.T) {
		e := newEnv(t)
		e.plan("A1", []string{"hang"}, "ok")
		e.start()
		c := e.client()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		_, err := c.GetAccessToken(ctx, "")
		took := time.Since(t0)
		if !errors.Is(err, leanauth.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		// leanauthd answered at the deadline, well within the grace.
		if took < 280*time.Millisecond || took > 1200*time.Millisecond {
			t.Fatalf("took %v", took)
		}
		if !e.leanWait("hanging=1", 5*time.Second) {
			t.Fatal("the refresh is not hanging")
		}
		e.lean("_control/release", map[string]any{})
		tok, err := c.GetAccessToken(ctxTimeout(t, 10*time.Second), "")
		if err != nil || tok.Generation != 1 || e.leanStat("refresh_calls") != 1 {
			t.Fatalf("after release: %v %v", tok, err)
		}
	})
	t.Run("cancelled context ends the call at once", func(t *testing.T) {
		e := newEnv(t)
		e.plan("A1", []string{"hang"}, "ok")
		e.start()
		c := e.client()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.GetAccessToken(ctx, ""); done <- err }()
		if !e.leanWait("hanging=1", 5*time.Second) {
			t.Fatal("the refresh is not hanging")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("call did not end on cancel")
		}
		// The refresh goes on; once it is released, leanauthd answers the
		// abandoned request too (the client drops that reply) and serves
		// the next call from the same refresh.
		e.lean("_control/release", map[string]any{})
		tok, err := c.GetAccessToken(ctxTimeout(t, 10*time.Second), "")
		if err != nil || tok.Generation != 1 || e.leanStat("refresh_calls") != 1 {
			t.Fatalf("after release: %v %v", tok, err)
		}
		// Close only once leanauthd has answered both: libnng 1.5.2 can hang
		// closing a connection a reply is arriving on (Close is bounded).
	})
	t.Run("protocol errors", func(t *testing.T) {
		e := newEnv(t)
		e.start()
		c := e.client()
		ctx := ctxTimeout(t, 20*time.Second)
		if _, err := c.GetAccessToken(ctx, "nope"); !errors.Is(err, leanauth.ErrNotFound) ||
			!strings.Contains(err.Error(), "nope") {
			t.Errorf("unknown profile: %v", err)
		}
		if _, err := c.Health(ctx, "nope"); !errors.Is(err, leanauth.ErrNotFound) {
			t.Errorf("Health(unknown profile): %v", err)
		}
		if _, err := c.Send(ctx, &leanauth.SendRequest{URL: "http://127.0.0.1:1/elsewhere/"}); !errors.Is(err, leanauth.ErrPermissionDenied) {
			t.Errorf("refused URL: %v", err)
		}
		if _, err := c.Send(ctx, &leanauth.SendRequest{URL: e.brokerURL + "echo"}); !errors.Is(err, leanauth.ErrPermissionDenied) {
			t.Errorf("URL outside the allowed prefix: %v", err)
		}
		if _, err := c.Send(ctx, &leanauth.SendRequest{Method: "TRACE", URL: e.brokerURL + "api/echo"}); !errors.Is(err, leanauth.ErrInvalidArgument) {
			t.Errorf("bad HTTP method: %v", err)
		}
		big := bytes.Repeat([]byte("x"), 100_000) // max_body_bytes is 65536
		if _, err := c.Send(ctx, &leanauth.SendRequest{Method: "POST", URL: e.brokerURL + "api/echo", Body: big}); !errors.Is(err, leanauth.ErrResourceExhausted) {
			t.Errorf("oversized body: %v", err)
		}
		var resp leanauthpb.HealthCheckResponse
		if err := c.Invoke(ctx, "leanauth.v1.Nope/Nothing", &leanauthpb.HealthCheckRequest{}, &resp); !errors.Is(err, leanauth.ErrUnimplemented) {
			t.Errorf("unknown RPC method: %v", err)
		}
		if n := e.brokerStat("requests"); n != 0 {
			t.Errorf("the brokerage saw %d requests, want 0", n)
		}
		// The client still works after all that.
		if ok, err := c.Health(ctx, ""); !ok || err != nil {
			t.Errorf("Health: %v %v", ok, err)
		}
	})
	t.Run("leanauthd gone is Unavailable", func(t *testing.T) {
		e := newEnv(t)
		e.start()
		c := e.client()
		if err := e.stopDaemon(15, 10*time.Second); err != nil { // SIGTERM
			t.Fatalf("leanauthd: %v", err)
		}
		_, err := c.GetAccessToken(ctxTimeout(t, 300*time.Millisecond), "")
		if !errors.Is(err, leanauth.ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	e.profile(0)["max_retry_count"] = 0
	e.plan("A1", []string{"unauthorized"}, "ok")
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 20*time.Second)
	if ok, err := c.Health(ctx, ""); !ok || err != nil {
		t.Fatalf("Health(\"\"): %v %v", ok, err)
	}
	if _, err := c.GetAccessToken(ctx, ""); !errors.Is(err, leanauth.ErrUnauthenticated) {
		t.Fatalf("first refresh: %v", err)
	}
	if ok, err := c.Health(ctx, "schwab"); ok || err != nil {
		t.Fatalf("Health(schwab) after a failure with no token: %v %v, want NOT_SERVING", ok, err)
	}
	if _, err := c.GetAccessToken(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Health(ctx, "schwab"); !ok || err != nil {
		t.Fatalf("Health(schwab) with a token: %v %v", ok, err)
	}
}

type echo struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
	BodyLen int         `json:"body_len"`
}

func (x *echo) header(name string) []string {
	var v []string
	for _, h := range x.Headers {
		if strings.EqualFold(h[0], name) {
			v = append(v, h[1])
		}
	}
	return v
}

func TestSendRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	ctx := leanauth.WithRequestID(ctxTimeout(t, 20*time.Second), "go-send-1")
	tok, err := c.GetAccessToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("{\"q\":1}\x00\xff")
	resp, err := c.Send(ctx, &leanauth.SendRequest{
		Profile: "schwab", Method: "POST", URL: e.brokerURL + "api/orders?x=1",
		Header:  http.Header{"Content-Type": {"application/octet-stream"}, "Authorization": {"Bearer forged"}},
		Headers: []leanauth.Header{{"X-Trace", "a"}, {"X-Trace", "b"}},
		Body:    body,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Standin") != "brokerage" ||
		strings.Join(resp.Header.Values("Set-Cookie"), ",") != "a=1,b=2" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	var x echo
	if err := json.Unmarshal(resp.Body, &x); err != nil {
		t.Fatalf("echo: %v: %s", err, resp.Body)
	}
	if x.Method != "POST" || x.Path != "/api/orders" || x.Query != "x=1" || x.BodyLen != len(body) {
		t.Fatalf("echo %+v", x)
	}
	if got := x.header("Authorization"); len(got) != 1 || got[0] != "Bearer "+tok.AccessToken {
		t.Fatalf("Authorization seen upstream: %d values, want leanauthd's token only", len(got))
	}
	if got := x.header("X-Trace"); strings.Join(got, ",") != "a,b" {
		t.Fatalf("X-Trace %v", got)
	}

	// Any upstream status is a successful Send.
	resp, err = c.Send(ctx, &leanauth.SendRequest{URL: e.brokerURL + "api/status/404"})
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("404: %v %v", resp, err)
	}
	// Redirects come back as they are.
	resp, err = c.Send(ctx, &leanauth.SendRequest{URL: e.brokerURL + "api/redirect"})
	if err != nil || resp.StatusCode != 302 || resp.Header.Get("Location") == "" {
		t.Fatalf("redirect: %v %v", resp, err)
	}
	if n := e.leanStat("refresh_calls"); n != 1 {
		t.Fatalf("refresh_calls = %d", n)
	}
	// WithRequestID's id reached leanauthd's log lines about these calls.
	if log, _ := os.ReadFile(e.logPath); !strings.Contains(string(log), `"request_id":"go-send-1"`) {
		t.Fatalf("request id not in leanauthd's log")
	}
}

func TestSendRefreshesAndRetriesOnceOn401(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 20*time.Second)
	old, err := c.GetAccessToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	e.broker("_control/revoke", map[string]any{"tokens": []string{old.AccessToken}})
	resp, err := c.Send(ctx, &leanauth.SendRequest{URL: e.brokerURL + "api/echo"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Send after revoke: %v %v", resp, err)
	}
	now, err := c.GetAccessToken(ctx, "")
	if err != nil || now.Generation != 2 || e.leanStat("refresh_calls") != 2 {
		t.Fatalf("after retry: %v %v", now, err)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	e.profile(0)["max_retry_count"] = 1
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 30*time.Second)
	all, err := leanauth.NewSubscriber(ctx, e.eventsURL,
		[]string{leanauth.TopicAuthenticationFailed, leanauth.TopicTokenRefreshed},
		leanauth.WithConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	failedOnly, err := leanauth.NewSubscriber(ctx, e.eventsURL,
		[]string{leanauth.TopicAuthenticationFailed}, leanauth.WithConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	// Refresh until a TokenRefreshed arrives: that proves the subscription
	// is live on leanauthd's side too (PUB adds a pipe a moment after the
	// subscriber sees it).
	var refreshed *leanauth.TokenRefreshed
	var tok *leanauth.Token
	for i := 0; refreshed == nil; i++ {
		if i == 50 {
			t.Fatal("no TokenRefreshed after 50 refreshes")
		}
		if tok, err = c.GetAccessToken(ctx, "", leanauth.ForceRefresh()); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-all.Events():
			refreshed = ev.(*leanauth.TokenRefreshed)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Drain to the event of the last refresh.
	for refreshed.Generation < tok.Generation {
		select {
		case ev := <-all.Events():
			refreshed = ev.(*leanauth.TokenRefreshed)
		case <-ctx.Done():
			t.Fatal("missing TokenRefreshed")
		}
	}
	if refreshed.Profile != "schwab" || refreshed.TokenType != leanauth.TokenTypeBearer ||
		refreshed.Generation != tok.Generation || !refreshed.ExpiresAt.Equal(tok.ExpiresAt) ||
		time.Since(refreshed.At) > 10*time.Second {
		t.Fatalf("TokenRefreshed %+v for %v", refreshed, tok)
	}
	// Make sure the failed-only subscriber is live too: it is connected to
	// the same PUB socket, which added its pipe before the last refresh.
	waitUntil(t, failedOnly.Connected, 5*time.Second)

	e.plan("A1", nil, "unauthorized")
	before := time.Now().Add(-time.Second)
	if _, err := c.GetAccessToken(ctx, "", leanauth.ForceRefresh()); !errors.Is(err, leanauth.ErrUnauthenticated) {
		t.Fatalf("forced refresh against a refusing upstream: %v", err)
	}
	check := func(ev leanauth.Event) {
		t.Helper()
		f, ok := ev.(*leanauth.AuthenticationFailed)
		if !ok {
			t.Fatalf("got %#v, want AuthenticationFailed", ev)
		}
		if f.Profile != "schwab" || f.Brokerage != "CharlesSchwab" || f.AccountID != "A1" ||
			f.Error != "Invalid refresh token" || f.Attempts != 2 || f.At.Before(before) ||
			f.At.After(time.Now().Add(time.Second)) {
			t.Fatalf("AuthenticationFailed %+v", f)
		}
	}
	select {
	case ev := <-failedOnly.Events():
		check(ev) // the first event it ever got: TokenRefreshed was filtered out
	case <-ctx.Done():
		t.Fatal("no AuthenticationFailed on the failed-only subscriber")
	}
	for {
		select {
		case ev := <-all.Events():
			if _, ok := ev.(*leanauth.TokenRefreshed); ok {
				continue
			}
			check(ev)
		case <-ctx.Done():
			t.Fatal("no AuthenticationFailed")
		}
		break
	}
	all.Close()
	select {
	case _, ok := <-all.Events():
		for ok {
			_, ok = <-all.Events()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events not closed by Close")
	}
}

func waitUntil(t *testing.T, cond func() bool, d time.Duration) {
	t.Helper()
	until := time.Now().Add(d)
	for !cond() {
		if time.Now().After(until) {
			t.Fatalf("condition not reached within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOAuth2TokenSource(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	src := leanauth.TokenSource(c, "schwab")
	ot, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if ot.Type() != "Bearer" || !strings.HasPrefix(ot.AccessToken, canaryAccessPrefix) ||
		ot.Expiry.Before(time.Now()) || !ot.Valid() || ot.Extra("generation") != uint64(1) {
		t.Fatalf("oauth2 token type %q expiry %v generation %v", ot.Type(), ot.Expiry, ot.Extra("generation"))
	}
	hc := oauth2.NewClient(ctxTimeout(t, 20*time.Second), src)
	hc.Timeout = 10 * time.Second
	resp, err := hc.Get(e.brokerURL + "api/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var x echo
	json.NewDecoder(resp.Body).Decode(&x)
	if resp.StatusCode != 200 || strings.Join(x.header("Authorization"), "") != "Bearer "+ot.AccessToken {
		t.Fatalf("HTTP %d, Authorization matches: %v", resp.StatusCode,
			strings.Join(x.header("Authorization"), "") == "Bearer "+ot.AccessToken)
	}
	if n := e.leanStat("refresh_calls"); n != 1 {
		t.Fatalf("refresh_calls = %d", n)
	}
}

func TestTransportRefreshesOn401AndRetriesOnce(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	hc := leanauth.NewHTTPClient(c, "schwab")
	hc.Timeout = 10 * time.Second
	get := func() (*http.Response, echo) {
		t.Helper()
		resp, err := hc.Get(e.brokerURL + "api/echo")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var x echo
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &x)
		return resp, x
	}
	resp, x := get()
	tok1, _ := c.GetAccessToken(ctxTimeout(t, 10*time.Second), "")
	if resp.StatusCode != 200 || x.header("Authorization")[0] != "Bearer "+tok1.AccessToken {
		t.Fatalf("first GET: %d", resp.StatusCode)
	}

	e.broker("_control/revoke", map[string]any{"tokens": []string{tok1.AccessToken}})
	// A POST with a replayable body: 401, refresh, the same body again.
	req, _ := http.NewRequest("POST", e.brokerURL+"api/orders", strings.NewReader("order=1"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	json.Unmarshal(b, &x)
	tok2, _ := c.GetAccessToken(ctxTimeout(t, 10*time.Second), "")
	if resp.StatusCode != 200 || x.Body != "order=1" || tok2.Generation != 2 ||
		x.header("Authorization")[0] != "Bearer "+tok2.AccessToken {
		t.Fatalf("POST after revoke: %d body %q generation %d", resp.StatusCode, x.Body, tok2.Generation)
	}
	st := e.broker("_control/stats", nil)["by_status"].(map[string]any)
	if st["401"] != float64(1) || st["200"] != float64(2) {
		t.Fatalf("brokerage statuses %v", st)
	}
	if n := e.leanStat("refresh_calls"); n != 2 {
		t.Fatalf("refresh_calls = %d, want 2", n)
	}

	// A body that cannot be replayed: the 401 comes back as it is.
	e.broker("_control/revoke", map[string]any{"tokens": []string{tok2.AccessToken}})
	req, _ = http.NewRequest("POST", e.brokerURL+"api/orders", io.NopCloser(strings.NewReader("x")))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || e.leanStat("refresh_calls") != 2 {
		t.Fatalf("unreplayable body: %d", resp.StatusCode)
	}

	// The fresh token is refused too: exactly one retry, then the 401.
	var n2 int
	fmt.Sscanf(strings.TrimPrefix(tok2.AccessToken, canaryAccessPrefix), "%d", &n2)
	next := fmt.Sprintf("%s%d", canaryAccessPrefix, n2+1)
	e.broker("_control/revoke", map[string]any{"tokens": []string{next}})
	before := e.brokerStat("requests")
	resp, _ = get()
	if got := e.brokerStat("requests") - before; resp.StatusCode != 401 || got != 2 {
		t.Fatalf("twice refused: HTTP %d after %d upstream requests, want 401 after 2", resp.StatusCode, got)
	}
	if n := e.leanStat("refresh_calls"); n != 3 {
		t.Fatalf("refresh_calls = %d, want 3", n)
	}
}

// nng's REQ resends an unanswered request at once on a new connection when
// the one it went out on breaks. For a Send the client turns that off: the
// call fails at once with ErrUnavailable rather than waiting, until its
// deadline, for a connection to send it again on.
func TestSendWhoseConnectionBreaksIsNotResent(t *testing.T) {
	e := newEnv(t)
	e.start()
	c := e.client()
	ctx := ctxTimeout(t, 30*time.Second)
	if _, err := c.GetAccessToken(ctx, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, &leanauth.SendRequest{URL: e.brokerURL + "api/slow?ms=4000"})
		done <- err
	}()
	if w := e.broker("_control/wait?in_flight=1&timeout_ms=10000", nil); w["reached"] != true {
		t.Fatal("the Send never reached the brokerage")
	}
	killed := time.Now()
	// A SIGKILLed leanauthd "fails" with its signal; only the timeout matters.
	if err := e.stopDaemon(syscall.SIGKILL, 5*time.Second); err != nil &&
		strings.Contains(err.Error(), "did not exit") {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, leanauth.ErrUnavailable) || !strings.Contains(err.Error(), "may or may not") {
			t.Fatalf("err = %v, want ErrUnavailable (may or may not have been carried out)", err)
		}
		if d := time.Since(killed); d > 2*time.Second {
			t.Fatalf("failed after %v, want at once", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the Send did not return")
	}
}
