package leanauth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leanauth/leanauth/clients/go/internal/nng"
	"github.com/leanauth/leanauth/clients/go/leanauthpb"
)

func TestDecodeEvents(t *testing.T) {
	at := time.UnixMilli(1796400001000)
	events := []Event{
		&AuthenticationFailed{Profile: "schwab", Brokerage: "CharlesSchwab", AccountID: "A1",
			Error: "Invalid refresh token", Attempts: 4, At: at},
		&TokenRefreshed{Profile: "schwab", TokenType: TokenTypeBearer, ExpiresAt: at.Add(time.Hour),
			At: at, Generation: 3},
		&AuthenticationDegraded{Profile: "p", Error: "HTTP 503", Attempts: 2,
			TokenValidUntil: at.Add(time.Minute), At: at},
		&AuthenticationRecovered{Profile: "p", At: at},
		&UnknownEvent{Name: "leanauth.v2.Future", Payload: []byte{8, 1}},
	}
	for _, ev := range events {
		b, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", ev.Topic(), err)
		}
		if !equalEvents(got, ev) {
			t.Errorf("%s: got %#v, want %#v", ev.Topic(), got, ev)
		}
	}
	// The topic is the full message name.
	if TopicTokenRefreshed != string((&leanauthpb.TokenRefreshed{}).ProtoReflect().Descriptor().FullName()) ||
		TopicAuthenticationFailed != string((&leanauthpb.AuthenticationFailed{}).ProtoReflect().Descriptor().FullName()) ||
		TopicAuthenticationDegraded != string((&leanauthpb.AuthenticationDegraded{}).ProtoReflect().Descriptor().FullName()) ||
		TopicAuthenticationRecovered != string((&leanauthpb.AuthenticationRecovered{}).ProtoReflect().Descriptor().FullName()) {
		t.Error("topic constants differ from the message names")
	}
}

func equalEvents(a, b Event) bool {
	x, _ := EncodeEvent(a)
	y, _ := EncodeEvent(b)
	return a.Topic() == b.Topic() && string(x) == string(y)
}

func TestDecodeEventRejectsMalformed(t *testing.T) {
	if _, err := DecodeEvent([]byte("no-nul-here")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("no NUL: %v", err)
	}
	if _, err := DecodeEvent([]byte(TopicAuthenticationFailed + "\x00\xff\xff")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad payload: %v", err)
	}
	ev, err := DecodeEvent([]byte(TopicAuthenticationRecovered + "\x00"))
	if err != nil || ev.(*AuthenticationRecovered).Profile != "" || !ev.(*AuthenticationRecovered).At.IsZero() {
		t.Errorf("empty payload: %v %v", ev, err)
	}
}

// A fake PUB socket: topics match exactly, malformed events are skipped,
// and the channel closes when the context is done.
func TestSubscriberFiltersAndClosesOnContextDone(t *testing.T) {
	pub, err := nng.Open(nng.Pub)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	url, err := pub.Listen("tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// "leanauth.v1.Token" is a prefix of TokenRefreshed's topic: it must
	// not match it.
	sub, err := NewSubscriber(ctx, url, []string{TopicAuthenticationFailed, "leanauth.v1.Token"},
		WithConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return pub.Connected() == 1 }, 5*time.Second)

	refreshed, _ := EncodeEvent(&TokenRefreshed{Profile: "x", Generation: 1})
	failed, _ := EncodeEvent(&AuthenticationFailed{Profile: "x", Attempts: 4})
	bad := []byte(TopicAuthenticationFailed + "\x00\xff\xff")
	// Publish until the first event arrives (the PUB side may not have added
	// the pipe yet), then check what follows.
	deadline := time.After(5 * time.Second)
	got := 0
	for got == 0 {
		for _, m := range [][]byte{refreshed, bad, failed} {
			if err := pub.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case ev := <-sub.Events():
			f, ok := ev.(*AuthenticationFailed)
			if !ok || f.Profile != "x" || f.Attempts != 4 {
				t.Fatalf("got %#v", ev)
			}
			got++
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event")
		}
	}
	cancel()
	closed := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			if _, isFailed := ev.(*AuthenticationFailed); !isFailed {
				t.Fatalf("unexpected event %#v", ev)
			}
		case <-closed:
			t.Fatal("Events not closed after the context was cancelled")
		}
	}
}

func TestSubscribeToNothingRunningFailsWithConnectTimeout(t *testing.T) {
	_, err := NewSubscriber(context.Background(), "tcp://127.0.0.1:1", nil,
		WithConnectTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	// Without options it returns at once, and closes when ctx is done.
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := Subscribe(ctx, "tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event from nowhere")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed")
	}
}
