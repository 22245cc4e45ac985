"""berth_plugin: what a Berth broker plugin written in Python needs besides
its broker: go-plugin's handshake, AutoMTLS, the health and controller
services, error statuses with a typed ErrorDetail, and logs Berth can read.

Only Debian's python3-grpcio and python3-protobuf are needed (and the openssl
command for AutoMTLS). The broker itself is a broker_pb2_grpc.BrokerServicer;
serve(servicer) runs it. See README.md.
"""

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2

import broker_pb2
import broker_pb2_grpc

# go-plugin's handshake, as in plugins/broker/grpc.go (broker.Handshake).
MAGIC_COOKIE_KEY = "BERTH_PLUGIN"
MAGIC_COOKIE_VALUE = "6f1c0a5e2d7b4c39a8e1f04b9d3c72aa-berth-broker"
CORE_PROTOCOL_VERSION = 1  # go-plugin's own
PROTOCOL_VERSION = 2  # berth.broker.v2 (plugins/broker/proto/broker.proto)

# Error kinds (broker_pb2.ErrorKind) and the gRPC code each is sent with.
GONE = broker_pb2.ERROR_KIND_GONE
NOT_FOUND = broker_pb2.ERROR_KIND_NOT_FOUND
CONFLICT = broker_pb2.ERROR_KIND_CONFLICT
BAD_REQUEST = broker_pb2.ERROR_KIND_BAD_REQUEST
UNAVAILABLE = broker_pb2.ERROR_KIND_UNAVAILABLE
_CODES = {
    GONE: grpc.StatusCode.NOT_FOUND,
    NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


class BrokerError(Exception):
    """An answer of a given kind (GONE, NOT_FOUND, ...). Raise it from a
    servicer method wrapped with @broker_method; Berth sees the kind and the
    message."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


# --- Logging: hclog's JSON format on stderr, which go-plugin forwards into
# Berth's log under the plugin's name. Never log secret values.

_log_lock = threading.Lock()


def log(level, message, **fields):
    entry = {"@level": level, "@message": message, "@module": "broker",
             "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}
    entry.update({k: str(v) for k, v in fields.items()})
    with _log_lock:
        sys.stderr.write(json.dumps(entry) + "\n")
        sys.stderr.flush()


# --- Errors: a gRPC status whose details (the trailer
# grpc-status-details-bin, a google.rpc.Status) hold one ErrorDetail.

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def rpc_status_bytes(code, message, details):
    """Serializes a google.rpc.Status {int32 code = 1; string message = 2;
    repeated google.protobuf.Any details = 3;} by hand, as its generated
    code (googleapis-common-protos) is not in Debian's python3-protobuf."""
    out = _varint(1 << 3 | 0) + _varint(code) if code else b""
    if message:
        out += _len_field(2, message.encode("utf-8"))
    for d in details:
        out += _len_field(3, d.SerializeToString())
    return out


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _abort(context, kind, message):
    """Ends the call with the error kind and message, as Berth expects."""
    detail = any_pb2.Any()
    detail.Pack(broker_pb2.ErrorDetail(kind=kind))
    code = _CODES.get(kind, grpc.StatusCode.UNKNOWN)
    trailer = (("grpc-status-details-bin", rpc_status_bytes(code.value[0], message, [detail])),)
    context.abort_with_status(_Status(code, message, trailer))


def broker_method(fn):
    """Decorates a servicer method: a BrokerError becomes its typed status,
    any other exception an INTERNAL error (the plugin keeps running). Raise
    BrokerError rather than calling context.abort yourself."""

    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except BrokerError as e:
            _abort(context, e.kind, e.message)
        except Exception as e:  # a bug in the broker: answer, do not die
            if isinstance(e, grpc.RpcError):
                raise
            log("error", "broker method failed", method=fn.__name__, error=repr(e))
            context.abort(grpc.StatusCode.INTERNAL, "broker failed: %r" % (e,))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# --- go-plugin's side services, written without their generated code:
# grpc.health.v1.Health/Check (go-plugin asks for the service "plugin"),
# plugin.GRPCController/Shutdown and plugin.GRPCStdio/StreamStdio.

def _health_service_name(request):
    # HealthCheckRequest {string service = 1;}
    if len(request) >= 2 and request[0] == 0x0A:
        n, shift, i = 0, 0, 1
        while i < len(request):
            b = request[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return request[i:i + n].decode("utf-8", "replace")
    return ""


def _raw_unary(fn):
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None, response_serializer=None)


class _Plumbing:
    def __init__(self):
        self.server = None
        self.stopped = threading.Event()

    def health_check(self, request, context):
        if _health_service_name(request) in ("", "plugin"):
            return b"\x08\x01"  # HealthCheckResponse {status: SERVING}
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")

    def shutdown(self, request, context):
        log("debug", "shutdown requested by the host")
        threading.Thread(target=self.stop, daemon=True).start()
        return b""  # google.protobuf.Empty

    def stream_stdio(self, request, context):
        # Nothing to stream (logs go to stderr); hold the stream open until
        # the call or the plugin ends so the host does not warn.
        while context.is_active() and not self.stopped.wait(1):
            pass
        return
        yield  # a generator: the stream's (no) messages

    def stop(self):
        self.stopped.set()
        if self.server is not None:
            self.server.stop(1)

    def handlers(self):
        return [
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": _raw_unary(self.health_check)}),
            grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": _raw_unary(self.shutdown)}),
            grpc.method_handlers_generic_handler("plugin.GRPCStdio", {
                "StreamStdio": grpc.unary_stream_rpc_method_handler(
                    self.stream_stdio,
                    request_deserializer=None, response_serializer=None)}),
        ]


# --- AutoMTLS: Berth puts its client certificate in PLUGIN_CLIENT_CERT; the
# plugin makes a self-signed certificate for "localhost", requires Berth's
# certificate of every client, and returns its own in the handshake line.
# Python's standard library cannot make keys or certificates, so the openssl
# command does.

def _self_signed_cert():
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("AutoMTLS needs the openssl command (apt-get install openssl)")
    d = tempfile.mkdtemp(prefix="berth-plugin-tls-")
    try:
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
                        "-addext", "extendedKeyUsage=serverAuth,clientAuth"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(key, "rb") as f:
            key_pem = f.read()
        with open(cert, "rb") as f:
            cert_pem = f.read()
        return key_pem, cert_pem
    finally:
        shutil.rmtree(d, ignore_errors=True)


def serve(servicer, max_workers=16):
    """Serves servicer (a broker_pb2_grpc.BrokerServicer) as a Berth broker
    plugin and returns when the host shuts it down or goes away."""
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write("This is a Berth service broker plugin. It is not meant to be run by hand:\n"
                         "put it in Berth's plugin_dir as berth-broker-<name> and name <name> as a service's broker.\n")
        sys.exit(1)
    offered = [v for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v]
    if offered and str(PROTOCOL_VERSION) not in offered:
        sys.stderr.write("This plugin speaks broker protocol version %d; the host speaks %s. Upgrade Berth.\n"
                         % (PROTOCOL_VERSION, ",".join(offered)))
        sys.exit(1)

    plumbing = _Plumbing()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), handlers=plumbing.handlers())
    plumbing.server = server
    broker_pb2_grpc.add_BrokerServicer_to_server(servicer, server)

    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    cert_field = ""
    if client_cert:
        key_pem, cert_pem = _self_signed_cert()
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert.encode(),
                                            require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", creds)
        der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
        cert_field = "|" + base64.b64encode(der).decode().rstrip("=")  # go-plugin reads RawStdEncoding
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    if not port:
        sys.stderr.write("could not listen on 127.0.0.1\n")
        sys.exit(1)
    server.start()

    # The handshake line: core version|protocol version|network|address|protocol[|server cert]
    sys.stdout.write("%d|%d|tcp|127.0.0.1:%d|grpc%s\n" % (CORE_PROTOCOL_VERSION, PROTOCOL_VERSION, port, cert_field))
    sys.stdout.flush()
    log("info", "plugin serving", address="127.0.0.1:%d" % port, mtls=bool(client_cert))

    # Runs until the host asks it to stop (Shutdown) or kills it.
    server.wait_for_termination()
