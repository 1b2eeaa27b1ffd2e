#!/usr/bin/env python3
"""shutdown_on_auth_failure.py -- stop cleanly once leanauthd cannot give us a token.

A trading process gets its brokerage token from leanauthd, then listens for
leanauthd's AuthenticationFailed event (retries exhausted, no valid token
left) and shuts down gracefully when it arrives -- or on SIGTERM/SIGINT --
exiting 0 with a message. Events for other profiles are ignored when
--profile is given.

    python3 shutdown_on_auth_failure.py --url tcp://127.0.0.1:7450 \\
        --events-url tcp://127.0.0.1:7451 --profile schwab

Exit status: 0 after a graceful shutdown, 1 if no token could be had at
start or the events socket could not be reached.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, List, Optional

import leanauth
from leanauth import AuthenticationFailed


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=leanauth.DEFAULT_URL, help="leanauthd's RPC URL")
    p.add_argument("--events-url", default=leanauth.DEFAULT_EVENTS_URL, help="leanauthd's events URL")
    p.add_argument("--profile", default="", help="profile (default: leanauthd's first)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for each call")
    args = p.parse_args(argv)

    with leanauth.Client(args.url, events_url=args.events_url, timeout=args.timeout) as client:
        # Subscribe before asking for the token, so a failure right after it
        # is not missed (PUB/SUB drops what is published before we connect).
        with client.subscribe([AuthenticationFailed]) as sub:
            received: List[int] = []

            def on_signal(signum: int, _frame: Any) -> None:
                # Signal-safe: close() only flags the subscription, wakes the
                # loop below through a reentrant queue and closes the socket.
                received.append(signum)
                sub.close()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)

            if not sub.wait_connected(args.timeout):
                print(f"cannot reach leanauthd's events at {args.events_url}", file=sys.stderr)
                return 1
            try:
                token = client.get_access_token(args.profile)
            except leanauth.LeanAuthError as e:
                print(f"cannot get a token: {e}", file=sys.stderr)
                return 1
            # Never print token.access_token: it is a secret.
            print(f"got a {token.token_type} token (generation {token.generation}), "
                  f"valid until {token.expires_at:%Y-%m-%d %H:%M:%S} UTC", flush=True)
            print("waiting for AuthenticationFailed", flush=True)

            for ev in sub:
                if not isinstance(ev, AuthenticationFailed):
                    continue  # subscribed to nothing else; keeps type checkers happy
                if args.profile and ev.profile != args.profile:
                    continue
                print(f"AuthenticationFailed for profile {ev.profile!r} (account {ev.account_id}, "
                      f"{ev.brokerage}) after {ev.attempts} attempts: {ev.error}; shutting down",
                      flush=True)
                break
            else:
                if received:
                    print(f"{signal.Signals(received[0]).name} received; shutting down", flush=True)
    # A real trading process would stop its algorithm and flatten here.
    print("stopped cleanly", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
