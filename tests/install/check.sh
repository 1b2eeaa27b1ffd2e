#!/bin/sh
# check.sh BUILD_DIR -- installs the build into a temp prefix and builds
# consumer.c against it twice: with pkg-config and with CMake's
# find_package(leanauth). Both programs must run.
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)

PKG_CONFIG_PATH="$libdir/pkgconfig" cc -o "$tmp/pc" "$here/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs leanauth)
LD_LIBRARY_PATH="$libdir" "$tmp/pc"

cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/consumer"
test -x "$tmp/prefix/bin/leanauth"
test -x "$tmp/prefix/bin/leanauthd"
echo "install: pkg-config and find_package consumers both work"
