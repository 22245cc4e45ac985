// Package osb is the built-in "osb" broker: it forwards every verb of the
// broker protocol to an external Open Service Broker API v2.17 HTTP broker
// (Cloud Foundry's, a cloud vendor's, or another Berth's /osb endpoint).
//
// Settings (a broker_target in config.hcl, the password through
// secret_refs, read from Berth's Secrets at each configure, or secret_env;
// or a site admin's service settings, kept in Secrets):
//
//	url              the broker's base URL (…/v2/catalog is under it), required
//	username         basic auth user
//	password         basic auth password
//	service          the id or name of the broker's service offering to use
//	                 (default: all, the first one first)
//	request_timeout  bound of each HTTP request (default 20s)
//
// Semantics: every request sends X-Broker-API-Version: 2.17 and, where the
// spec allows, accepts_incomplete=true. A 202 is followed by polling
// last_operation (honouring Retry-After, else a bounded backoff) while the
// call's deadline allows: a provision or deprovision still in progress
// then is returned as Async with its operation (Berth's engine records it
// and keeps polling across restarts); a binding must end within the call
// (the broker protocol's Bind is synchronous), else it is unbound. 409 is
// ErrConflict, 410 ErrGone, 400 ErrBadRequest, 404 on a bind ErrNotFound;
// 422 ConcurrencyError is retried with backoff. After an ambiguous
// provision or bind failure (a timeout, a 5xx, a 201 whose body is not
// JSON, another 2xx, or last_operation "failed") the instance or binding
// is deleted (orphan mitigation, as the spec's table says).
//
// The spec requires service_id and plan_id on DELETE, which the broker
// protocol's Deprovision and Unbind do not carry: the broker uses the
// IDs it provisioned with (remembered in this process), else asks the
// broker (GET service_instances/:id, when instances_retrievable), else
// the selected service and its first plan.
package osb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/plugins/broker"
)

// APIVersion is the X-Broker-API-Version sent.
const APIVersion = "2.17"

// Broker is the osb broker.
type Broker struct {
	log hclog.Logger

	mu    sync.Mutex
	cfg   *settings
	ids   map[string][2]string // instance -> service_id, plan_id (provisioned here)
	locks map[string]*sync.Mutex
}

type settings struct {
	base     *url.URL
	user     string
	password string
	service  string
	timeout  time.Duration
	client   *http.Client
}

// New returns an unconfigured osb broker.
func New(log hclog.Logger) *Broker {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Broker{log: log, ids: map[string][2]string{}, locks: map[string]*sync.Mutex{}}
}

var _ broker.Broker = (*Broker)(nil)

// Configure reads the settings.
func (b *Broker) Configure(_ context.Context, s map[string]string) error {
	raw := strings.TrimRight(s["url"], "/")
	if raw == "" {
		return fmt.Errorf("%w: the osb broker needs a url setting", broker.ErrBadRequest)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: url %q is not an http(s) URL", broker.ErrBadRequest, raw)
	}
	cfg := &settings{base: u, user: s["username"], password: s["password"], service: s["service"], timeout: 20 * time.Second}
	if t := s["request_timeout"]; t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: request_timeout %q is not a positive duration", broker.ErrBadRequest, t)
		}
		cfg.timeout = d
	}
	cfg.client = &http.Client{Timeout: cfg.timeout}
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	return nil
}

func (b *Broker) settings() (*settings, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil {
		return nil, fmt.Errorf("%w: the osb broker is not configured", broker.ErrUnavailable)
	}
	return b.cfg, nil
}

// lock serializes the verbs on one instance or binding in this process.
func (b *Broker) lock(key string) func() {
	b.mu.Lock()
	m := b.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		b.locks[key] = m
	}
	b.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// --- HTTP ---

type response struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

// osbError is the body of an error answer.
type osbError struct {
	Error       string `json:"error"`
	Description string `json:"description"`
}

func (r *response) errBody() osbError {
	var e osbError
	_ = json.Unmarshal(r.body, &e)
	return e
}

func (r *response) String() string {
	e := r.errBody()
	msg := e.Description
	if e.Error != "" {
		msg = e.Error + ": " + msg
	}
	if msg == "" {
		msg = strings.TrimSpace(string(r.body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
	}
	return fmt.Sprintf("HTTP %d %s", r.status, msg)
}

// do sends one request, bounded by the request timeout and ctx.
func (b *Broker) do(ctx context.Context, method, path string, q url.Values, body any) (*response, error) {
	cfg, err := b.settings()
	if err != nil {
		return nil, err
	}
	u := *cfg.base
	u.Path = cfg.base.Path + path
	u.RawPath = ""
	if enc := escapedPath(cfg.base, path); enc != "" {
		u.RawPath = enc
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Broker-API-Version", APIVersion)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cfg.user != "" || cfg.password != "" {
		req.SetBasicAuth(cfg.user, cfg.password)
	}
	resp, err := cfg.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, body: data, retryAfter: retryAfter(resp.Header.Get("Retry-After"))}, nil
}

// escapedPath is the base's escaped path followed by path, whose
// segments (IDs) are escaped.
func escapedPath(base *url.URL, path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return base.EscapedPath() + strings.Join(segs, "/")
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}

// Polling bounds.
var (
	minPoll = 100 * time.Millisecond
	maxPoll = 15 * time.Second
)

// wait sleeps d (bounded) or until ctx ends; false if ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	if d < minPoll {
		d = minPoll
	}
	if d > maxPoll {
		d = maxPoll
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// budget is the context of in-call polling: ctx's deadline less a margin
// for the answer to travel back.
func budget(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		margin := time.Until(d) / 10
		if margin > 2*time.Second {
			margin = 2 * time.Second
		}
		return context.WithDeadline(ctx, d.Add(-margin))
	}
	return context.WithTimeout(ctx, 30*time.Second)
}

// httpErr maps an answer no verb handles specially.
func httpErr(verb string, r *response) error {
	switch r.status {
	case http.StatusBadRequest:
		return fmt.Errorf("%w: %s: %s", broker.ErrBadRequest, verb, r)
	case http.StatusConflict:
		return fmt.Errorf("%w: %s: %s", broker.ErrConflict, verb, r)
	case http.StatusGone:
		return fmt.Errorf("%w: %s: %s", broker.ErrGone, verb, r)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s: the OSB broker refused Berth's credentials: %s", verb, r)
	case http.StatusPreconditionFailed:
		return fmt.Errorf("%s: the OSB broker does not accept API version %s: %s", verb, APIVersion, r)
	}
	if r.status >= 500 {
		return fmt.Errorf("%w: %s: %s", broker.ErrUnavailable, verb, r)
	}
	return fmt.Errorf("%s: unexpected answer: %s", verb, r)
}

// concurrent reports a 422 ConcurrencyError.
func concurrent(r *response) bool {
	return r.status == http.StatusUnprocessableEntity && r.errBody().Error == "ConcurrencyError"
}

// send sends a request, retrying on 422 ConcurrencyError with backoff
// while the call's budget allows.
func (b *Broker) send(ctx context.Context, method, path string, q url.Values, body any) (*response, error) {
	delay := 200 * time.Millisecond
	wctx, cancel := budget(ctx)
	defer cancel()
	for {
		r, err := b.do(ctx, method, path, q, body)
		if err != nil || !concurrent(r) {
			return r, err
		}
		d := r.retryAfter
		if d == 0 {
			d = delay
			delay = min(delay*2, 5*time.Second)
		}
		if !wait(wctx, d) {
			return r, nil
		}
	}
}

// --- catalog ---

type catalogJSON struct {
	Services []struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Plans       []struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"plans"`
	} `json:"services"`
}

// Catalog fetches the broker's catalog (only the configured service, if
// one is).
func (b *Broker) Catalog(ctx context.Context) (*broker.Catalog, error) {
	cfg, err := b.settings()
	if err != nil {
		return nil, err
	}
	r, err := b.do(ctx, http.MethodGet, "/v2/catalog", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: catalog: %v", broker.ErrUnavailable, err)
	}
	if r.status != http.StatusOK {
		return nil, httpErr("catalog", r)
	}
	var c catalogJSON
	if err := json.Unmarshal(r.body, &c); err != nil || c.Services == nil {
		return nil, fmt.Errorf("%w: catalog: the body is not an OSB catalog", broker.ErrUnavailable)
	}
	out := &broker.Catalog{Services: []broker.Service{}}
	for _, s := range c.Services {
		if s.ID == "" || s.Name == "" {
			return nil, fmt.Errorf("%w: catalog: a service lacks its id or name", broker.ErrUnavailable)
		}
		if cfg.service != "" && s.ID != cfg.service && s.Name != cfg.service {
			continue
		}
		svc := broker.Service{ID: s.ID, Name: s.Name, Description: s.Description}
		for _, p := range s.Plans {
			svc.Plans = append(svc.Plans, broker.Plan{ID: p.ID, Name: p.Name, Description: p.Description})
		}
		out.Services = append(out.Services, svc)
	}
	if cfg.service != "" && len(out.Services) == 0 {
		return nil, fmt.Errorf("%w: the OSB broker's catalog has no service %q", broker.ErrBadRequest, cfg.service)
	}
	return out, nil
}

// ids returns the service and plan IDs of an instance (see the package
// comment).
func (b *Broker) idsOf(ctx context.Context, instance string) (string, string, error) {
	b.mu.Lock()
	p, ok := b.ids[instance]
	b.mu.Unlock()
	if ok {
		return p[0], p[1], nil
	}
	if r, err := b.do(ctx, http.MethodGet, "/v2/service_instances/"+instance, nil, nil); err == nil && r.status == http.StatusOK {
		var v struct {
			ServiceID string `json:"service_id"`
			PlanID    string `json:"plan_id"`
		}
		if json.Unmarshal(r.body, &v) == nil && v.ServiceID != "" && v.PlanID != "" {
			b.remember(instance, v.ServiceID, v.PlanID)
			return v.ServiceID, v.PlanID, nil
		}
	}
	cat, err := b.Catalog(ctx)
	if err != nil {
		return "", "", err
	}
	if len(cat.Services) == 0 || len(cat.Services[0].Plans) == 0 {
		return "", "", fmt.Errorf("%w: the OSB broker's catalog is empty", broker.ErrUnavailable)
	}
	return cat.Services[0].ID, cat.Services[0].Plans[0].ID, nil
}

func (b *Broker) remember(instance, service, plan string) {
	b.mu.Lock()
	b.ids[instance] = [2]string{service, plan}
	b.mu.Unlock()
}

func (b *Broker) forget(instance string) {
	b.mu.Lock()
	delete(b.ids, instance)
	b.mu.Unlock()
}

// --- instances ---

type asyncJSON struct {
	Operation *string `json:"operation"`
}

func operationOf(body []byte) (string, bool) {
	var a asyncJSON
	if len(bytes.TrimSpace(body)) == 0 {
		return "", true
	}
	if json.Unmarshal(body, &a) != nil {
		return "", false
	}
	if a.Operation == nil {
		return "", true
	}
	return *a.Operation, true
}

// jsonObject reports whether body is a JSON object.
func jsonObject(body []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(body, &m) == nil && m != nil
}

func stringParams(p map[string]string) map[string]string {
	if p == nil {
		return map[string]string{}
	}
	return p
}

// Provision creates an instance (see the package comment).
func (b *Broker) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	if req.ServiceID == "" || req.PlanID == "" {
		return nil, fmt.Errorf("%w: service_id and plan_id are required", broker.ErrBadRequest)
	}
	defer b.lock("i/" + req.InstanceID)()
	body := map[string]any{
		"service_id": req.ServiceID, "plan_id": req.PlanID,
		"organization_guid": "berth", "space_guid": "berth",
		"context":    map[string]string{"platform": "berth"},
		"parameters": stringParams(req.Params),
	}
	q := url.Values{"accepts_incomplete": {"true"}}
	path := "/v2/service_instances/" + req.InstanceID
	r, err := b.send(ctx, http.MethodPut, path, q, body)
	if err != nil {
		// No answer: the broker may have made it.
		b.mitigateInstance(ctx, req.InstanceID, req.ServiceID, req.PlanID, "provision got no answer: "+err.Error())
		return nil, fmt.Errorf("%w: provision: %v", broker.ErrUnavailable, err)
	}
	switch {
	case r.status == http.StatusOK:
		b.remember(req.InstanceID, req.ServiceID, req.PlanID)
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	case r.status == http.StatusCreated:
		if !jsonObject(r.body) {
			b.mitigateInstance(ctx, req.InstanceID, req.ServiceID, req.PlanID, "201 with a malformed body")
			return nil, fmt.Errorf("%w: provision: the broker answered 201 with a body that is not a JSON object", broker.ErrUnavailable)
		}
		b.remember(req.InstanceID, req.ServiceID, req.PlanID)
		return &broker.ProvisionResponse{}, nil
	case r.status == http.StatusAccepted:
		op, _ := operationOf(r.body)
		b.remember(req.InstanceID, req.ServiceID, req.PlanID)
		done, err := b.pollInstance(ctx, req.InstanceID, op, req.ServiceID, req.PlanID, r.retryAfter, false)
		if err != nil {
			b.mitigateInstance(ctx, req.InstanceID, req.ServiceID, req.PlanID, err.Error())
			return nil, err
		}
		if !done {
			return &broker.ProvisionResponse{Async: true, Operation: op}, nil
		}
		return &broker.ProvisionResponse{}, nil
	case r.status == http.StatusUnprocessableEntity:
		e := r.errBody()
		if e.Error == "AsyncRequired" || e.Error == "ConcurrencyError" {
			return nil, fmt.Errorf("provision: %s", r)
		}
		return nil, fmt.Errorf("%w: provision: %s", broker.ErrBadRequest, r)
	case r.status >= 200 && r.status < 300, r.status >= 500:
		b.mitigateInstance(ctx, req.InstanceID, req.ServiceID, req.PlanID, r.String())
		return nil, httpErr("provision", r)
	}
	return nil, httpErr("provision", r)
}

// mitigateInstance deletes an instance the broker may have made
// (orphan mitigation), on a context of its own.
func (b *Broker) mitigateInstance(ctx context.Context, instance, service, plan, why string) {
	b.log.Warn("orphan mitigation: deleting an instance whose provision failed ambiguously", "instance", instance, "why", why)
	cfg, err := b.settings()
	if err != nil {
		return
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.timeout)
	defer cancel()
	q := url.Values{"accepts_incomplete": {"true"}, "service_id": {service}, "plan_id": {plan}}
	r, err := b.do(mctx, http.MethodDelete, "/v2/service_instances/"+instance, q, nil)
	if err != nil {
		b.log.Warn("orphan mitigation: the delete failed; Berth's sweep deprovisions again", "instance", instance, "error", err)
		return
	}
	if r.status != http.StatusOK && r.status != http.StatusAccepted && r.status != http.StatusGone {
		b.log.Warn("orphan mitigation: the delete failed; Berth's sweep deprovisions again", "instance", instance, "answer", r.String())
	}
	b.forget(instance)
}

type lastOpJSON struct {
	State       string `json:"state"`
	Description string `json:"description"`
}

// lastOp polls an instance's (or binding's) last_operation once.
func (b *Broker) lastOp(ctx context.Context, path, op, service, plan string) (*broker.LastOperationResponse, time.Duration, error) {
	q := url.Values{}
	if op != "" {
		q.Set("operation", op)
	}
	if service != "" {
		q.Set("service_id", service)
		q.Set("plan_id", plan)
	}
	r, err := b.do(ctx, http.MethodGet, path+"/last_operation", q, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: last_operation: %v", broker.ErrUnavailable, err)
	}
	if r.status != http.StatusOK {
		return nil, r.retryAfter, httpErr("last_operation", r)
	}
	var lo lastOpJSON
	if err := json.Unmarshal(r.body, &lo); err != nil {
		return nil, r.retryAfter, fmt.Errorf("last_operation: the body is not JSON: %v", err)
	}
	switch lo.State {
	case broker.StateInProgress, broker.StateSucceeded, broker.StateFailed:
	default:
		return nil, r.retryAfter, fmt.Errorf("last_operation: invalid state %q", lo.State)
	}
	return &broker.LastOperationResponse{State: lo.State, Description: lo.Description}, r.retryAfter, nil
}

// poll polls last_operation at path until the operation ends or the
// call's budget is spent (done false, no error). For a delete, 410 Gone
// is success. A "failed" state is an error.
func (b *Broker) poll(ctx context.Context, path, op, service, plan string, first time.Duration, deleting bool) (bool, error) {
	pctx, cancel := budget(ctx)
	defer cancel()
	delay := 200 * time.Millisecond
	next := first
	if next == 0 {
		next = delay
	}
	for {
		if !wait(pctx, next) {
			return false, nil
		}
		lo, ra, err := b.lastOp(pctx, path, op, service, plan)
		switch {
		case deleting && errors.Is(err, broker.ErrGone):
			return true, nil
		case err != nil && pctx.Err() != nil:
			return false, nil
		case err != nil && !deleting && errors.Is(err, broker.ErrGone):
			// 410 while polling a create is invalid: keep polling.
		case err != nil && errors.Is(err, broker.ErrBadRequest):
			return false, err
		case err != nil:
			b.log.Debug("last_operation failed; polling again", "path", path, "error", err)
		case lo.State == broker.StateSucceeded:
			return true, nil
		case lo.State == broker.StateFailed:
			return false, fmt.Errorf("the operation failed: %s", lo.Description)
		}
		delay = min(delay*2, 5*time.Second)
		next = delay
		if ra > 0 {
			next = ra
		}
	}
}

func (b *Broker) pollInstance(ctx context.Context, instance, op, service, plan string, first time.Duration, deleting bool) (bool, error) {
	return b.poll(ctx, "/v2/service_instances/"+instance, op, service, plan, first, deleting)
}

// Deprovision deletes an instance; 410 is ErrGone.
func (b *Broker) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	defer b.lock("i/" + req.InstanceID)()
	service, plan, err := b.idsOf(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	q := url.Values{"accepts_incomplete": {"true"}, "service_id": {service}, "plan_id": {plan}}
	r, err := b.send(ctx, http.MethodDelete, "/v2/service_instances/"+req.InstanceID, q, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: deprovision: %v", broker.ErrUnavailable, err)
	}
	switch r.status {
	case http.StatusOK:
		b.forget(req.InstanceID)
		return &broker.DeprovisionResponse{}, nil
	case http.StatusGone:
		b.forget(req.InstanceID)
		return nil, fmt.Errorf("%w: instance %s", broker.ErrGone, req.InstanceID)
	case http.StatusAccepted:
		op, _ := operationOf(r.body)
		done, err := b.pollInstance(ctx, req.InstanceID, op, service, plan, r.retryAfter, true)
		if err != nil {
			return nil, fmt.Errorf("deprovision: %w", err)
		}
		if !done {
			return &broker.DeprovisionResponse{Async: true, Operation: op}, nil
		}
		b.forget(req.InstanceID)
		return &broker.DeprovisionResponse{}, nil
	}
	return nil, httpErr("deprovision", r)
}

// LastOperation polls an instance's last operation once.
func (b *Broker) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	b.mu.Lock()
	p := b.ids[req.InstanceID]
	b.mu.Unlock()
	lo, _, err := b.lastOp(ctx, "/v2/service_instances/"+req.InstanceID, req.Operation, p[0], p[1])
	if errors.Is(err, broker.ErrGone) {
		b.forget(req.InstanceID)
	}
	return lo, err
}

// --- bindings ---

type bindJSON struct {
	Credentials map[string]json.RawMessage `json:"credentials"`
}

// credentials flattens an OSB credentials object to strings (strings as
// they are, other values as their JSON text).
func credentials(body []byte) (map[string]string, bool) {
	var v bindJSON
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, false
	}
	out := map[string]string{}
	for k, raw := range v.Credentials {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(raw)
		}
	}
	return out, true
}

// Bind creates a binding and returns its credentials.
func (b *Broker) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	if err := broker.CheckID("binding_id", req.BindingID); err != nil {
		return nil, err
	}
	defer b.lock("b/" + req.InstanceID + "/" + req.BindingID)()
	service, plan, err := b.idsOf(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	body := map[string]any{
		"service_id": service, "plan_id": plan,
		"context":    map[string]string{"platform": "berth"},
		"parameters": stringParams(req.Params),
	}
	if req.AppName != "" {
		body["app_guid"] = req.AppName
		body["bind_resource"] = map[string]string{"app_guid": req.AppName}
	}
	path := "/v2/service_instances/" + req.InstanceID + "/service_bindings/" + req.BindingID
	r, err := b.send(ctx, http.MethodPut, path, url.Values{"accepts_incomplete": {"true"}}, body)
	if err != nil {
		b.mitigateBinding(ctx, req, service, plan, "bind got no answer: "+err.Error())
		return nil, fmt.Errorf("%w: bind: %v", broker.ErrUnavailable, err)
	}
	switch {
	case r.status == http.StatusOK || r.status == http.StatusCreated:
		creds, ok := credentials(r.body)
		if !ok {
			if r.status == http.StatusCreated {
				b.mitigateBinding(ctx, req, service, plan, "201 with a malformed body")
			}
			return nil, fmt.Errorf("%w: bind: the broker answered %d with a body that is not a binding", broker.ErrUnavailable, r.status)
		}
		return &broker.BindResponse{Credentials: creds, AlreadyExisted: r.status == http.StatusOK}, nil
	case r.status == http.StatusAccepted:
		op, _ := operationOf(r.body)
		done, err := b.poll(ctx, path, op, service, plan, r.retryAfter, false)
		if err == nil && !done {
			err = fmt.Errorf("%w: bind: the asynchronous binding did not end within the call", context.DeadlineExceeded)
		}
		if err == nil {
			var g *response
			if g, err = b.do(ctx, http.MethodGet, path, nil, nil); err == nil {
				creds, ok := credentials(g.body)
				if g.status == http.StatusOK && ok {
					return &broker.BindResponse{Credentials: creds}, nil
				}
				err = fmt.Errorf("fetching the binding: %s", g)
			}
		}
		b.mitigateBinding(ctx, req, service, plan, err.Error())
		return nil, fmt.Errorf("bind: %w", err)
	case r.status == http.StatusNotFound:
		return nil, fmt.Errorf("%w: bind: %s", broker.ErrNotFound, r)
	case r.status == http.StatusUnprocessableEntity:
		if r.errBody().Error == "RequiresApp" {
			return nil, fmt.Errorf("%w: bind: %s", broker.ErrBadRequest, r)
		}
		return nil, fmt.Errorf("bind: %s", r)
	case r.status >= 200 && r.status < 300, r.status >= 500:
		b.mitigateBinding(ctx, req, service, plan, r.String())
		return nil, httpErr("bind", r)
	}
	return nil, httpErr("bind", r)
}

// mitigateBinding deletes a binding the broker may have made.
func (b *Broker) mitigateBinding(ctx context.Context, req broker.BindRequest, service, plan, why string) {
	b.log.Warn("orphan mitigation: deleting a binding whose creation failed ambiguously", "instance", req.InstanceID, "binding", req.BindingID, "why", why)
	cfg, err := b.settings()
	if err != nil {
		return
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.timeout)
	defer cancel()
	q := url.Values{"service_id": {service}, "plan_id": {plan}}
	if _, err := b.do(mctx, http.MethodDelete, "/v2/service_instances/"+req.InstanceID+"/service_bindings/"+req.BindingID, q, nil); err != nil {
		b.log.Warn("orphan mitigation: deleting the binding failed", "binding", req.BindingID, "error", err)
	}
}

// Unbind deletes a binding; 410 is ErrGone.
func (b *Broker) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return err
	}
	if err := broker.CheckID("binding_id", req.BindingID); err != nil {
		return err
	}
	defer b.lock("b/" + req.InstanceID + "/" + req.BindingID)()
	service, plan, err := b.idsOf(ctx, req.InstanceID)
	if err != nil {
		return err
	}
	path := "/v2/service_instances/" + req.InstanceID + "/service_bindings/" + req.BindingID
	q := url.Values{"accepts_incomplete": {"true"}, "service_id": {service}, "plan_id": {plan}}
	r, err := b.send(ctx, http.MethodDelete, path, q, nil)
	if err != nil {
		return fmt.Errorf("%w: unbind: %v", broker.ErrUnavailable, err)
	}
	switch r.status {
	case http.StatusOK:
		return nil
	case http.StatusGone:
		return fmt.Errorf("%w: binding %s", broker.ErrGone, req.BindingID)
	case http.StatusAccepted:
		op, _ := operationOf(r.body)
		done, err := b.poll(ctx, path, op, service, plan, r.retryAfter, true)
		if err == nil && !done {
			err = fmt.Errorf("%w: unbind: the asynchronous unbinding did not end within the call", context.DeadlineExceeded)
		}
		return err
	}
	return httpErr("unbind", r)
}
