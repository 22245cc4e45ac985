#!/usr/bin/env bash
# Regenerates the broker protocol's code from plugins/broker/proto/broker.proto:
# Go (plugins/broker/proto/*.pb.go) with pinned protoc-gen-go and
# protoc-gen-go-grpc installed into $BERTH_CACHE/tools/bin, and Python
# (plugins/sdk/examples/python/broker_pb2*.py) with Debian's grpc_tools.
# protoc is Debian's protobuf-compiler, installed here if missing. The output
# depends only on these pinned versions: running it twice changes nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROTOC_GEN_GO=v1.36.12        # = google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC=v1.6.2
TOOLS="${BERTH_CACHE:-$HOME/.cache/berth}/tools/bin"

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "missing $*: run as root: apt-get install -y $*" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}
command -v protoc >/dev/null || apt_install protobuf-compiler
/usr/bin/python3 -c 'import grpc_tools' 2>/dev/null || apt_install python3-grpc-tools python3-grpcio python3-protobuf

mkdir -p "$TOOLS"
GOBIN="$TOOLS" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
GOBIN="$TOOLS" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"

PROTO_DIR=plugins/broker/proto
PY_DIR=plugins/sdk/examples/python
PATH="$TOOLS:$PATH" protoc -I "$PROTO_DIR" \
  --go_out="$PROTO_DIR" --go_opt=paths=source_relative \
  --go-grpc_out="$PROTO_DIR" --go-grpc_opt=paths=source_relative \
  "$PROTO_DIR/broker.proto"
/usr/bin/python3 -m grpc_tools.protoc -I "$PROTO_DIR" \
  --python_out="$PY_DIR" --grpc_python_out="$PY_DIR" \
  "$PROTO_DIR/broker.proto"
echo "generated: $PROTO_DIR/broker.pb.go $PROTO_DIR/broker_grpc.pb.go $PY_DIR/broker_pb2.py $PY_DIR/broker_pb2_grpc.py"
