package osb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/osb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is an OSB broker whose answers each test scripts; it records
// every request.
type fake struct {
	t  *testing.T
	mu sync.Mutex
	// handle answers a request not answered by the defaults (catalog).
	handle func(w http.ResponseWriter, r *http.Request, body map[string]any)
	log    []string // "METHOD path?query"
	bad    []string // protocol violations by the client
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.log = append(f.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	if v := r.Header.Get("X-Broker-API-Version"); v != "2.17" {
		f.bad = append(f.bad, "X-Broker-API-Version "+v)
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "berth" || p != "pw" {
		f.bad = append(f.bad, "basic auth missing or wrong")
	}
	if (r.Method == http.MethodPut || r.Method == http.MethodDelete) && r.URL.Query().Get("accepts_incomplete") != "true" &&
		!strings.Contains(r.URL.Path, "service_bindings") {
		f.bad = append(f.bad, r.Method+" without accepts_incomplete=true")
	}
	if r.Method == http.MethodDelete && (r.URL.Query().Get("service_id") == "" || r.URL.Query().Get("plan_id") == "") {
		f.bad = append(f.bad, "DELETE without service_id and plan_id")
	}
	h := f.handle
	f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/v2/catalog" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"services":[{"id":"svc-1","name":"db","description":"a db","bindable":true,"plans":[{"id":"plan-1","name":"small","description":"small"}]}]}`)
		return
	}
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/service_instances/") && !strings.Contains(r.URL.Path[len("/v2/service_instances/"):], "/") {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{}`)
		return
	}
	h(w, r, body)
}

// calls lists the recorded requests whose "METHOD path" starts with prefix.
func (f *fake) calls(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func newFake(t *testing.T, timeout string, h func(w http.ResponseWriter, r *http.Request, body map[string]any)) (*fake, *osb.Broker) {
	t.Helper()
	f := &fake{t: t, handle: h}
	srv := httptest.NewServer(f)
	b := osb.New(nil)
	settings := map[string]string{"url": srv.URL, "username": "berth", "password": "pw"}
	if timeout != "" {
		settings["request_timeout"] = timeout
	}
	if err := b.Configure(context.Background(), settings); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, v := range f.bad {
			t.Errorf("the osb broker broke the protocol: %s", v)
		}
	})
	return f, b
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var prov = broker.ProvisionRequest{InstanceID: "inst-1", ServiceID: "svc-1", PlanID: "plan-1", Params: map[string]string{"size": "1"}}

const instPath = "/v2/service_instances/inst-1"

// An ambiguous provision failure (timeout, 5xx, 201 with a bad body,
// another 2xx) is followed by a DELETE of the instance; a clear refusal
// (4xx) is not.
func TestProvisionOrphanMitigation(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		body      string
		sleep     bool
		want      error
		mitigated bool
	}{
		{"timeout", 0, "", true, broker.ErrUnavailable, true},
		{"500", 500, `{"description":"boom"}`, false, broker.ErrUnavailable, true},
		{"503", 503, ``, false, broker.ErrUnavailable, true},
		{"201 bad body", 201, `not json`, false, broker.ErrUnavailable, true},
		{"204", 204, ``, false, nil, true},
		{"409", 409, `{"description":"exists"}`, false, broker.ErrConflict, false},
		{"400", 400, `{"error":"BadRequest","description":"no"}`, false, broker.ErrBadRequest, false},
		{"408", 408, `{}`, false, nil, false},
		{"422 AsyncRequired", 422, `{"error":"AsyncRequired"}`, false, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			f, b := newFake(t, "300ms", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
				switch {
				case r.Method == http.MethodPut && c.sleep:
					select {
					case <-release:
					case <-r.Context().Done():
					}
				case r.Method == http.MethodPut:
					answer(w, c.status, c.body)
				case r.Method == http.MethodDelete:
					answer(w, 200, `{}`)
				}
			})
			defer close(release)
			_, err := b.Provision(ctxFor(t, 10*time.Second), prov)
			if err == nil {
				t.Fatalf("Provision succeeded; want an error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
			dels := f.calls("DELETE " + instPath)
			if c.mitigated && len(dels) != 1 {
				t.Errorf("%d DELETEs after an ambiguous failure (%v), want 1 (orphan mitigation)", len(dels), err)
			}
			if !c.mitigated && len(dels) != 0 {
				t.Errorf("DELETE after a clear refusal: %v", dels)
			}
			if c.mitigated && len(dels) == 1 && !strings.Contains(dels[0], "service_id=svc-1") {
				t.Errorf("orphan mitigation DELETE %s lacks service_id", dels[0])
			}
		})
	}
}

// An asynchronous provision that succeeds after N polls is a success
// within the call; Retry-After is honoured and the operation is passed.
func TestProvisionAsyncSucceedsAfterPolls(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	f, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		switch {
		case r.Method == http.MethodPut:
			if body["service_id"] != "svc-1" || body["plan_id"] != "plan-1" || body["organization_guid"] == nil || body["space_guid"] == nil {
				answer(w, 400, `{"description":"bad body"}`)
				return
			}
			if p, _ := body["parameters"].(map[string]any); p["size"] != "1" {
				answer(w, 400, `{"description":"parameters lost"}`)
				return
			}
			answer(w, 202, `{"operation":"op 1/x"}`)
		case r.URL.Path == instPath+"/last_operation":
			if r.URL.Query().Get("operation") != "op 1/x" {
				answer(w, 400, `{"description":"wrong operation"}`)
				return
			}
			mu.Lock()
			polls++
			n := polls
			mu.Unlock()
			w.Header().Set("Retry-After", "0")
			if n < 3 {
				answer(w, 200, `{"state":"in progress"}`)
				return
			}
			answer(w, 200, `{"state":"succeeded"}`)
		}
	})
	resp, err := b.Provision(ctxFor(t, 20*time.Second), prov)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Async || resp.AlreadyExisted {
		t.Errorf("Provision = %+v; want a completed, new instance", resp)
	}
	if polls != 3 {
		t.Errorf("%d polls, want 3", polls)
	}
	if d := f.calls("DELETE"); len(d) != 0 {
		t.Errorf("DELETE after a successful provision: %v", d)
	}
}

// An asynchronous provision whose last_operation says failed is an error
// and is followed by orphan mitigation.
func TestProvisionAsyncFails(t *testing.T) {
	f, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		switch {
		case r.Method == http.MethodPut:
			answer(w, 202, `{"operation":"op-2"}`)
		case r.URL.Path == instPath+"/last_operation":
			answer(w, 200, `{"state":"failed","description":"out of disks"}`)
		case r.Method == http.MethodDelete:
			answer(w, 410, `{}`)
		}
	})
	_, err := b.Provision(ctxFor(t, 20*time.Second), prov)
	if err == nil || !strings.Contains(err.Error(), "out of disks") {
		t.Fatalf("err = %v; want the failure's description", err)
	}
	if d := f.calls("DELETE " + instPath); len(d) != 1 {
		t.Errorf("%d DELETEs after a failed async provision, want 1", len(d))
	}
}

// An asynchronous provision still in progress when the call's deadline
// nears is returned as Async with its operation; LastOperation polls it.
func TestProvisionAsyncOutlivesTheCall(t *testing.T) {
	var mu sync.Mutex
	done := false
	_, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		switch {
		case r.Method == http.MethodPut:
			answer(w, 202, `{"operation":"long"}`)
		case r.URL.Path == instPath+"/last_operation":
			mu.Lock()
			d := done
			mu.Unlock()
			if d {
				answer(w, 200, `{"state":"succeeded"}`)
			} else {
				answer(w, 200, `{"state":"in progress","description":"10%"}`)
			}
		}
	})
	resp, err := b.Provision(ctxFor(t, 2*time.Second), prov)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Async || resp.Operation != "long" {
		t.Fatalf("Provision = %+v; want Async with operation long", resp)
	}
	lo, err := b.LastOperation(ctxFor(t, 5*time.Second), broker.LastOperationRequest{InstanceID: "inst-1", Operation: "long"})
	if err != nil || lo.State != broker.StateInProgress || lo.Description != "10%" {
		t.Fatalf("LastOperation = %+v, %v", lo, err)
	}
	mu.Lock()
	done = true
	mu.Unlock()
	lo, err = b.LastOperation(ctxFor(t, 5*time.Second), broker.LastOperationRequest{InstanceID: "inst-1", Operation: "long"})
	if err != nil || lo.State != broker.StateSucceeded {
		t.Fatalf("LastOperation = %+v, %v; want succeeded", lo, err)
	}
}

// 422 ConcurrencyError is retried (the broker is busy with the instance);
// 200 on a provision is AlreadyExisted.
func TestConcurrencyErrorRetried(t *testing.T) {
	var mu sync.Mutex
	n := 0
	_, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if k <= 2 {
			w.Header().Set("Retry-After", "0")
			answer(w, 422, `{"error":"ConcurrencyError","description":"busy"}`)
			return
		}
		answer(w, 200, `{}`)
	})
	resp, err := b.Provision(ctxFor(t, 10*time.Second), prov)
	if err != nil || !resp.AlreadyExisted {
		t.Fatalf("Provision = %+v, %v; want AlreadyExisted after the retries", resp, err)
	}
	if n != 3 {
		t.Errorf("%d requests, want 3 (two ConcurrencyErrors, then success)", n)
	}
}

// Deprovision: 410 is ErrGone, 200 success, 202 polled until 410.
func TestDeprovision(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		want   error
	}{{"410", 410, broker.ErrGone}, {"200", 200, nil}, {"202", 202, nil}, {"500", 500, broker.ErrUnavailable}} {
		t.Run(c.name, func(t *testing.T) {
			f, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
				switch {
				case r.Method == http.MethodDelete:
					answer(w, c.status, `{"operation":"del"}`)
				case r.URL.Path == instPath+"/last_operation":
					answer(w, 410, `{}`)
				}
			})
			resp, err := b.Deprovision(ctxFor(t, 10*time.Second), broker.DeprovisionRequest{InstanceID: "inst-1"})
			if c.want == nil && (err != nil || resp.Async) {
				t.Fatalf("Deprovision = %+v, %v; want done", resp, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if d := f.calls("DELETE " + instPath); len(d) != 1 || !strings.Contains(d[0], "plan_id=plan-1") || !strings.Contains(d[0], "service_id=svc-1") {
				t.Errorf("DELETEs %v: want one with the catalog's service_id and plan_id", d)
			}
		})
	}
}

// Binding: an asynchronous bind is polled, then fetched; 404 on a bind is
// ErrNotFound; a 5xx is followed by a DELETE of the binding; 410 on an
// unbind is ErrGone.
func TestBindings(t *testing.T) {
	bindPath := instPath + "/service_bindings/b-1"
	t.Run("async", func(t *testing.T) {
		_, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			switch {
			case r.Method == http.MethodPut:
				if res, _ := body["bind_resource"].(map[string]any); res["app_guid"] != "app1" {
					answer(w, 400, `{"description":"no app"}`)
					return
				}
				answer(w, 202, `{"operation":"bind-op"}`)
			case r.URL.Path == bindPath+"/last_operation":
				answer(w, 200, `{"state":"succeeded"}`)
			case r.Method == http.MethodGet && r.URL.Path == bindPath:
				answer(w, 200, `{"credentials":{"uri":"db://x","port":5432,"tls":true}}`)
			}
		})
		resp, err := b.Bind(ctxFor(t, 10*time.Second), broker.BindRequest{InstanceID: "inst-1", BindingID: "b-1", AppName: "app1"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Credentials["uri"] != "db://x" || resp.Credentials["port"] != "5432" || resp.Credentials["tls"] != "true" {
			t.Errorf("credentials %v", resp.Credentials)
		}
	})
	t.Run("404", func(t *testing.T) {
		_, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) { answer(w, 404, `{}`) })
		_, err := b.Bind(ctxFor(t, 10*time.Second), broker.BindRequest{InstanceID: "inst-1", BindingID: "b-1", AppName: "a"})
		if !errors.Is(err, broker.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("500", func(t *testing.T) {
		f, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			if r.Method == http.MethodPut {
				answer(w, 502, `{}`)
				return
			}
			answer(w, 200, `{}`)
		})
		_, err := b.Bind(ctxFor(t, 10*time.Second), broker.BindRequest{InstanceID: "inst-1", BindingID: "b-1", AppName: "a"})
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if d := f.calls("DELETE " + bindPath); len(d) != 1 {
			t.Errorf("%d binding DELETEs after a 502, want 1", len(d))
		}
	})
	t.Run("unbind 410", func(t *testing.T) {
		_, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) { answer(w, 410, `{}`) })
		err := b.Unbind(ctxFor(t, 10*time.Second), broker.UnbindRequest{InstanceID: "inst-1", BindingID: "b-1"})
		if !errors.Is(err, broker.ErrGone) {
			t.Fatalf("err = %v, want ErrGone", err)
		}
	})
}

// Every request is bounded: a broker that never answers a catalog
// request fails it after request_timeout.
func TestRequestDeadline(t *testing.T) {
	release := make(chan struct{})
	f := &fake{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_ = f
	b := osb.New(nil)
	if err := b.Configure(context.Background(), map[string]string{"url": srv.URL, "request_timeout": "200ms"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Catalog(context.Background())
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("err = %v; want ErrUnavailable after the request timeout", err)
	}
}

// A broker that stays busy (422 ConcurrencyError) fails the call within
// its deadline, with the broker's answer; nothing is deleted.
func TestConcurrencyErrorBounded(t *testing.T) {
	f, b := newFake(t, "", func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		answer(w, 422, `{"error":"ConcurrencyError","description":"busy"}`)
	})
	_, err := b.Provision(ctxFor(t, 2*time.Second), prov)
	if err == nil || !strings.Contains(err.Error(), "ConcurrencyError") {
		t.Fatalf("err = %v; want the ConcurrencyError", err)
	}
	if d := f.calls("DELETE"); len(d) != 0 {
		t.Errorf("DELETE after ConcurrencyError: %v", d)
	}
}
