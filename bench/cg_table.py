#!/usr/bin/env python3
"""cg_table.py -- turns two callgrind profiles of the token bench into a
Markdown table of instructions per call: leanauthd's REP callback
(la_rpc_cb, collected with --toggle-collect=la_rpc_cb) beside the echo
floor's (b_echo_cb). Instruction counts are deterministic, unlike timings on
a shared 2-core machine.

usage: cg_table.py LEANAUTHD_CALLGRIND_OUT ECHO_CALLGRIND_OUT
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:\*\s+)?\S*?:(\S+) \[")
CALL = re.compile(r"^\s*[\d,]+\s+\(\s*[\d.]+%\)\s+>\s+\S*?:(\S+) \(([\d,]+)x\)")

# leanauthd's functions, grouped (inclusive costs inside the callback).
GROUPS = [
    ("protobuf decode (envelope + request, unpack and free)",
     ["leanauth__v1__rpc_request__unpack", "leanauth__v1__get_access_token_request__unpack",
      "leanauth__v1__rpc_request__free_unpacked",
      "leanauth__v1__get_access_token_request__free_unpacked"]),
    ("protobuf encode (response + envelope)",
     ["leanauth__v1__get_access_token_response__pack",
      "leanauth__v1__get_access_token_response__get_packed_size",
      "leanauth__v1__rpc_response__pack", "leanauth__v1__rpc_response__get_packed_size"]),
    ("token cache lookup (la_cache_get)", ["la_cache_get"]),
    ("nng message alloc + free", ["nng_msg_alloc", "nng_msg_free", "nng_msg_realloc"]),
    ("nng_ctx_send (reply)", ["nng_ctx_send"]),
    ("nng_ctx_recv (re-arm)", ["nng_ctx_recv"]),
]


def annotate(path, tree):
    args = ["callgrind_annotate", "--inclusive=yes", "--threshold=100"]
    if tree:
        args.append("--tree=calling")
    return subprocess.run(args + [path], capture_output=True, text=True, check=True).stdout


def profile(path, cb):
    flat = annotate(path, False)
    incl = {}
    total = None
    for line in flat.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
        m = LINE.match(line)
        if m and m.group(2) not in incl:
            incl[m.group(2)] = int(m.group(1).replace(",", ""))
    # Calls: how often the callback re-armed its receive = requests served.
    calls = 0
    inside = False
    for line in annotate(path, True).splitlines():
        if re.search(r"\*\s+\S*?:%s \[" % cb, line):
            inside = True
            continue
        if inside and not line.strip():
            break
        m = CALL.match(line)
        if inside and m and m.group(1) == "nng_ctx_recv":
            calls = int(m.group(2).replace(",", ""))
    return total or 0, calls, incl


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    la_total, la_calls, la = profile(sys.argv[1], "la_rpc_cb")
    ec_total, ec_calls, ec = profile(sys.argv[2], "b_echo_cb")
    if la_calls == 0 or ec_calls == 0:
        sys.exit("cg_table.py: no calls found in the profiles")
    per = lambda v, n: v / n
    print("| instructions per call, inside the REP callback | leanauthd | echo floor |")
    print("|---|---:|---:|")
    rest_la, rest_ec = la_total, ec_total
    for name, funcs in GROUPS:
        a = sum(la.get(f, 0) for f in funcs)
        b = sum(ec.get(f, 0) for f in funcs)
        rest_la -= a
        rest_ec -= b
        print("| %s | %.0f | %s |" % (name, per(a, la_calls),
                                     "%.0f" % per(b, ec_calls) if b else "-"))
    print("| everything else (dispatch, clocks, logging check, copies) | %.0f | %.0f |"
          % (per(rest_la, la_calls), per(rest_ec, ec_calls)))
    print("| **total** | **%.0f** | **%.0f** |" % (per(la_total, la_calls), per(ec_total, ec_calls)))
    print()
    print("(%d leanauthd calls and %d echo calls profiled; ratio %.2f.)"
          % (la_calls, ec_calls, per(la_total, la_calls) / per(ec_total, ec_calls)))


if __name__ == "__main__":
    main()
