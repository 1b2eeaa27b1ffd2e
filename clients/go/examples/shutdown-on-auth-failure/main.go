// Command shutdown-on-auth-failure shows how a trading process uses
// leanauthd: it gets a token at start, keeps asking for it while it works,
// and shuts down gracefully — exit status 0, with a message — when leanauthd
// publishes AuthenticationFailed for its profile (no valid token is left, so
// trading cannot go on) or when it receives SIGTERM or SIGINT.
//
//	shutdown-on-auth-failure -rpc tcp://127.0.0.1:7450 -events tcp://127.0.0.1:7451 -profile schwab
//
// It prints one line per step and never the token itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
)

func main() {
	rpc := flag.String("rpc", "tcp://127.0.0.1:7450", "leanauthd's RPC URL")
	events := flag.String("events", "tcp://127.0.0.1:7451", "leanauthd's events URL")
	profile := flag.String("profile", "", "profile (empty: leanauthd's first)")
	every := flag.Duration("every", 10*time.Second, "how often to use the token while working")
	flag.Parse()
	os.Exit(run(*rpc, *events, *profile, *every))
}

func run(rpcURL, eventsURL, profile string, every time.Duration) int {
	// SIGTERM (Kubernetes stopping the pod) or SIGINT: shut down.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	client, err := leanauth.Dial(rpcURL, leanauth.WithConnectTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot reach leanauthd:", err)
		return 1
	}
	defer client.Close()

	// Subscribe before the first token, so that no failure is missed.
	sub, err := leanauth.NewSubscriber(ctx, eventsURL,
		[]string{leanauth.TopicAuthenticationFailed, leanauth.TopicTokenRefreshed},
		leanauth.WithConnectTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot subscribe to leanauthd's events:", err)
		return 1
	}
	defer sub.Close()

	tok, err := getToken(ctx, client, profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "no token:", err)
		return 1
	}
	fmt.Printf("got a %v token (generation %d, expires %s)\n", tok.Type, tok.Generation,
		tok.ExpiresAt.Format(time.RFC3339))
	fmt.Println("ready: working until AuthenticationFailed or SIGTERM")

	tick := time.NewTicker(every)
	defer tick.Stop()
	evs := sub.Events()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("received a termination signal: shutting down gracefully")
			return 0
		case ev, ok := <-evs:
			if !ok {
				if ctx.Err() != nil {
					evs = nil // closed by the signal: the case above reports it
					continue
				}
				fmt.Fprintln(os.Stderr, "event subscription ended")
				return 1
			}
			switch e := ev.(type) {
			case *leanauth.AuthenticationFailed:
				if profile != "" && e.Profile != profile {
					continue
				}
				fmt.Printf("authentication failed for profile %s (%s account %s) after %d attempts: %s; "+
					"shutting down gracefully\n", e.Profile, e.Brokerage, e.AccountID, e.Attempts, e.Error)
				return 0
			case *leanauth.TokenRefreshed:
				fmt.Printf("token refreshed for profile %s: generation %d\n", e.Profile, e.Generation)
			}
		case <-tick.C:
			// The work: fetch the token each time it is needed; leanauthd
			// caches it. A failure here is reported, and the event decides.
			if tok, err = getToken(ctx, client, profile); err != nil && !errors.Is(err, context.Canceled) {
				fmt.Println("token unavailable for now:", err)
			}
		}
	}
}

func getToken(ctx context.Context, c *leanauth.Client, profile string) (*leanauth.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.GetAccessToken(ctx, profile)
}
