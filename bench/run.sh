#!/usr/bin/env bash
# run.sh -- builds leanauth (Release) and runs the benches with short
# durations, then writes bench/results.md: machine, date, versions and every
# table. Each bench invocation takes about 10 s; the whole run about a
# minute on 2 cores (plus the build). See bench/README.md.
#
# usage: bench/run.sh [--no-callgrind]
#   BENCH_BUILD_DIR  build directory (default: build-bench)
set -euo pipefail
cd "$(dirname "$0")/.."

callgrind=1
[ "${1:-}" = "--no-callgrind" ] && callgrind=0
build=${BENCH_BUILD_DIR:-build-bench}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bench_token leanauthd >/dev/null

bench="$build/bench/bench_token"
out=bench/results.md
tmp=$(mktemp)
log=$(mktemp)
# On failure, show what the benches said on stderr.
trap 'rc=$?; [ $rc -ne 0 ] && tail -n 30 "$log" >&2; rm -f "$tmp" "$log"' EXIT

step() { # step TITLE CMD... : runs a bench, appends its tables and timing
  local title=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  echo "bench/run.sh: $title" >&2
  "$@" >>"$tmp" 2>>"$log"
  t1=$(date +%s.%N)
  awk -v t="$title" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "_(%s: %.1f s wall, including start-up)_\n\n", t, b - a }' >>"$tmp"
}

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

{
  echo "# leanauth benchmark results"
  echo
  echo "Written by \`bench/run.sh\`; how to read it: \`bench/README.md\`."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- server clients bench 2>/dev/null || echo ' (+ local changes)') |"
  echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
  echo "| nproc | $(nproc) |"
  echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| kernel | $(uname -r) |"
  echo "| build | Release (-O3), gcc $(gcc -dumpfullversion) |"
  echo "| libraries | nng $(pkgver libnng1), libcurl $(pkgver libcurl4), protobuf-c $(pkgver libprotobuf-c1) |"
  echo "| leanauthd | $("$build/server/leanauthd" --version) |"
  echo
  echo "A shared 2-core VM: run-to-run noise is ±10-30 % on timings, so each"
  echo "table runs leanauthd and its baseline in turns within one invocation,"
  echo "and the per-round ratio range is shown. Instruction counts (last"
  echo "section) are exact."
  echo
} >"$tmp"

step "token" timeout 120 "$bench" --mode token

step "send, 8 workers (default)" timeout 120 "$bench" --mode send --seconds 0.25
step "send, 4 workers" timeout 120 "$bench" --mode send --seconds 0.25 --workers 4
{
  echo "The two Send tables differ only in \`workers\`. Either way leanauthd"
  echo "keeps its brokerage connections (*new conns / 100 calls* near 0): the"
  echo "workers share one libcurl connection cache sized for them (libcurl's"
  echo "default of 5 would close idle connections as soon as more than 5"
  echo "Sends ran at once, as an earlier run showed: 95 new per 100 calls)."
  echo
} >>"$tmp"

step "cold" timeout 120 "$bench" --mode cold

if [ $callgrind -eq 1 ] && command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
  cg=$(mktemp -d)
  {
    echo "## Instructions per call (callgrind)"
    echo
    echo "The token bench once more at 1 client thread with leanauthd and"
    echo "the echo server each under \`valgrind --tool=callgrind\`, collecting"
    echo "only inside their REP callback (\`--toggle-collect=la_rpc_cb\` /"
    echo "\`b_echo_cb\`): what each server does per request between nng handing"
    echo "it the message and it handing nng the reply. nng's transport"
    echo "threads and the kernel, the same for both, are not in these counts."
    echo
  } >>"$tmp"
  echo "bench/run.sh: callgrind" >&2
  BENCH_WRAP_LEANAUTHD="$(command -v valgrind) --tool=callgrind --callgrind-out-file=$cg/la.%p --toggle-collect=la_rpc_cb" \
  BENCH_WRAP_ECHO="$(command -v valgrind) --tool=callgrind --callgrind-out-file=$cg/echo.%p --toggle-collect=b_echo_cb" \
    timeout 300 "$bench" --mode token --threads 1 --reps 1 --seconds 2 \
    --warmup 0.3 >/dev/null 2>>"$log"
  python3 bench/cg_table.py "$cg"/la.* "$cg"/echo.* >>"$tmp"
  echo >>"$tmp"
  rm -rf "$cg"
fi

mv "$tmp" "$out"
echo "bench/run.sh: wrote $out" >&2
