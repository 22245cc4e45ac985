#!/bin/sh
# Builds FerretDB (Apache-2.0, github.com/FerretDB/FerretDB) for the mongodb
# broker's tests and puts the binary at ${BERTH_CACHE:-$HOME/.cache/berth}/bin/ferretdb.
#
# FerretDB's module is fetched from the Go module proxy by exact version
# (its version list is refused, so `go install ...@v1.24.0` does not work).
# The module is copied to $BERTH_CACHE/src (never into git), its generated
# build/version/version.txt is written in (without it the binary panics at
# start), and cmd/ferretdb is built from the copy.
#
# Does nothing if the binary already exists. Safe to run concurrently: the
# binary is written to a temporary file and renamed into place.
set -eu

VERSION=v1.24.0
MODULE=github.com/FerretDB/FerretDB
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}
BIN="$CACHE/bin/ferretdb"

if [ -x "$BIN" ]; then
	exit 0
fi

mkdir -p "$CACHE/bin" "$CACHE/src"

# go mod download works outside a module; run it from an empty directory so
# that an enclosing go.mod does not interfere.
dir=$(cd "$CACHE/src" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "ferretdb: cannot download $MODULE@$VERSION" >&2
	exit 1
fi

work=$(mktemp -d "$CACHE/src/ferretdb-$VERSION.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp -R "$dir/." "$work/"
chmod -R u+w "$work"

# The version package embeds *.txt produced by `go generate`; write it in.
printf '%s' "$VERSION" >"$work/build/version/version.txt"

tmp="$BIN.tmp.$$"
(cd "$work" && GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$tmp" ./cmd/ferretdb)
mv -f "$tmp" "$BIN"
echo "ferretdb: built $BIN"
