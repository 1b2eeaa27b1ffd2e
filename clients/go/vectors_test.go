package leanauth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"google.golang.org/protobuf/proto"
)

// The shared wire vectors in tests/vectors/ are encoded by protobuf-c on the
// C side. Each must decode to the manifest's fields and re-encode byte for
// byte; request vectors must also be what this client builds from the same
// fields.

const vectorsDir = "../../tests/vectors"

type vector struct {
	File   string                     `json:"file"`
	Kind   string                     `json:"kind"`
	About  string                     `json:"about"`
	Fields map[string]json.RawMessage `json:"fields"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, "manifest.json"))
	if err != nil {
		t.Fatalf("shared vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("manifest.json lists no vectors")
	}
	return vs
}

func field[T any](t *testing.T, f map[string]json.RawMessage, name string) T {
	t.Helper()
	var v T
	raw, ok := f[name]
	if !ok {
		t.Fatalf("manifest has no field %q", name)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("field %q: %v", name, err)
	}
	return v
}

func pairs(hs []*leanauthpb.Header) [][2]string {
	out := [][2]string{}
	for _, h := range hs {
		out = append(out, [2]string{h.Name, h.Value})
	}
	return out
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eqJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("%s: got %s, want %s", what, g, w)
	}
}

func TestSharedVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.File, func(t *testing.T) {
			wire, err := os.ReadFile(filepath.Join(vectorsDir, v.File))
			if err != nil {
				t.Fatal(err)
			}
			var again []byte
			switch v.Kind {
			case "leanauth.v1.RpcRequest":
				again = checkRequestVector(t, v, wire)
			case "leanauth.v1.RpcResponse":
				again = checkResponseVector(t, v, wire)
			case "event":
				again = checkEventVector(t, v, wire)
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
			if !bytes.Equal(again, wire) {
				t.Errorf("re-encoded differs:\n got %x\nwant %x", again, wire)
			}
		})
	}
}

func checkRequestVector(t *testing.T, v vector, wire []byte) []byte {
	var env leanauthpb.RpcRequest
	if err := proto.Unmarshal(wire, &env); err != nil {
		t.Fatal(err)
	}
	f := v.Fields
	eqJSON(t, "method", env.Method, field[string](t, f, "method"))
	eqJSON(t, "timeout_ms", env.TimeoutMs, field[uint32](t, f, "timeout_ms"))
	md := field[map[string]string](t, f, "metadata")
	gotMD := env.Metadata
	if gotMD == nil {
		gotMD = map[string]string{}
	}
	eqJSON(t, "metadata", gotMD, md)
	p := f["payload"]
	var payload proto.Message
	switch kind := field[string](t, f, "payload_kind"); kind {
	case "leanauth.v1.GetAccessTokenRequest":
		var want struct {
			Profile      string `json:"profile"`
			ForceRefresh bool   `json:"force_refresh"`
			IfGeneration uint64 `json:"if_generation"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.GetAccessTokenRequest
		if err := proto.Unmarshal(env.Payload, &got); err != nil {
			t.Fatal(err)
		}
		eqJSON(t, "payload", []any{got.Profile, got.ForceRefresh, got.IfGeneration},
			[]any{want.Profile, want.ForceRefresh, want.IfGeneration})
		// What this client builds for the same call.
		req := &leanauthpb.GetAccessTokenRequest{Profile: want.Profile}
		if want.ForceRefresh {
			ForceRefresh()(req)
		}
		if want.IfGeneration != 0 {
			IfGeneration(want.IfGeneration)(req)
		}
		payload = req
	case "leanauth.v1.SendRequest":
		var want struct {
			Profile   string      `json:"profile"`
			Method    string      `json:"method"`
			URL       string      `json:"url"`
			Headers   [][2]string `json:"headers"`
			BodyHex   string      `json:"body_hex"`
			TimeoutMs uint32      `json:"timeout_ms"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.SendRequest
		if err := proto.Unmarshal(env.Payload, &got); err != nil {
			t.Fatal(err)
		}
		eqJSON(t, "payload", []any{got.Profile, got.Method, got.Url, pairs(got.Headers),
			hex.EncodeToString(got.Body), got.TimeoutMs},
			[]any{want.Profile, want.Method, want.URL, want.Headers, want.BodyHex, want.TimeoutMs})
		sr := &SendRequest{Profile: want.Profile, Method: want.Method, URL: want.URL,
			Body: mustHex(t, want.BodyHex)}
		for _, h := range want.Headers {
			sr.Headers = append(sr.Headers, Header{Name: h[0], Value: h[1]})
		}
		payload = sendRequestToPB(sr, want.TimeoutMs)
	case "leanauth.v1.HealthCheckRequest":
		var want struct {
			Profile string `json:"profile"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.HealthCheckRequest
		if err := proto.Unmarshal(env.Payload, &got); err != nil {
			t.Fatal(err)
		}
		eqJSON(t, "payload", got.Profile, want.Profile)
		payload = &leanauthpb.HealthCheckRequest{Profile: want.Profile}
	default:
		t.Fatalf("unknown payload_kind %q", kind)
	}
	built, err := buildRequest(env.Method, payload, env.TimeoutMs, md["request-id"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, wire) {
		t.Errorf("client-built envelope differs:\n got %x\nwant %x", built, wire)
	}
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func checkResponseVector(t *testing.T, v vector, wire []byte) []byte {
	var env leanauthpb.RpcResponse
	if err := proto.Unmarshal(wire, &env); err != nil {
		t.Fatal(err)
	}
	f := v.Fields
	var st struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
	}
	json.Unmarshal(f["status"], &st)
	eqJSON(t, "status", []any{env.GetStatus().GetCode(), env.GetStatus().GetMessage()},
		[]any{st.Code, st.Message})
	p := f["payload"]
	switch kind := field[*string](t, f, "payload_kind"); {
	case kind == nil:
		if len(env.Payload) != 0 {
			t.Errorf("payload %x, want none", env.Payload)
		}
		err := parseResponse(wire, &leanauthpb.GetAccessTokenResponse{})
		e, ok := err.(*Error)
		if !ok || int32(e.Code) != st.Code || e.Message != st.Message {
			t.Errorf("parseResponse: %v", err)
		}
	case *kind == "leanauth.v1.GetAccessTokenResponse":
		var want struct {
			TokenType   string `json:"token_type"`
			AccessToken string `json:"access_token"`
			ExpiresAt   int64  `json:"expires_at_unix_ms"`
			Generation  uint64 `json:"generation"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.GetAccessTokenResponse
		if err := parseResponse(wire, &got); err != nil {
			t.Fatal(err)
		}
		tok := tokenFromPB(&got)
		eqJSON(t, "token", []any{leanauthpb.TokenType(tok.Type).String(), tok.AccessToken,
			tok.ExpiresAt.UnixMilli(), tok.Generation},
			[]any{want.TokenType, want.AccessToken, want.ExpiresAt, want.Generation})
	case *kind == "leanauth.v1.SendResponse":
		var want struct {
			StatusCode int         `json:"status_code"`
			Headers    [][2]string `json:"headers"`
			BodyHex    string      `json:"body_hex"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.SendResponse
		if err := parseResponse(wire, &got); err != nil {
			t.Fatal(err)
		}
		r := sendResponseFromPB(&got)
		var hs [][2]string
		for _, h := range r.Headers {
			hs = append(hs, [2]string{h.Name, h.Value})
		}
		eqJSON(t, "send", []any{r.StatusCode, hs, hex.EncodeToString(r.Body)},
			[]any{want.StatusCode, want.Headers, want.BodyHex})
	case *kind == "leanauth.v1.HealthCheckResponse":
		var want struct {
			Status string `json:"status"`
		}
		json.Unmarshal(p, &want)
		var got leanauthpb.HealthCheckResponse
		if err := parseResponse(wire, &got); err != nil {
			t.Fatal(err)
		}
		eqJSON(t, "health", got.Status.String(), want.Status)
	default:
		t.Fatalf("unknown payload_kind %q", *kind)
	}
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func checkEventVector(t *testing.T, v vector, wire []byte) []byte {
	ev, err := DecodeEvent(wire)
	if err != nil {
		t.Fatal(err)
	}
	f := v.Fields
	eqJSON(t, "topic", ev.Topic(), field[string](t, f, "topic"))
	ms := func(tm time.Time) int64 { return tm.UnixMilli() }
	var got, want any
	switch e := ev.(type) {
	case *AuthenticationFailed:
		got = []any{e.Profile, e.Brokerage, e.AccountID, e.Error, e.Attempts, ms(e.At)}
		want = []any{field[string](t, f, "profile"), field[string](t, f, "brokerage"),
			field[string](t, f, "account_id"), field[string](t, f, "error"),
			field[uint32](t, f, "attempts"), field[int64](t, f, "at_unix_ms")}
	case *TokenRefreshed:
		got = []any{e.Profile, leanauthpb.TokenType(e.TokenType).String(), ms(e.ExpiresAt), ms(e.At), e.Generation}
		want = []any{field[string](t, f, "profile"), field[string](t, f, "token_type"),
			field[int64](t, f, "expires_at_unix_ms"), field[int64](t, f, "at_unix_ms"),
			field[uint64](t, f, "generation")}
	case *AuthenticationDegraded:
		got = []any{e.Profile, e.Error, e.Attempts, ms(e.TokenValidUntil), ms(e.At)}
		want = []any{field[string](t, f, "profile"), field[string](t, f, "error"),
			field[uint32](t, f, "attempts"), field[int64](t, f, "token_valid_until_unix_ms"),
			field[int64](t, f, "at_unix_ms")}
	case *AuthenticationRecovered:
		got = []any{e.Profile, ms(e.At)}
		want = []any{field[string](t, f, "profile"), field[int64](t, f, "at_unix_ms")}
	default:
		t.Fatalf("unexpected event %T", ev)
	}
	eqJSON(t, "fields", got, want)
	again, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return again
}
