package leanauth

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/leanauth/leanauth/clients/go/internal/nng"
	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"google.golang.org/protobuf/proto"
)

// Event topics: each event's full protobuf message name.
const (
	TopicAuthenticationFailed    = "leanauth.v1.AuthenticationFailed"
	TopicTokenRefreshed          = "leanauth.v1.TokenRefreshed"
	TopicAuthenticationDegraded  = "leanauth.v1.AuthenticationDegraded"
	TopicAuthenticationRecovered = "leanauth.v1.AuthenticationRecovered"
)

// Event is one event from leanauthd's PUB socket: *AuthenticationFailed,
// *TokenRefreshed, *AuthenticationDegraded, *AuthenticationRecovered, or
// *UnknownEvent for a topic this client does not know. No event carries a
// secret.
type Event interface {
	// Topic returns the event's topic, its full message name.
	Topic() string
	isEvent()
}

// AuthenticationFailed is published when a caller cannot be given a token:
// the refresh's retries are exhausted and no valid token remains. A trading
// process subscribed to it should shut down gracefully.
type AuthenticationFailed struct {
	Profile   string
	Brokerage string
	AccountID string
	// Error is the upstream's message (secrets redacted by leanauthd).
	Error string
	// Attempts is the number of upstream calls made.
	Attempts uint32
	At       time.Time
}

// TokenRefreshed is published after every successful refresh (never with the
// token itself).
type TokenRefreshed struct {
	Profile    string
	TokenType  TokenType
	ExpiresAt  time.Time
	At         time.Time
	Generation uint64
}

// AuthenticationDegraded is published when a background refresh has
// exhausted its retries while the cached token is still valid: it keeps
// being served until TokenValidUntil, and refreshing goes on.
type AuthenticationDegraded struct {
	Profile         string
	Error           string
	Attempts        uint32
	TokenValidUntil time.Time
	At              time.Time
}

// AuthenticationRecovered is published when a refresh succeeds after
// AuthenticationDegraded.
type AuthenticationRecovered struct {
	Profile string
	At      time.Time
}

// UnknownEvent is an event whose topic this client does not know (a newer
// leanauthd); Payload is the encoded message.
type UnknownEvent struct {
	Name    string
	Payload []byte
}

// Topic returns TopicAuthenticationFailed.
func (*AuthenticationFailed) Topic() string { return TopicAuthenticationFailed }

// Topic returns TopicTokenRefreshed.
func (*TokenRefreshed) Topic() string { return TopicTokenRefreshed }

// Topic returns TopicAuthenticationDegraded.
func (*AuthenticationDegraded) Topic() string { return TopicAuthenticationDegraded }

// Topic returns TopicAuthenticationRecovered.
func (*AuthenticationRecovered) Topic() string { return TopicAuthenticationRecovered }

// Topic returns the event's topic.
func (e *UnknownEvent) Topic() string { return e.Name }

func (*AuthenticationFailed) isEvent()    {}
func (*TokenRefreshed) isEvent()          {}
func (*AuthenticationDegraded) isEvent()  {}
func (*AuthenticationRecovered) isEvent() {}
func (*UnknownEvent) isEvent()            {}

// DecodeEvent decodes one PUB message: the topic, one NUL byte, then the
// protobuf message. It fails with ErrInvalidArgument for a message without
// the NUL or with a malformed payload.
func DecodeEvent(msg []byte) (Event, error) {
	i := bytes.IndexByte(msg, 0)
	if i < 0 {
		return nil, errorf(InvalidArgument, "event without a topic")
	}
	topic, payload := string(msg[:i]), msg[i+1:]
	var m proto.Message
	switch topic {
	case TopicAuthenticationFailed:
		m = &leanauthpb.AuthenticationFailed{}
	case TopicTokenRefreshed:
		m = &leanauthpb.TokenRefreshed{}
	case TopicAuthenticationDegraded:
		m = &leanauthpb.AuthenticationDegraded{}
	case TopicAuthenticationRecovered:
		m = &leanauthpb.AuthenticationRecovered{}
	default:
		return &UnknownEvent{Name: topic, Payload: append([]byte(nil), payload...)}, nil
	}
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, errorf(InvalidArgument, "malformed %s: %v", topic, err)
	}
	switch p := m.(type) {
	case *leanauthpb.AuthenticationFailed:
		return &AuthenticationFailed{
			Profile: p.GetProfile(), Brokerage: p.GetBrokerage(), AccountID: p.GetAccountId(),
			Error: p.GetError(), Attempts: p.GetAttempts(), At: unixMS(p.GetAtUnixMs()),
		}, nil
	case *leanauthpb.TokenRefreshed:
		return &TokenRefreshed{
			Profile: p.GetProfile(), TokenType: TokenType(p.GetTokenType()),
			ExpiresAt: unixMS(p.GetExpiresAtUnixMs()), At: unixMS(p.GetAtUnixMs()),
			Generation: p.GetGeneration(),
		}, nil
	case *leanauthpb.AuthenticationDegraded:
		return &AuthenticationDegraded{
			Profile: p.GetProfile(), Error: p.GetError(), Attempts: p.GetAttempts(),
			TokenValidUntil: unixMS(p.GetTokenValidUntilUnixMs()), At: unixMS(p.GetAtUnixMs()),
		}, nil
	case *leanauthpb.AuthenticationRecovered:
		return &AuthenticationRecovered{Profile: p.GetProfile(), At: unixMS(p.GetAtUnixMs())}, nil
	}
	panic("unreachable")
}

// EncodeEvent encodes an event as leanauthd publishes it (for tests and
// tools that stand in for leanauthd).
func EncodeEvent(ev Event) ([]byte, error) {
	var m proto.Message
	switch e := ev.(type) {
	case *AuthenticationFailed:
		m = &leanauthpb.AuthenticationFailed{
			Profile: e.Profile, Brokerage: e.Brokerage, AccountId: e.AccountID,
			Error: e.Error, Attempts: e.Attempts, AtUnixMs: toUnixMS(e.At),
		}
	case *TokenRefreshed:
		m = &leanauthpb.TokenRefreshed{
			Profile: e.Profile, TokenType: leanauthpb.TokenType(e.TokenType),
			ExpiresAtUnixMs: toUnixMS(e.ExpiresAt), AtUnixMs: toUnixMS(e.At),
			Generation: e.Generation,
		}
	case *AuthenticationDegraded:
		m = &leanauthpb.AuthenticationDegraded{
			Profile: e.Profile, Error: e.Error, Attempts: e.Attempts,
			TokenValidUntilUnixMs: toUnixMS(e.TokenValidUntil), AtUnixMs: toUnixMS(e.At),
		}
	case *AuthenticationRecovered:
		m = &leanauthpb.AuthenticationRecovered{Profile: e.Profile, AtUnixMs: toUnixMS(e.At)}
	case *UnknownEvent:
		return append(append([]byte(e.Name), 0), e.Payload...), nil
	default:
		return nil, errorf(InvalidArgument, "unknown event type %T", ev)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, errorf(Internal, "encode %s: %v", ev.Topic(), err)
	}
	return append(append([]byte(ev.Topic()), 0), b...), nil
}

func toUnixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Subscriber receives leanauthd's events. Create it with NewSubscriber.
type Subscriber struct {
	sock   *nng.Socket
	events chan Event
	once   sync.Once
	done   chan struct{}
}

// NewSubscriber connects to leanauthd's events URL and delivers the events
// on the given topics (all events when none are given) on Events, until ctx
// is done or Close is called; then Events is closed. Options: WithTLS,
// WithConnectTimeout (wait for the connection: events published before it is
// up are not received).
//
// Topics match exactly: the subscription is the topic followed by the NUL
// that ends it on the wire, so "leanauth.v1.Token" matches nothing.
// Malformed events are dropped. A subscriber that does not keep up blocks
// its delivery goroutine; nng then drops events for it.
func NewSubscriber(ctx context.Context, url string, topics []string, opts ...Option) (*Subscriber, error) {
	o := buildOptions(opts)
	o.connectTimeout = 0 // subscribe first, then wait
	s, err := openSocket(nng.Sub, url, &o)
	if err != nil {
		return nil, err
	}
	if err := subscribe(s, topics); err != nil {
		s.Close()
		return nil, err
	}
	if d := buildOptions(opts).connectTimeout; d > 0 {
		until := time.Now().Add(d)
		for s.Connected() == 0 {
			if time.Now().After(until) {
				s.Close()
				return nil, errorf(Unavailable, "cannot connect to leanauthd events at %s within %v", url, d)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sub := &Subscriber{sock: s, events: make(chan Event, 64), done: make(chan struct{})}
	go sub.run()
	context.AfterFunc(ctx, func() { sub.Close() })
	return sub, nil
}

func subscribe(s *nng.Socket, topics []string) error {
	if len(topics) == 0 {
		topics = []string{""}
	}
	for _, t := range topics {
		filter := []byte(t)
		if t != "" {
			filter = append(filter, 0)
		}
		if err := s.Subscribe(filter); err != nil {
			return errorf(Internal, "subscribe %q: %v", t, err)
		}
	}
	return nil
}

func (s *Subscriber) run() {
	defer close(s.events)
	for {
		msg, err := s.sock.Recv()
		if err != nil {
			if !nng.IsClosed(err) {
				// Nothing else is expected from a SUB socket; stop rather
				// than spin.
				s.Close()
			}
			return
		}
		ev, err := DecodeEvent(msg)
		if err != nil {
			continue
		}
		select {
		case s.events <- ev:
		case <-s.done:
			return
		}
	}
}

// Events returns the channel events arrive on. It is closed after Close or
// when the context given to NewSubscriber is done.
func (s *Subscriber) Events() <-chan Event { return s.events }

// Connected reports whether the subscriber is connected to leanauthd.
func (s *Subscriber) Connected() bool { return s.sock.Connected() > 0 }

// Close stops the subscription and closes Events (after the event being
// delivered, if any). It is idempotent.
func (s *Subscriber) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		if cerr := s.sock.Close(); cerr != nil {
			err = errorf(Internal, "close: %v", cerr)
		}
	})
	return err
}

// Subscribe is NewSubscriber without options: it returns the events channel,
// which is closed when ctx is done.
func Subscribe(ctx context.Context, url string, topics ...string) (<-chan Event, error) {
	s, err := NewSubscriber(ctx, url, topics)
	if err != nil {
		return nil, err
	}
	return s.Events(), nil
}
