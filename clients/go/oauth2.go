package leanauth

import (
	"context"
	"io"
	"net/http"

	"golang.org/x/oauth2"
)

// TokenSource adapts a profile's tokens to golang.org/x/oauth2, so that
// oauth2.NewClient(ctx, leanauth.TokenSource(c, "schwab")) makes HTTP calls
// with them. The oauth2.Token carries the token type ("Bearer" or
// "SessionToken"), the expiry, and the generation as Extra("generation").
//
// Each Token call asks leanauthd (which caches), with the client's default
// timeout. oauth2's own reuse wrapper never refreshes a token that the server
// refused; use Transport for that.
func TokenSource(c *Client, profile string) oauth2.TokenSource {
	return &tokenSource{c: c, profile: profile}
}

type tokenSource struct {
	c       *Client
	profile string
}

// Token implements oauth2.TokenSource.
func (s *tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.c.GetAccessToken(context.Background(), s.profile)
	if err != nil {
		return nil, err
	}
	return oauth2Token(t), nil
}

func oauth2Token(t *Token) *oauth2.Token {
	typ := t.Type
	if typ == TokenTypeUnspecified {
		typ = TokenTypeBearer
	}
	return (&oauth2.Token{
		AccessToken: t.AccessToken,
		TokenType:   typ.String(),
		Expiry:      t.ExpiresAt,
	}).WithExtra(map[string]any{"generation": t.Generation})
}

// Transport is an http.RoundTripper that sets each request's Authorization
// header from a profile's token and, when the server answers 401, asks
// leanauthd for a new token (ForceRefresh with IfGeneration of the refused
// one, so that many refused callers cause one refresh) and retries once.
//
// A request whose body cannot be replayed (no GetBody) is not retried: its
// 401 is returned as it is. Requests from http.NewRequest with a
// *bytes.Buffer, *bytes.Reader or *strings.Reader body can be replayed.
type Transport struct {
	// Client is the leanauthd client tokens come from.
	Client *Client
	// Profile is the token's profile ("" means leanauthd's first).
	Profile string
	// Base makes the HTTP calls; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// NewHTTPClient returns an *http.Client whose requests carry profile's token
// (see Transport).
func NewHTTPClient(c *Client, profile string) *http.Client {
	return &http.Client{Transport: &Transport{Client: c, Profile: profile}}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tok, err := t.Client.GetAccessToken(ctx, t.Profile)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(authorized(req, tok, req.Body))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	body, ok := replayBody(req)
	if !ok {
		return resp, nil
	}
	fresh, err := t.Client.GetAccessToken(ctx, t.Profile, IfGeneration(tok.Generation))
	if err != nil {
		// The 401 stands: better than an error that hides it.
		if body != nil {
			body.Close()
		}
		return resp, nil
	}
	drain(resp.Body)
	return t.base().RoundTrip(authorized(req, fresh, body))
}

// authorized clones req with the token's Authorization header and body.
func authorized(req *http.Request, tok *Token, body io.ReadCloser) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", tok.AuthorizationHeader())
	r.Body = body
	return r
}

// replayBody returns a fresh copy of req's body for a retry.
func replayBody(req *http.Request) (io.ReadCloser, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	return b, true
}

// drain reads a little of a response body (so the connection can be reused)
// and closes it.
func drain(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	b.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

var (
	_ http.RoundTripper  = (*Transport)(nil)
	_ oauth2.TokenSource = (*tokenSource)(nil)
)
