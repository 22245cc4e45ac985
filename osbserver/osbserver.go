// Package osbserver serves Berth's services as an Open Service Broker API
// v2.17 endpoint under /osb/v2/, so that a platform (Cloud Foundry, a
// Kubernetes service catalog) can provision and bind them.
//
// It acts for one Berth team (config: osb { team = ... }): the catalog is
// the services granted to that team, with the plans of each service's
// broker; every instance it provisions is a Berth service instance owned
// by that team (named "osb-" and a digest of the platform's instance_id).
// What the platform's IDs map to, and the state of each operation, is
// kept in the Store under osb/, so operations that were in progress when
// Berth stopped are resumed when it starts again (Start).
//
// Requests need HTTP basic auth (401 otherwise) and an
// X-Broker-API-Version of 2.13 or later in 2.x (412 otherwise). With Async
// (the default) provision and deprovision answer 202 and run in the
// background (without accepts_incomplete=true: 422 AsyncRequired), and
// bindings do too when the request has accepts_incomplete=true; the
// platform polls last_operation. Errors are {"error": ..., "description": ...}.
package osbserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

// Prefix is where the API is mounted.
const Prefix = "/osb"

// MinVersion is the oldest X-Broker-API-Version accepted (2.MinVersion).
const MinVersion = 13

// Operation states (last_operation).
const (
	stateInProgress = "in progress"
	stateSucceeded  = "succeeded"
	stateFailed     = "failed"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Config configures a Server.
type Config struct {
	Username, Password string
	// Team owns the instances; the catalog is the services granted to it.
	Team string
	// Async: provision and deprovision are asynchronous (202).
	Async  bool
	Logger hclog.Logger
	// Audit, if set, records every authenticated request that may change
	// something (PUT, PATCH, DELETE): actor "osb:<username>", an action
	// such as "osb.instance.provision", the target (instance_id, or
	// instance_id/binding_id) and the answer's status.
	Audit func(actor, action, target string, status int)
}

// Server is the OSB endpoint.
type Server struct {
	eng *engine.Engine
	cfg Config
	log hclog.Logger
	mux *http.ServeMux

	ctx    context.Context // background operations; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool // record keys with an operation running here
	seed    string
}

// New returns the endpoint of eng.
func New(eng *engine.Engine, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{eng: eng, cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, running: map[string]bool{}}
	m := http.NewServeMux()
	p := Prefix + "/v2"
	m.HandleFunc("GET "+p+"/catalog", s.catalog)
	m.HandleFunc("PUT "+p+"/service_instances/{iid}", s.provision)
	m.HandleFunc("PATCH "+p+"/service_instances/{iid}", s.update)
	m.HandleFunc("DELETE "+p+"/service_instances/{iid}", s.deprovision)
	m.HandleFunc("GET "+p+"/service_instances/{iid}", s.getInstance)
	m.HandleFunc("GET "+p+"/service_instances/{iid}/last_operation", s.lastOperation)
	m.HandleFunc("PUT "+p+"/service_instances/{iid}/service_bindings/{bid}", s.bind)
	m.HandleFunc("DELETE "+p+"/service_instances/{iid}/service_bindings/{bid}", s.unbind)
	m.HandleFunc("GET "+p+"/service_instances/{iid}/service_bindings/{bid}", s.getBinding)
	m.HandleFunc("GET "+p+"/service_instances/{iid}/service_bindings/{bid}/last_operation", s.bindingLastOperation)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "", "no such endpoint of the Open Service Broker API")
	})
	s.mux = m
	return s
}

// Handler serves the API (paths under Prefix).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Start resumes the operations that were in progress when Berth stopped.
func (s *Server) Start() {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	insts, err := state.List[instRec](ctx, s.eng.Store(), instPrefix)
	if err != nil {
		s.log.Warn("osb: cannot list instances to resume their operations", "error", err)
	}
	for _, rec := range insts {
		if tombstone(rec) && time.Since(rec.Updated) > TombstoneTTL {
			_ = state.Delete(ctx, s.eng.Store(), instKey(rec.ID))
			continue
		}
		if rec.State != stateInProgress {
			continue
		}
		s.log.Info("osb: resuming an operation", "op", rec.Op, "instance", rec.Berth)
		s.background(instKey(rec.ID), func(ctx context.Context) { s.runInstanceOp(ctx, rec) })
	}
	binds, err := state.List[bindRec](ctx, s.eng.Store(), bindPrefix)
	if err != nil {
		s.log.Warn("osb: cannot list bindings to resume their operations", "error", err)
	}
	for _, rec := range binds {
		if rec.State != stateInProgress {
			continue
		}
		s.background(bindKey(rec.InstanceID, rec.BindingID), func(ctx context.Context) { s.runBindingOp(ctx, rec) })
	}
}

// Close stops the background operations (they are resumed by the next
// Start) and waits for them.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("X-Broker-API-Request-Identity"); id != "" {
		w.Header().Set("X-Broker-API-Request-Identity", id)
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-osb", charset="UTF-8"`)
		fail(w, http.StatusUnauthorized, "Unauthorized", "HTTP basic authentication with the broker's username and password is required")
		return
	}
	if v := r.Header.Get("X-Broker-API-Version"); !versionOK(v) {
		desc := "the X-Broker-API-Version header is required: this broker speaks 2.17 and accepts 2.13 or later"
		if v != "" {
			desc = fmt.Sprintf("X-Broker-API-Version %q is not supported: this broker speaks 2.17 and accepts 2.13 or later", v)
		}
		fail(w, http.StatusPreconditionFailed, "PreconditionFailed", desc)
		return
	}
	if err := checkIdentity(r.Header.Get("X-Broker-API-Originating-Identity")); err != nil {
		fail(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if s.cfg.Audit == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.mux.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	target := r.PathValue("iid")
	if b := r.PathValue("bid"); b != "" {
		target += "/" + b
	}
	s.cfg.Audit("osb:"+s.cfg.Username, auditAction(r), target, sw.status)
}

// auditAction names what a request does.
func auditAction(r *http.Request) string {
	binding := r.PathValue("bid") != ""
	switch {
	case binding && r.Method == http.MethodPut:
		return "osb.binding.create"
	case binding && r.Method == http.MethodDelete:
		return "osb.binding.delete"
	case r.Method == http.MethodPut:
		return "osb.instance.provision"
	case r.Method == http.MethodPatch:
		return "osb.instance.update"
	case r.Method == http.MethodDelete:
		return "osb.instance.deprovision"
	}
	return "osb." + strings.ToLower(r.Method)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok || s.cfg.Username == "" || s.cfg.Password == "" {
		return false
	}
	hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	wu, wp := sha256.Sum256([]byte(s.cfg.Username)), sha256.Sum256([]byte(s.cfg.Password))
	return subtle.ConstantTimeCompare(hu[:], wu[:])&subtle.ConstantTimeCompare(hp[:], wp[:]) == 1
}

// versionOK accepts 2.x with x >= MinVersion.
func versionOK(v string) bool {
	maj, min, ok := strings.Cut(strings.TrimSpace(v), ".")
	if !ok || maj != "2" {
		return false
	}
	n, err := strconv.Atoi(min)
	return err == nil && n >= MinVersion
}

// checkIdentity checks X-Broker-API-Originating-Identity: "platform
// base64(JSON object)", if present.
func checkIdentity(h string) error {
	if h == "" {
		return nil
	}
	_, err := identityPlatform(h)
	return err
}

func identityPlatform(h string) (string, error) {
	platform, value, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || platform == "" || value == "" {
		return "", errors.New("X-Broker-API-Originating-Identity must be \"<platform> <base64 of a JSON object>\"")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	var obj map[string]any
	if err != nil || json.Unmarshal(raw, &obj) != nil {
		return "", errors.New("X-Broker-API-Originating-Identity: the value is not the base64 encoding of a JSON object")
	}
	return platform, nil
}

// --- answers ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func empty(w http.ResponseWriter, status int) { writeJSON(w, status, struct{}{}) }

// fail answers an error body; code is the OSB error code ("" for none).
func fail(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"description": desc}
	if code != "" {
		body["error"] = code
	}
	writeJSON(w, status, body)
}

func badRequest(w http.ResponseWriter, format string, a ...any) {
	fail(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, a...))
}

func concurrency(w http.ResponseWriter, desc string) {
	fail(w, http.StatusUnprocessableEntity, "ConcurrencyError", desc)
}

func asyncRequired(w http.ResponseWriter) {
	fail(w, http.StatusUnprocessableEntity, "AsyncRequired", "This service plan requires client support for asynchronous service operations (accepts_incomplete=true).")
}

// failErr answers an engine or broker error.
func failErr(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "InternalError"
	if e, ok := engine.AsError(err); ok {
		switch e.Kind {
		case engine.KindInvalid:
			status, code = http.StatusBadRequest, "BadRequest"
		case engine.KindConflict:
			status, code = http.StatusConflict, "Conflict"
		case engine.KindNotFound:
			status, code = http.StatusNotFound, "NotFound"
		case engine.KindForbidden:
			status, code = http.StatusForbidden, "Forbidden"
		case engine.KindTimeout:
			status, code = http.StatusGatewayTimeout, "Timeout"
		case engine.KindUpstream:
			status, code = http.StatusBadGateway, "BrokerError"
		case engine.KindUnavailable:
			status, code = http.StatusServiceUnavailable, "Unavailable"
		}
	}
	fail(w, status, code, err.Error())
}

// acceptsIncomplete reads the accepts_incomplete query parameter.
func acceptsIncomplete(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("accepts_incomplete")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("accepts_incomplete must be true or false, not %q", v)
	}
	return b, nil
}

// --- records ---

const (
	instPrefix = "osb/instances/"
	bindPrefix = "osb/bindings/"
	seedKey    = "osb/seed"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func instKey(id string) string       { return instPrefix + digest(id)[:40] }
func bindKey(iid, bid string) string { return bindPrefix + digest(iid)[:40] + "/" + digest(bid)[:40] }
func berthInstance(id string) string { return "osb-" + digest("instance:" + id)[:20] }
func brokerBinding(iid, bid string) string {
	return "o-" + digest("binding:" + iid + "\x00" + bid)[:24]
}

func newOpID(kind string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// instRec is what Berth keeps of an instance made through the endpoint.
type instRec struct {
	ID        string            `json:"id"`    // the platform's instance_id
	Berth     string            `json:"berth"` // the Berth service instance
	Service   string            `json:"service"`
	ServiceID string            `json:"service_id"` // the catalog's IDs
	PlanID    string            `json:"plan_id"`
	BrokerSvc string            `json:"broker_service_id"` // the Berth broker's IDs
	BrokerPln string            `json:"broker_plan_id"`
	Params    map[string]string `json:"params,omitempty"`
	Raw       json.RawMessage   `json:"raw_params,omitempty"`
	Owner     string            `json:"owner,omitempty"`
	Op        string            `json:"op"` // provision | deprovision
	OpID      string            `json:"op_id"`
	State     string            `json:"state"`
	Desc      string            `json:"description,omitempty"`
	Updated   time.Time         `json:"updated"`
}

// bindRec is what Berth keeps of a binding made through the endpoint.
// Its credentials are not kept: the broker gives them again (Bind is
// idempotent by binding ID).
type bindRec struct {
	InstanceID string            `json:"instance_id"`
	BindingID  string            `json:"binding_id"`
	Broker     string            `json:"broker_binding_id"`
	App        string            `json:"app"`
	Params     map[string]string `json:"params,omitempty"`
	Raw        json.RawMessage   `json:"raw_params,omitempty"`
	Op         string            `json:"op"` // bind | unbind
	OpID       string            `json:"op_id"`
	State      string            `json:"state"`
	Desc       string            `json:"description,omitempty"`
	Updated    time.Time         `json:"updated"`
}

func (s *Server) store() backends.Store { return s.eng.Store() }

func (s *Server) getInst(ctx context.Context, id string) (*instRec, error) {
	rec, _, err := state.Get[instRec](ctx, s.store(), instKey(id))
	return rec, err
}

// tombstone reports whether rec is what a finished deprovision leaves:
// last_operation answers "succeeded" for its operation (and 410 Gone
// otherwise); to everything else the instance does not exist.
func tombstone(rec *instRec) bool { return rec.Op == "deprovision" && rec.State == stateSucceeded }

// TombstoneTTL is how long a finished deprovision's record is kept.
const TombstoneTTL = 7 * 24 * time.Hour

// getLive is getInst with a tombstone as state.ErrNotFound.
func (s *Server) getLive(ctx context.Context, id string) (*instRec, error) {
	rec, err := s.getInst(ctx, id)
	if err == nil && tombstone(rec) {
		return nil, state.ErrNotFound
	}
	return rec, err
}

func (s *Server) getBind(ctx context.Context, iid, bid string) (*bindRec, error) {
	rec, _, err := state.Get[bindRec](ctx, s.store(), bindKey(iid, bid))
	return rec, err
}

func (s *Server) putInst(ctx context.Context, rec *instRec) error {
	rec.Updated = time.Now().UTC()
	_, _, err := state.Update(ctx, s.store(), instKey(rec.ID), func(v *instRec) error { *v = *rec; return nil })
	return err
}

func (s *Server) putBind(ctx context.Context, rec *bindRec) error {
	rec.Updated = time.Now().UTC()
	_, _, err := state.Update(ctx, s.store(), bindKey(rec.InstanceID, rec.BindingID), func(v *bindRec) error { *v = *rec; return nil })
	return err
}

// claim marks record key as having an operation running in this
// process (false if one already does): last_operation then does not take
// the record's lack of progress for a failure.
func (s *Server) claim(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[key] {
		return false
	}
	s.running[key] = true
	return true
}

func (s *Server) release(key string) {
	s.mu.Lock()
	delete(s.running, key)
	s.mu.Unlock()
}

// background runs fn for record key on the server's context (unless an
// operation already runs for key).
func (s *Server) background(key string, fn func(ctx context.Context)) {
	if s.claim(key) {
		s.runClaimed(key, fn)
	}
}

// runClaimed runs fn for a claimed key in the background and releases
// the key when it ends.
func (s *Server) runClaimed(key string, fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release(key)
		fn(s.ctx)
	}()
}

// op is a request's hold on a record key while it runs an operation.
type op struct {
	s      *Server
	key    string
	owned  bool
	handed bool
}

func (s *Server) hold(key string) *op { return &op{s: s, key: key, owned: s.claim(key)} }

// done releases the key unless it was handed to a background operation.
func (o *op) done() {
	if o.owned && !o.handed {
		o.s.release(o.key)
	}
}

// spawn runs fn in the background under the hold.
func (o *op) spawn(fn func(ctx context.Context)) {
	o.handed = true
	o.s.runClaimed(o.key, fn)
}

// --- parameters ---

// params converts an OSB parameters object to the brokers' string map:
// strings as they are, any other value as its JSON text.
func params(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errors.New("parameters must be a JSON object")
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
			continue
		}
		out[k] = string(v)
	}
	return out, nil
}

// object checks that raw, if given, is a JSON object.
func object(name string, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return fmt.Errorf("%s must be a JSON object", name)
	}
	return nil
}

// decode reads a JSON object body into v.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return errors.New("the body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the body is not valid JSON of the expected shape: %v", err)
	}
	return nil
}

// reqString reads a required non-empty string field.
func reqString(name string, raw json.RawMessage) (string, error) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil || s == "" {
		return "", fmt.Errorf("%s is required (a non-empty string)", name)
	}
	return s, nil
}

// optString reads an optional string field (non-empty if present).
func optString(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	return reqString(name, raw)
}

// owner is who a request says it acts for ("osb" without the header).
func owner(r *http.Request) string {
	if p, err := identityPlatform(r.Header.Get("X-Broker-API-Originating-Identity")); err == nil {
		return "osb:" + p
	}
	return "osb"
}

var _ = broker.StateSucceeded
