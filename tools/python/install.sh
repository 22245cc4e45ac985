#!/usr/bin/env bash
# Installs what the Python example broker (plugins/sdk/examples/python) and
# its conformance test need: Debian's python3-grpcio and python3-protobuf for
# /usr/bin/python3 (and python3-grpc-tools, which `make proto` uses), when
# /usr/bin/python3 cannot import them yet. Safe to run repeatedly.
set -u
if /usr/bin/python3 -c 'import grpc, google.protobuf, grpc_tools' 2>/dev/null; then
  echo "python3-grpcio: installed"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "python3-grpcio: missing; run as root: apt-get install -y python3-grpcio python3-protobuf python3-grpc-tools"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
for _ in 1 2 3 4 5 6; do   # dpkg may be locked by another installation for a while
  if apt-get install -y -q --no-install-recommends python3-grpcio python3-protobuf python3-grpc-tools >/dev/null 2>&1 ||
     { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends python3-grpcio python3-protobuf python3-grpc-tools >/dev/null 2>&1; }; then
    break
  fi
  sleep 10
done
if /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "python3-grpcio: installed now"
else
  echo "python3-grpcio: could not install (apt-get install -y python3-grpcio python3-protobuf python3-grpc-tools)"
fi
exit 0
