package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	vaultapi "github.com/hashicorp/vault/api"
)

// TestNomadBerthOnNomad runs jobspecs/berth.nomad.hcl, the way an operator
// runs Berth on Nomad 1.6: two `berth server` tasks (raw_exec, the binary
// under test as berth_binary) whose config.hcl the job's template renders
// with the Consul address and prefix, the Vault address and the task's own
// Vault token (token-based integration: the job's vault block names a
// policy the test writes). It waits for both servers to be healthy in
// Consul's catalog (the job's service and its /healthz check), deploys an
// app on Nomad through one server, reads it back from the other, and stops
// the job. Needs NOMAD_ADDR, and VAULT_ADDR/VAULT_TOKEN of the Vault the
// Nomad agents use (tools/nomad/README.md).
func TestNomadBerthOnNomad(t *testing.T) {
	addr, nc := nomadEnv(t)
	vaultAddr, vaultToken := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if vaultAddr == "" || vaultToken == "" {
		const msg = "VAULT_ADDR/VAULT_TOKEN not set: skipping Berth on Nomad (the job's vault block needs the Vault of the Nomad agents; see tools/nomad/README.md)"
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	if nomadVaultWorkloadIdentity(t, nc) {
		t.Skip("the jobspec is written for Nomad 1.6's token-based Vault integration; this Nomad is 1.7 or later (see the jobspec's header)")
	}
	consulAddr := nomadConsulAddr(t, nc)

	// Berth's Vault policy: the KV v2 paths under its prefix.
	id := randHex(6)
	prefix, policy, appPolicy, job := "berth-e2e-bon-"+id, "berth-e2e-bon-"+id, "berth-e2e-bon-apps-"+id, "berth-e2e-"+id
	cfg := vaultapi.DefaultConfig()
	cfg.Address = vaultAddr
	vc, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(vaultToken)
	rules := fmt.Sprintf("path %q {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n}\npath %q {\n  capabilities = [\"read\", \"delete\", \"list\"]\n}\n",
		"secret/data/"+prefix+"/*", "secret/metadata/"+prefix+"/*")
	if err := vc.Sys().PutPolicy(policy, rules); err != nil {
		t.Fatalf("writing the Vault policy: %v", err)
	}
	t.Cleanup(func() { _ = vc.Sys().DeletePolicy(policy) })
	// The apps' tasks read their private env from Vault (Nomad 1.6: a
	// policy in Berth's nomad block).
	writeVaultReadPolicy(t, vaultAddr, vaultToken, appPolicy, prefix)

	// The job, from the jobspec with the test's variables.
	src, err := os.ReadFile(filepath.Join("..", "jobspecs", "berth.nomad.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{
		"berth_binary":       berthBin,
		"service_name":       job,
		"consul_address":     consulAddr,
		"consul_prefix":      "berth-e2e/" + id + "/",
		"vault_address":      vaultAddr,
		"vault_policies":     []string{policy},
		"vault_prefix":       prefix,
		"app_vault_policies": []string{appPolicy},
		"nomad_address":      addr,
		"log_level":          "debug",
	}
	var vf strings.Builder
	for k, v := range vars {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&vf, "%s = %s\n", k, b)
	}
	j, err := nc.Jobs().ParseHCLOpts(&nomadapi.JobsParseRequest{JobHCL: string(src), Variables: vf.String(), Canonicalize: true})
	if err != nil {
		t.Fatalf("parsing jobspecs/berth.nomad.hcl: %v", err)
	}
	j.ID, j.Name = &job, &job
	if _, _, err := nc.Jobs().Register(j, nil); err != nil {
		t.Fatalf("nomad job run: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_, _, _ = nc.Jobs().DeregisterOpts(job, &nomadapi.DeregisterOptions{Purge: true}, nil)
		}
	})
	// The job's task logs, when something fails.
	defer func() {
		if t.Failed() {
			logBerthTasks(t, nc, job)
		}
	}()

	// Both servers healthy in Consul's catalog.
	var servers []string
	eventually(t, nomadTimeout, "two Berth servers passing their /healthz check in Consul", func() bool {
		servers = passingInstances(t, consulAddr, job)
		return len(servers) == 2
	})
	if servers[0] == servers[1] {
		t.Fatalf("both servers registered at %s", servers[0])
	}
	a, b := remoteBerth(servers[0]), remoteBerth(servers[1])
	watchOpenAPI(a) // answers checked against the servers' /openapi.json
	for _, s := range []*Berth{a, b} {
		h := s.do(t, "GET", "/healthz", nil, nil).want(t, http.StatusOK)
		for _, want := range []string{`"backend":"consul"`, `"backend":"vault"`, `"backend":"nomad"`} {
			if !strings.Contains(string(h.Raw), want) {
				t.Errorf("GET /healthz of the server at %s does not name %s: %s", s.Addr, want, h)
			}
		}
	}

	// A deploy through one server, read from the other.
	u := a.newUser(t, "bon")
	u.Token = b.login(t, u.Email, u.Password) // one cluster: a login on either
	app := fmt.Sprintf("bon%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		_, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil)
	})
	a.createApp(t, u, app)
	mv := metaVersion()
	a.push(t, u, app, nomadRelease(mv, "on-nomad"))
	a.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{
		"envs": []map[string]any{{"name": "GREETING", "value": "hello from berth on nomad"}}, "norestart": true,
	}).want(t, http.StatusOK)
	// A private value: kept in Vault by the server (its task's token),
	// read by the app's task through its own Vault token.
	secret := "s3cret-" + randHex(8)
	a.remember(secret, "the app's private env value")
	b.remember(secret, "the app's private env value")
	a.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{
		"envs": []map[string]any{{"name": "SECRET", "value": secret}}, "private": true, "norestart": true,
	}).want(t, http.StatusOK)
	r := a.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	v := b.waitNomadRunning(t, u, app, gen)
	if v.MetaVersion != mv {
		t.Errorf("the other server says %s runs %s, want %s", app, v.MetaVersion, mv)
	}
	web := b.runningInstances(t, u, app, "web", 1, true)
	answers(t, web, "/version.txt", "on-nomad")
	answers(t, web, "/greeting.txt", "hello from berth on nomad")
	answers(t, web, "/secret.txt", secret)
	if js, err := json.Marshal(nomadJob(t, nc, app)); err != nil || strings.Contains(string(js), secret) {
		t.Errorf("the app's Nomad job holds the private value (or did not marshal: %v)", err)
	}
	if got := a.deployed(t, u, app); got.State != "running" || got.MetaVersion != mv {
		t.Errorf("the server that took the deploy says %q %s", got.State, got.MetaVersion)
	}
	if env := b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK); !strings.Contains(string(env.Raw), "hello from berth on nomad") ||
		!strings.Contains(string(env.Raw), `"SECRET"`) || strings.Contains(string(env.Raw), secret) {
		t.Errorf("the env set through one server is not read (private value hidden) from the other: %s", env)
	}
	nj := nomadJob(t, nc, app)
	if nj.Meta["berth_meta_version"] != mv {
		t.Errorf("Nomad's job %s has meta %v, want berth_meta_version %s", app, nj.Meta, mv)
	}

	// Undeploy, then stop Berth's job.
	b.do(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, nomadTimeout, "the app's job to stop", func() bool {
		jj, _, err := nc.Jobs().Info(app, nil)
		return err != nil || (jj.Stop != nil && *jj.Stop) || (jj.Status != nil && *jj.Status == "dead")
	})
	if _, _, err := nc.Jobs().DeregisterOpts(job, &nomadapi.DeregisterOptions{Purge: true}, nil); err != nil {
		t.Fatalf("nomad job stop: %v", err)
	}
	stopped = true
	eventually(t, time.Minute, "the servers to leave Consul's catalog", func() bool {
		return len(passingInstances(t, consulAddr, job)) == 0
	})
}

// nomadConsulAddr is the Consul the Nomad agent uses (its consul {} block).
func nomadConsulAddr(t *testing.T, nc *nomadapi.Client) string {
	t.Helper()
	self, err := nc.Agent().Self()
	if err != nil {
		t.Fatalf("reading the Nomad agent's config: %v", err)
	}
	c, _ := self.Config["Consuls"].([]any)
	var addr string
	if len(c) > 0 {
		m, _ := c[0].(map[string]any)
		addr, _ = m["Addr"].(string)
	}
	if addr == "" {
		m, _ := self.Config["Consul"].(map[string]any)
		addr, _ = m["Addr"].(string)
	}
	if addr == "" {
		t.Fatalf("the Nomad agent's config names no Consul address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return addr
}

// passingInstances is the host:port of each instance of service whose
// checks all pass, from Consul's health API.
func passingInstances(t testing.TB, consulAddr, service string) []string {
	t.Helper()
	var entries []struct {
		Service struct {
			Address string
			Port    int
		}
	}
	consulGet(t, consulAddr, "/v1/health/service/"+service+"?passing", &entries)
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
	}
	return out
}

// remoteBerth is a Berth server the test did not start (one of the job's).
func remoteBerth(addr string) *Berth {
	return &Berth{
		URL: "http://" + addr, Addr: addr,
		http: &http.Client{
			Transport:     validating{base: http.DefaultTransport},
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:     &syncBuffer{},
		secrets: map[string]string{},
	}
}

// logBerthTasks logs the tail of each allocation's berth task output.
func logBerthTasks(t *testing.T, nc *nomadapi.Client, job string) {
	allocs, _, err := nc.Jobs().Allocations(job, true, nil)
	if err != nil {
		t.Logf("allocations of %s: %v", job, err)
		return
	}
	for _, st := range allocs {
		alloc, _, err := nc.Allocations().Info(st.ID, nil)
		if err != nil {
			continue
		}
		t.Logf("allocation %s: %s %v", st.ID, st.ClientStatus, st.TaskStates)
		for _, typ := range []string{"stdout", "stderr"} {
			cancel := make(chan struct{})
			frames, errs := nc.AllocFS().Logs(alloc, false, "berth", typ, "end", 4000, cancel, nil)
			select {
			case f := <-frames:
				if f != nil {
					t.Logf("%s %s:\n%s", st.ID[:8], typ, f.Data)
				}
			case err := <-errs:
				t.Logf("%s %s: %v", st.ID[:8], typ, err)
			case <-time.After(5 * time.Second):
			}
			close(cancel)
		}
	}
}
