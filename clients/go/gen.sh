#!/bin/sh
# gen.sh -- regenerate the Go protobuf code in leanauthpb/ from
# proto/leanauth/v1/*.proto.
#
# Usage: ./gen.sh [OUTDIR]   (default: the leanauthpb/ beside this script)
#
# Needs protoc on PATH and the go command. protoc-gen-go is built from the
# google.golang.org/protobuf version that go.mod requires, so the generated
# code always matches the runtime (no protoc-gen-go on PATH is needed).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/leanauthpb}

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen.sh: protoc not found on PATH (Debian: apt-get install protobuf-compiler)" >&2
	exit 1
fi
if ! command -v go >/dev/null 2>&1; then
	echo "gen.sh: the go command is not on PATH" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

(cd "$here" && go build -o "$tmp/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go) || {
	echo "gen.sh: cannot build protoc-gen-go from go.mod's google.golang.org/protobuf" >&2
	exit 1
}

mkdir -p "$tmp/out"
protoc --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
	-I "$root/proto" \
	--go_out="$tmp/out" --go_opt=paths=source_relative \
	"$root"/proto/leanauth/v1/*.proto

mkdir -p "$out"
rm -f "$out"/*.pb.go
cp "$tmp"/out/leanauth/v1/*.pb.go "$out"/
