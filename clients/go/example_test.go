package leanauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
	"golang.org/x/oauth2"
)

// These examples are compiled, not run: they need a leanauthd.

func Example() {
	c, err := leanauth.Dial("tcp://127.0.0.1:7450", leanauth.WithConnectTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tok, err := c.GetAccessToken(ctx, "schwab")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok) // leanauth.Token{Type:Bearer AccessToken:[redacted] ...}
}

func ExampleClient_GetAccessToken_refused() {
	c, _ := leanauth.Dial("tcp://127.0.0.1:7450")
	ctx := context.Background()
	tok, err := c.GetAccessToken(ctx, "schwab")
	switch {
	case errors.Is(err, leanauth.ErrNotFound):
		log.Fatal("no such profile")
	case err != nil:
		log.Fatal(err)
	}
	// ... the brokerage answered 401 to tok: ask for a new one, once for
	// everyone who saw this generation refused.
	tok, err = c.GetAccessToken(ctx, "schwab", leanauth.IfGeneration(tok.Generation))
	_ = tok
}

func ExampleSubscribe() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := leanauth.Subscribe(ctx, "tcp://127.0.0.1:7451", leanauth.TopicAuthenticationFailed)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if f, ok := ev.(*leanauth.AuthenticationFailed); ok {
			log.Printf("no token for %s: %s; shutting down", f.Profile, f.Error)
			return
		}
	}
}

func ExampleTokenSource() {
	c, _ := leanauth.Dial("tcp://127.0.0.1:7450")
	hc := oauth2.NewClient(context.Background(), leanauth.TokenSource(c, "schwab"))
	resp, err := hc.Get("https://api.schwabapi.com/trader/v1/accounts")
	if err == nil {
		resp.Body.Close()
	}
}

func ExampleTransport() {
	c, _ := leanauth.Dial("tcp://127.0.0.1:7450")
	// Refreshes the token and retries once when the brokerage answers 401.
	hc := &http.Client{Transport: &leanauth.Transport{Client: c, Profile: "schwab"}}
	resp, err := hc.Get("https://api.schwabapi.com/trader/v1/accounts")
	if err == nil {
		resp.Body.Close()
	}
}

func ExampleClient_Send() {
	c, _ := leanauth.Dial("tcp://127.0.0.1:7450")
	resp, err := c.Send(context.Background(), &leanauth.SendRequest{
		Profile: "schwab",
		Method:  "POST",
		URL:     "https://api.schwabapi.com/trader/v1/accounts/A1/orders",
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    []byte(`{"orderType":"MARKET"}`),
	})
	if err != nil {
		log.Fatal(err) // the call failed; an HTTP error status is not an error
	}
	fmt.Println(resp.StatusCode)
}
