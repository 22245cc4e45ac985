#!/usr/bin/env bash
# Builds a Nomad v1.6.3 agent (MPL-2.0; Nomad 1.7 and later are BUSL-1.1)
# from the Go module proxy, for Berth's optional end-to-end tests against a
# real Nomad (see README.md here). NOT part of `make test`: those tests run
# only when NOMAD_ADDR is set.
#
# Usage: tools/nomad/build.sh
#
# Nomad's go.mod carries replace directives (ignored in a dependency), so
# `go install github.com/hashicorp/nomad@v1.6.3` fails; this directory is a
# wrapper module that repeats them and pins github.com/hashicorp/nomad/api
# to the v1.6.3 commit. No Nomad source is copied or patched.
#
# The binary goes to ${BERTH_CACHE:-$HOME/.cache/berth}/bin/nomad, outside
# the repository, with a .stamp beside it (hash of go.mod, go.sum, main.go,
# this script and the Go version); it is rebuilt only when missing or stale,
# into a temporary file renamed at the end. The build took under 5 minutes
# on 2 CPUs once the modules were downloaded (the downloads take a few more).
# Built as Nomad's GNUmakefile does, with cgo, without the "ui" tag (no web
# UI is embedded).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BERTH_CACHE:-$HOME/.cache/berth}
bindir=$cache/bin
out=$bindir/nomad
go=${GO:-go}

stamp() {
	(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh"; "$go" env GOVERSION) | sha256sum | cut -d' ' -f1
}

if [ -x "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$(stamp)" ] && "$out" version >/dev/null 2>&1; then
	echo "nomad: $out is up to date ($("$out" version | head -1))"
	exit 0
fi

mkdir -p "$bindir"
tmp=$(mktemp "$bindir/.nomad.XXXXXX")
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
echo "nomad: building from $here (a cold build takes several minutes)"
(cd "$here" && CGO_ENABLED=1 GOFLAGS="-mod=mod -buildvcs=false" "$go" build -trimpath -o "$tmp" .)
chmod +x "$tmp"
"$tmp" version >/dev/null
mv -f "$tmp" "$out"
trap - EXIT
stamp >"$out.stamp"
echo "nomad: built $out in $((SECONDS - start))s ($(du -h "$out" | cut -f1)): $("$out" version | head -1)"
