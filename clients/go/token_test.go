package leanauth

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTokenNeverPrintsItsSecret(t *testing.T) {
	tok := &Token{Type: TokenTypeSessionToken, AccessToken: "CANARY-SECRET",
		ExpiresAt: time.UnixMilli(1796400000123).UTC(), Generation: 3}
	outs := []string{
		fmt.Sprint(tok), fmt.Sprint(*tok), fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d", tok, tok, tok, tok, tok, tok, tok),
		fmt.Sprintf("%v %+v %#v", *tok, *tok, *tok), tok.String(), tok.GoString(),
		fmt.Sprintf("%v", []*Token{tok}), fmt.Sprintf("%+v", struct{ T Token }{*tok}),
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("got", "token", tok, "value", *tok)
	outs = append(outs, buf.String())
	for _, s := range outs {
		if strings.Contains(s, "CANARY") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if s := tok.String(); !strings.Contains(s, "SessionToken") || !strings.Contains(s, "[redacted]") ||
		!strings.Contains(s, "Generation:3") {
		t.Errorf("String() = %s", s)
	}
	if !strings.Contains(buf.String(), `"generation":3`) {
		t.Errorf("slog: %s", buf.String())
	}
	if got := tok.AuthorizationHeader(); got != "SessionToken CANARY-SECRET" {
		t.Errorf("AuthorizationHeader() = %q", got)
	}
	if got := (&Token{AccessToken: "x"}).AuthorizationHeader(); got != "Bearer x" {
		t.Errorf("unspecified type: %q", got)
	}
}

func TestTokenTypeStrings(t *testing.T) {
	for typ, want := range map[TokenType]string{
		TokenTypeBearer: "Bearer", TokenTypeSessionToken: "SessionToken",
		TokenTypeUnspecified: "Unspecified", TokenType(9): "TokenType(9)",
	} {
		if typ.String() != want {
			t.Errorf("%d: %q", typ, typ.String())
		}
	}
}

func TestTokenValid(t *testing.T) {
	if (&Token{AccessToken: "x", ExpiresAt: time.Now().Add(time.Minute)}).Valid() != true ||
		(&Token{AccessToken: "x", ExpiresAt: time.Now().Add(-time.Second)}).Valid() ||
		(*Token)(nil).Valid() {
		t.Error("Valid")
	}
}
