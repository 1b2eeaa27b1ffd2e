package leanauth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
)

// TokenType is the kind of access token, which decides the Authorization
// scheme: "Bearer <token>" or "SessionToken <token>".
type TokenType int32

// The token types (leanauth.v1.TokenType).
const (
	TokenTypeUnspecified  TokenType = TokenType(leanauthpb.TokenType_TOKEN_TYPE_UNSPECIFIED)
	TokenTypeBearer       TokenType = TokenType(leanauthpb.TokenType_TOKEN_TYPE_BEARER)
	TokenTypeSessionToken TokenType = TokenType(leanauthpb.TokenType_TOKEN_TYPE_SESSION_TOKEN)
)

// String returns the Authorization scheme: "Bearer" or "SessionToken"
// ("Unspecified" or "TokenType(n)" for other values).
func (t TokenType) String() string {
	switch t {
	case TokenTypeBearer:
		return "Bearer"
	case TokenTypeSessionToken:
		return "SessionToken"
	case TokenTypeUnspecified:
		return "Unspecified"
	}
	return fmt.Sprintf("TokenType(%d)", int32(t))
}

// Token is a brokerage access token. Its String, GoString and Format (so
// every fmt verb) and LogValue (log/slog) never show AccessToken.
type Token struct {
	// Type is the Authorization scheme the token goes with.
	Type TokenType
	// AccessToken is the secret. Never log it.
	AccessToken string
	// ExpiresAt is when leanauthd stops handing this token out (already
	// shortened by the profile's offset_before_expiration_s).
	ExpiresAt time.Time
	// Generation counts the profile's successful refreshes since leanauthd
	// started; pass it to IfGeneration when the token is refused.
	Generation uint64
}

const redacted = "[redacted]"

func (t Token) describe() string {
	tok := ""
	if t.AccessToken != "" {
		tok = redacted
	}
	return fmt.Sprintf("{Type:%v AccessToken:%s ExpiresAt:%s Generation:%d}",
		t.Type, tok, t.ExpiresAt.Format(time.RFC3339Nano), t.Generation)
}

// String describes the token without its secret.
func (t Token) String() string { return "leanauth.Token" + t.describe() }

// GoString describes the token without its secret (for %#v).
func (t Token) GoString() string { return "leanauth.Token" + t.describe() }

// Format makes every fmt verb print String's redacted form.
func (t Token) Format(f fmt.State, verb rune) {
	s := t.String()
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}

// LogValue makes log/slog print the token without its secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("type", t.Type.String()),
		slog.Time("expires_at", t.ExpiresAt),
		slog.Uint64("generation", t.Generation),
	)
}

// AuthorizationHeader returns the Authorization header value, e.g.
// "Bearer abc". It contains the secret.
func (t *Token) AuthorizationHeader() string {
	typ := t.Type
	if typ == TokenTypeUnspecified {
		typ = TokenTypeBearer
	}
	return typ.String() + " " + t.AccessToken
}

// Valid reports whether the token has not expired yet.
func (t *Token) Valid() bool {
	return t != nil && t.AccessToken != "" && time.Now().Before(t.ExpiresAt)
}

// TokenOption modifies a GetAccessToken call.
type TokenOption func(*leanauthpb.GetAccessTokenRequest)

// ForceRefresh says "the token I have is bad": leanauthd drops its cached
// token and fetches a new one.
func ForceRefresh() TokenOption {
	return func(r *leanauthpb.GetAccessTokenRequest) { r.ForceRefresh = true }
}

// IfGeneration makes a forced refresh conditional: leanauthd refreshes only
// while its cached token is still generation g, and otherwise answers with
// the newer token it has. Many callers that saw the same token refused thus
// cause one refresh. It implies ForceRefresh.
func IfGeneration(g uint64) TokenOption {
	return func(r *leanauthpb.GetAccessTokenRequest) {
		r.ForceRefresh = true
		r.IfGeneration = g
	}
}

// GetAccessToken returns profile's access token ("" means leanauthd's first
// profile). leanauthd caches tokens, so this is cheap; call it whenever a
// token is needed rather than keeping one.
//
// Errors: ErrNotFound (unknown profile), ErrUnauthenticated (the Lean API
// refused the refresh), ErrUnavailable (it could not be reached, or
// leanauthd cannot), ErrDeadlineExceeded, ErrInvalidArgument.
func (c *Client) GetAccessToken(ctx context.Context, profile string, opts ...TokenOption) (*Token, error) {
	req := &leanauthpb.GetAccessTokenRequest{Profile: profile}
	for _, o := range opts {
		o(req)
	}
	var resp leanauthpb.GetAccessTokenResponse
	if err := c.call(ctx, MethodGetAccessToken, req, &resp); err != nil {
		return nil, err
	}
	return tokenFromPB(&resp), nil
}

func tokenFromPB(r *leanauthpb.GetAccessTokenResponse) *Token {
	return &Token{
		Type:        TokenType(r.GetTokenType()),
		AccessToken: r.GetAccessToken(),
		ExpiresAt:   unixMS(r.GetExpiresAtUnixMs()),
		Generation:  r.GetGeneration(),
	}
}

// unixMS converts a wire timestamp; 0 is the zero time.
func unixMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
