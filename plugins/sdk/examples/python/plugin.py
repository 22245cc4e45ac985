#!/usr/bin/python3
"""A complete Berth service broker in Python: the "pyexample" broker.

Its "server" is a table of tokens: each instance is a set of tokens, each
binding gets one. The state is kept in a JSON file in the directory named by
the service's setting state_dir (shared safely by several plugin processes,
and kept across restarts), or in memory when state_dir is not set.

Install it as <plugin_dir>/berth-broker-pyexample (a symlink to this file is
enough) and name "pyexample" as a service's broker. See README.md.
"""

import contextlib
import fcntl
import json
import os
import re
import secrets
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ next to an installed plugin
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

import broker_pb2  # noqa: E402
import broker_pb2_grpc  # noqa: E402
import berth_plugin  # noqa: E402
from berth_plugin import BrokerError, GONE, NOT_FOUND, CONFLICT, BAD_REQUEST, UNAVAILABLE, broker_method  # noqa: E402

SERVICE = broker_pb2.Service(id="pyexample-kv", name="pyexample", description="Tokens, from a broker written in Python",
                             plans=[broker_pb2.Plan(id="pyexample-free", name="free", description="Free tokens")])

# Instance and binding IDs: 1 to 63 characters from [a-z0-9-], starting with a
# letter, not ending with a hyphen.
_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_id(kind, value):
    if not _ID.fullmatch(value):
        raise BrokerError(BAD_REQUEST, "bad request: invalid %s %r: want 1 to 63 characters from [a-z0-9-], "
                                       "starting with a letter and not ending with '-'" % (kind, value))


class Store:
    """The broker's records: {"instances": {id: {"service_id", "plan_id",
    "params", "bindings": {id: {"app_name", "params", "credentials"}}}}}.
    update() runs a function on the records under a lock (a thread lock, and
    an flock on the state file's lock when there is a directory) and saves
    what it changed."""

    def __init__(self):
        self._mu = threading.Lock()
        self._dir = None
        self._mem = {"instances": {}}

    def configure(self, state_dir):
        if state_dir and (not os.path.isabs(state_dir) or not os.path.isdir(state_dir)):
            raise BrokerError(BAD_REQUEST, "bad request: state_dir %r is not an absolute path to a directory" % state_dir)
        with self._mu:
            self._dir = state_dir or None

    @contextlib.contextmanager
    def _locked(self):
        with self._mu:
            if self._dir is None:
                yield self._mem, lambda records: None
                return
            path = os.path.join(self._dir, "pyexample-state.json")
            try:
                lock = open(os.path.join(self._dir, "pyexample-state.lock"), "a")
            except OSError as e:  # this broker's "backing server" is down
                raise BrokerError(UNAVAILABLE, "broker unavailable: state_dir %r: %s" % (self._dir, e.strerror))
            with lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    records = {"instances": {}}
                    if os.path.exists(path):
                        with open(path) as f:
                            records = json.load(f)

                    def save(records):
                        tmp = path + ".tmp"
                        with open(tmp, "w") as f:
                            json.dump(records, f)
                            f.flush()
                            os.fsync(f.fileno())
                        os.replace(tmp, path)

                    yield records, save
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, fn):
        with self._locked() as (records, save):
            result, changed = fn(records["instances"])
            if changed:
                save(records)
            return result


class TokenBroker(broker_pb2_grpc.BrokerServicer):
    def __init__(self):
        self.store = Store()

    @broker_method
    def Configure(self, request, context):
        self.store.configure(request.settings.get("state_dir", ""))
        berth_plugin.log("info", "configured", state_dir=request.settings.get("state_dir", "(memory)"))
        return broker_pb2.ConfigureResponse()

    @broker_method
    def Catalog(self, request, context):
        return broker_pb2.CatalogResponse(services=[SERVICE])

    @broker_method
    def Provision(self, request, context):
        check_id("instance_id", request.instance_id)
        if request.service_id not in ("", SERVICE.id, SERVICE.name):
            raise BrokerError(BAD_REQUEST, "bad request: unknown service_id %r" % request.service_id)
        plan = next((p for p in SERVICE.plans if request.plan_id in ("", p.id, p.name)), None)
        if plan is None:
            raise BrokerError(BAD_REQUEST, "bad request: unknown plan_id %r for service %r" % (request.plan_id, SERVICE.id))
        want = {"service_id": SERVICE.id, "plan_id": plan.id, "params": dict(request.params)}

        def provision(instances):
            have = instances.get(request.instance_id)
            if have is not None:
                if {k: have[k] for k in want} != want:
                    raise BrokerError(CONFLICT, "conflict: instance %r already exists with different parameters"
                                      % request.instance_id)
                return broker_pb2.ProvisionResponse(already_existed=True), False
            instances[request.instance_id] = dict(want, bindings={})
            return broker_pb2.ProvisionResponse(), True

        return self.store.update(provision)

    @broker_method
    def Deprovision(self, request, context):
        check_id("instance_id", request.instance_id)

        def deprovision(instances):
            if instances.pop(request.instance_id, None) is None:
                raise BrokerError(GONE, "gone: instance %r does not exist" % request.instance_id)
            return broker_pb2.DeprovisionResponse(), True

        return self.store.update(deprovision)

    @broker_method
    def Bind(self, request, context):
        check_id("instance_id", request.instance_id)
        check_id("binding_id", request.binding_id)

        def bind(instances):
            inst = instances.get(request.instance_id)
            if inst is None:
                raise BrokerError(NOT_FOUND, "not found: instance %r does not exist" % request.instance_id)
            have = inst["bindings"].get(request.binding_id)
            if have is not None:
                if have["app_name"] != request.app_name or have["params"] != dict(request.params):
                    raise BrokerError(CONFLICT, "conflict: binding %r already exists with different parameters"
                                      % request.binding_id)
                return broker_pb2.BindResponse(credentials=have["credentials"], already_existed=True), False
            creds = {"PYEXAMPLE_INSTANCE": request.instance_id, "PYEXAMPLE_TOKEN": secrets.token_hex(16)}
            inst["bindings"][request.binding_id] = {"app_name": request.app_name, "params": dict(request.params),
                                                    "credentials": creds}
            return broker_pb2.BindResponse(credentials=creds), True

        return self.store.update(bind)

    @broker_method
    def Unbind(self, request, context):
        check_id("instance_id", request.instance_id)
        check_id("binding_id", request.binding_id)

        def unbind(instances):
            inst = instances.get(request.instance_id)
            if inst is None or inst["bindings"].pop(request.binding_id, None) is None:
                raise BrokerError(GONE, "gone: binding %r of instance %r does not exist"
                                  % (request.binding_id, request.instance_id))
            return broker_pb2.UnbindResponse(), True

        return self.store.update(unbind)

    @broker_method
    def LastOperation(self, request, context):
        check_id("instance_id", request.instance_id)

        def last_operation(instances):
            if request.instance_id not in instances:
                raise BrokerError(GONE, "gone: instance %r does not exist" % request.instance_id)
            # Everything this broker does is synchronous: nothing is pending.
            return broker_pb2.LastOperationResponse(state=broker_pb2.OPERATION_STATE_SUCCEEDED), False

        return self.store.update(last_operation)


if __name__ == "__main__":
    berth_plugin.serve(TokenBroker())
