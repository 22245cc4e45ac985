#!/usr/bin/env bash
# Builds the Consul and Vault dev agents that Berth's backend tests start
# (backends/devagent), from the Go modules in tools/agents/consul and
# tools/agents/vault. Only MPL-2.0 releases are used:
#   consul: github.com/hashicorp/consul v1.14.8
#   vault:  github.com/hashicorp/vault  (version pinned in tools/agents/vault/go.mod)
#
# Usage: tools/agents/build.sh [consul|vault|all]     (default: all)
#
# Binaries go to ${BERTH_CACHE:-$HOME/.cache/berth}/bin/{consul,vault}, outside
# the repository. A binary is rebuilt only when it is missing or its inputs
# (go.mod, go.sum, main.go, this script) changed; a stamp file beside it
# records the inputs' hash. Each build writes a temporary file and renames it,
# so an interrupted build never leaves a broken binary behind. Cold builds take
# minutes (Consul ~4-8, Vault ~10-15 and several GB of memory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BERTH_CACHE:-$HOME/.cache/berth}
bindir=$cache/bin
go=${GO:-go}

usage() { echo "usage: $0 [consul|vault|all]" >&2; exit 2; }

# stamp NAME: the hash of everything the binary NAME is built from.
stamp() {
	(cat "$here/$1/go.mod" "$here/$1/go.sum" "$here/$1/main.go" "$here/build.sh"; "$go" env GOVERSION) | sha256sum | cut -d' ' -f1
}

# fresh NAME: the cached binary exists, runs, and was built from these inputs.
fresh() {
	local out=$bindir/$1
	[ -x "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$(stamp "$1")" ] && "$out" version >/dev/null 2>&1
}

# build NAME SRCDIR [go build flags...]: build SRCDIR into the cache atomically.
build() {
	local name=$1 src=$2
	shift 2
	local out=$bindir/$name tmp
	mkdir -p "$bindir"
	tmp=$(mktemp "$bindir/.$name.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	local start=$SECONDS
	echo "$name: building from $src (cold builds take several minutes)"
	(cd "$src" && GOFLAGS="-mod=mod -buildvcs=false" "$go" build "$@" -o "$tmp" .)
	chmod +x "$tmp"
	"$tmp" version >/dev/null
	mv -f "$tmp" "$out"
	trap - EXIT
	stamp "$name" >"$out.stamp"
	echo "$name: built $out in $((SECONDS - start))s ($(du -h "$out" | cut -f1)): $("$out" version | head -1)"
}

build_consul() {
	if fresh consul; then
		echo "consul: $bindir/consul is up to date ($("$bindir/consul" version | head -1))"
		return
	fi
	build consul "$here/consul"
}

build_vault() {
	if fresh vault; then
		echo "vault: $bindir/vault is up to date ($("$bindir/vault" version | head -1))"
		return
	fi
	build vault "$here/vault"
}

case ${1:-all} in
consul) build_consul ;;
vault) build_vault ;;
all) build_consul; build_vault ;;
*) usage ;;
esac
