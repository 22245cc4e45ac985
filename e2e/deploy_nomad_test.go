package e2e

// The deploy engine end to end on a real Nomad: the real berth binary with
// a nomad {} block, driven through the HTTP API as a user would. It runs
// only when NOMAD_ADDR is set (see tools/nomad/README.md for a local Nomad
// dev agent); otherwise it says it was skipped.
//
// The Nomad needs: the raw_exec driver enabled, python3 on the client's
// PATH, and a Consul agent (Berth renders Consul services with health
// checks, which deployments wait for). NOMAD_TOKEN, NOMAD_REGION and
// NOMAD_NAMESPACE are passed on to Berth's config and to the test's own
// Nomad API client. The private-env step also needs VAULT_ADDR and
// VAULT_TOKEN (Berth's Secrets on that Vault, and Nomad integrated with the
// same Vault). On Nomad 1.6 and earlier (token-based Vault integration) the
// test writes a Vault policy reading Berth's KV v2 paths with that token and
// configures Berth's vault_policies with it; on 1.7 and later it relies on
// the cluster's default workload-identity role.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/berthpaas/berth/api"
)

// nomadSkipMsg is what the test prints when it does not run.
const nomadSkipMsg = "NOMAD_ADDR not set: skipping the e2e deploy test against a real Nomad (see tools/nomad/README.md)"

// nomadTimeout bounds each operation's convergence on Nomad: deployments
// wait for Consul checks and a 10s min_healthy_time, one allocation at a
// time.
const nomadTimeout = 4 * time.Minute

// nomadEnv is the Nomad the test runs against, or a skip.
func nomadEnv(t *testing.T) (addr string, client *nomadapi.Client) {
	t.Helper()
	addr = os.Getenv("NOMAD_ADDR")
	if addr == "" {
		fmt.Fprintln(os.Stderr, nomadSkipMsg)
		t.Skip(nomadSkipMsg)
	}
	cfg := nomadapi.DefaultConfig() // reads NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION, NOMAD_NAMESPACE
	client, err := nomadapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("a Nomad API client for %s: %v", addr, err)
	}
	var leader string
	if _, err := client.Raw().Query("/v1/status/leader", &leader, nil); err != nil || leader == "" {
		t.Fatalf("the Nomad at NOMAD_ADDR=%s has no leader (%q): %v", addr, leader, err)
	}
	return addr, client
}

// nomadHCL is the nomad {} block of Berth's config for the Nomad at addr,
// with vault_policies when policies are given.
func nomadHCL(addr string, policies ...string) string {
	var c strings.Builder
	fmt.Fprintf(&c, "nomad {\n  address = %s\n  raw_exec = true\n", hclString(addr))
	if len(policies) > 0 {
		quoted := make([]string, len(policies))
		for i, p := range policies {
			quoted[i] = hclString(p)
		}
		fmt.Fprintf(&c, "  vault_policies = [%s]\n", strings.Join(quoted, ", "))
	}
	for key, env := range map[string]string{"token": "NOMAD_TOKEN", "region": "NOMAD_REGION", "namespace": "NOMAD_NAMESPACE"} {
		if v := os.Getenv(env); v != "" {
			fmt.Fprintf(&c, "  %s = %s\n", key, hclString(v))
		}
	}
	c.WriteString("}\n")
	return c.String()
}

func (b *Berth) nomadProc(t testing.TB, u *User, app, proc string) api.Proc {
	t.Helper()
	return decodeAs[api.Proc](t, b.do(t, "GET", "/api/v1/apps/"+app+"/procs/"+proc+"/", u, nil).want(t, http.StatusOK))
}

// waitNomadRunning is waitRunning with Nomad's pace.
func (b *Berth) waitNomadRunning(t testing.TB, u *User, app string, gen int64) api.DeployedApp {
	t.Helper()
	return b.waitRunningWithin(t, u, app, gen, nomadTimeout, 500*time.Millisecond)
}

// runningInstances waits until proc has exactly n instances, all running
// with an address when addressed, and returns them.
func (b *Berth) runningInstances(t testing.TB, u *User, app, proc string, n int, addressed bool) []api.Instance {
	t.Helper()
	var p api.Proc
	deadline := time.Now().Add(nomadTimeout)
	for {
		p = b.nomadProc(t, u, app, proc)
		ok := len(p.Instances) == n
		for _, in := range p.Instances {
			if in.State != "running" || in.ID == "" || (addressed && in.Address == "") {
				ok = false
			}
		}
		if ok {
			return p.Instances
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s did not have %d running instances within %v: %+v", app, proc, n, nomadTimeout, p)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// fetch GETs http://addr/path: the status and the body ("" on a transport
// error, status 0).
func fetch(addr, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// answers waits until every instance answers GET path with want at its
// address.
func answers(t testing.TB, ins []api.Instance, path, want string) {
	t.Helper()
	for _, in := range ins {
		var code int
		var body string
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body = fetch(in.Address, path)
			if code == http.StatusOK && body == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s at %s: GET %s answered %d %q, want 200 %q", in.Name, in.Address, path, code, body, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

// nomadJob reads the app's job from Nomad (nil when there is none).
func nomadJob(t testing.TB, c *nomadapi.Client, id string) *nomadapi.Job {
	t.Helper()
	job, _, err := c.Jobs().Info(id, nil)
	if err != nil {
		if strings.Contains(err.Error(), "404") {
			return nil
		}
		t.Fatalf("reading Nomad job %s: %v", id, err)
	}
	return job
}

// groupCount is the count of group in job (-1 when absent).
func groupCount(job *nomadapi.Job, group string) int {
	for _, g := range job.TaskGroups {
		if g.Name != nil && *g.Name == group && g.Count != nil {
			return *g.Count
		}
	}
	return -1
}

// webCmd is the web proc's command: it writes what the test checks into
// files of its working directory (the task directory), then serves that
// directory over HTTP on $PORT.
const webCmd = `printf %s "$WEBAPP_VERSION" > version.txt; printf %s "$GREETING" > greeting.txt; printf %s "$SECRET" > secret.txt; ` +
	`exec python3 -m http.server --bind 0.0.0.0 $PORT`

// nomadRelease is a release with a python web proc and a sleeping worker.
func nomadRelease(mv, version string) map[string]any {
	return map[string]any{
		"meta_version": mv,
		"web": map[string]any{
			"cmd": webCmd, "memory": "64m", "cpu": 0.1, "num_instances": 1,
			"healthcheck": "/version.txt", "env": []string{"WEBAPP_VERSION=" + version},
		},
		"worker.sleeper": map[string]any{"cmd": "exec sleep 3600", "memory": "32m", "cpu": 0.1, "num_instances": 1},
	}
}

// TestNomadDeploy: register, push, deploy; units with addresses answering
// HTTP; scale 1 -> 2 -> 1; a new version and a rollback; a public env var;
// (a private one, with Vault); restart; undeploy, with the job gone from
// Nomad.
func TestNomadDeploy(t *testing.T) {
	addr, nc := nomadEnv(t)
	opts := Options{ExtraHCL: nomadHCL(addr)}
	vaultAddr, vaultToken := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	withVault := vaultAddr != "" && vaultToken != ""
	// Nomad <= 1.6 needs policies in a task's vault block: the test's own
	// policy, written once Berth's Vault prefix is known.
	var vaultPolicy string
	if withVault {
		opts.Vault, opts.VaultToken = vaultAddr, vaultToken
		if !nomadVaultWorkloadIdentity(t, nc) {
			vaultPolicy = "berth-e2e-nomad-" + randHex(6)
			opts.ExtraHCL = nomadHCL(addr, vaultPolicy)
		}
	}
	b := startBerth(t, opts)
	if vaultPolicy != "" {
		writeVaultReadPolicy(t, vaultAddr, vaultToken, vaultPolicy, b.VaultPrefix)
	}
	if tok := os.Getenv("NOMAD_TOKEN"); tok != "" {
		b.remember(tok, "the Nomad token")
	}
	h := b.do(t, "GET", "/healthz", nil, nil).want(t, http.StatusOK)
	if !strings.Contains(string(h.Raw), `"scheduler":{"backend":"nomad","ok":true}`) {
		t.Fatalf("GET /healthz does not report a healthy nomad scheduler: %s", h)
	}
	u := b.newUser(t, "nomad")
	app := fmt.Sprintf("ne2e%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		// Whatever happened, leave nothing running in the Nomad.
		_, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil)
	})

	// --- 1. register, push, deploy; units with addresses that answer -------
	b.createApp(t, u, app)
	v1, v2 := metaVersion(), metaVersion()
	b.push(t, u, app, nomadRelease(v1, "one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	if r.Str("meta_version") != v1 || r.Str("state") != "pending" {
		t.Errorf("the deploy answer does not name the version and pending state: %s", r)
	}
	v := b.waitNomadRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v1 || len(v.Procs) != 2 {
		t.Fatalf("deployed view: %+v", v)
	}
	web := b.runningInstances(t, u, app, "web", 1, true)
	b.runningInstances(t, u, app, "sleeper", 1, false)
	answers(t, web, "/version.txt", "one")

	tv := b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK)
	units, _ := tv.Obj()["Units"].([]any)
	if len(units) != 2 {
		t.Fatalf("GET /apps/%s: want 2 units (web and sleeper): %s", app, tv)
	}
	var webUnits int
	for _, x := range units {
		un, _ := x.(map[string]any)
		name, _ := un["Name"].(string)
		ip, _ := un["Ip"].(string)
		if un["State"] != "running" {
			t.Errorf("unit %v is not running", un)
		}
		if strings.HasPrefix(name, app+"/web/") {
			webUnits++
			if ip != web[0].Address {
				t.Errorf("the web unit's Ip is %q, want the instance's address %s", ip, web[0].Address)
			}
			if code, body := fetch(ip, "/version.txt"); code != http.StatusOK || body != "one" {
				t.Errorf("the web unit at %s answered %d %q", ip, code, body)
			}
		}
	}
	if webUnits != 1 || tv.Str("State") != "running" {
		t.Errorf("GET /apps/%s: %d web units, state %q: %s", app, webUnits, tv.Str("State"), tv)
	}
	job := nomadJob(t, nc, app)
	if job == nil || job.Meta["berth_meta_version"] != v1 || groupCount(job, "web") != 1 || groupCount(job, "sleeper") != 1 {
		t.Fatalf("the Nomad job after the deploy: %+v", job)
	}
	for _, g := range job.TaskGroups {
		if d := g.Tasks[0].Driver; d != "raw_exec" {
			t.Errorf("group %s runs with driver %q, want raw_exec", *g.Name, d)
		}
	}

	// --- 2. scale web 1 -> 2 -> 1 ------------------------------------------
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 2}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	two := b.runningInstances(t, u, app, "web", 2, true)
	if two[0].Address == two[1].Address || two[0].Index == two[1].Index {
		t.Errorf("the two web instances share an address or index: %+v", two)
	}
	if two[0].ID != web[0].ID {
		t.Errorf("scaling up replaced web instance 0 (allocation %s -> %s)", web[0].ID, two[0].ID)
	}
	answers(t, two, "/version.txt", "one")
	if p := b.nomadProc(t, u, app, "web"); p.NumInstances != 2 {
		t.Errorf("after scaling to 2 the proc reports num_instances %d", p.NumInstances)
	}
	if c := groupCount(nomadJob(t, nc, app), "web"); c != 2 {
		t.Errorf("after scaling to 2 the Nomad job's web count is %d", c)
	}
	if units, _ := b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK).Obj()["Units"].([]any); len(units) != 3 {
		t.Errorf("after scaling web to 2 GET /apps/%s shows %d units, want 3", app, len(units))
	}
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 1}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	one := b.runningInstances(t, u, app, "web", 1, true)
	answers(t, one, "/version.txt", "one")
	if one[0].ID != web[0].ID {
		t.Errorf("scaling down replaced web instance 0 (allocation %s -> %s)", web[0].ID, one[0].ID)
	}
	if c := groupCount(nomadJob(t, nc, app), "web"); c != 1 {
		t.Errorf("after scaling back to 1 the Nomad job's web count is %d", c)
	}
	if p := b.nomadProc(t, u, app, "web"); p.NumInstances != 1 {
		t.Errorf("after scaling back to 1 the proc reports num_instances %d", p.NumInstances)
	}

	// --- 3. a second version, and a rollback --------------------------------
	b.push(t, u, app, nomadRelease(v2, "two"))
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	v = b.waitNomadRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v2 {
		t.Errorf("after PUT %s the app is at %s", v2, v.MetaVersion)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "two")
	if mv := nomadJob(t, nc, app).Meta["berth_meta_version"]; mv != v2 {
		t.Errorf("after the new version the Nomad job is at %q, want %s", mv, v2)
	}
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v1}).want(t, http.StatusAccepted)
	v = b.waitNomadRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v1 {
		t.Errorf("after the rollback the app is at %s, want %s", v.MetaVersion, v1)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")
	if mv := nomadJob(t, nc, app).Meta["berth_meta_version"]; mv != v1 {
		t.Errorf("after the rollback the Nomad job is at %q, want %s", mv, v1)
	}

	// --- 4. a public env var (redeploys) ------------------------------------
	before := b.runningInstances(t, u, app, "web", 1, true)
	r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{"envs": []map[string]any{
		{"name": "GREETING", "value": "hello from nomad", "public": true},
	}}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	after := b.runningInstances(t, u, app, "web", 1, true)
	if after[0].ID == before[0].ID {
		t.Errorf("setting an env var did not replace the allocation %s", before[0].ID)
	}
	answers(t, after, "/greeting.txt", "hello from nomad")
	for _, g := range nomadJob(t, nc, app).TaskGroups {
		if got := g.Tasks[0].Env["GREETING"]; got != "hello from nomad" {
			t.Errorf("group %s's task env GREETING is %q", *g.Name, got)
		}
	}

	// --- 5. a private env var, through Vault --------------------------------
	if !withVault {
		t.Log("VAULT_ADDR/VAULT_TOKEN not set: the private env step (Vault template in the Nomad job) is skipped")
	} else {
		secret := "nomad-secret-" + randHex(12)
		b.remember(secret, "a private env value")
		before = b.runningInstances(t, u, app, "web", 1, true)
		r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{
			"envs": []map[string]any{{"name": "SECRET", "value": secret}}, "private": true,
		}).want(t, http.StatusAccepted)
		b.waitNomadRunning(t, u, app, generationOf(t, r))
		after = b.runningInstances(t, u, app, "web", 1, true)
		if after[0].ID == before[0].ID {
			t.Errorf("setting a private env var did not replace the allocation %s", before[0].ID)
		}
		answers(t, after, "/secret.txt", secret)
		answers(t, after, "/greeting.txt", "hello from nomad")
		job := nomadJob(t, nc, app)
		raw, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("marshalling the Nomad job: %v", err)
		}
		if strings.Contains(string(raw), secret) {
			t.Errorf("the private value is in the Nomad job spec: %s", raw)
		}
		for _, g := range job.TaskGroups {
			for _, task := range g.Tasks {
				if _, ok := task.Env["SECRET"]; ok {
					t.Errorf("SECRET is in the Nomad job's env (group %s)", *g.Name)
				}
				if task.Vault == nil || len(task.Templates) != 1 {
					t.Errorf("group %s: no vault block or template: %+v %+v", *g.Name, task.Vault, task.Templates)
				} else if vaultPolicy != "" && !slices.Equal(task.Vault.Policies, []string{vaultPolicy}) {
					t.Errorf("group %s: vault policies %v, want [%s]", *g.Name, task.Vault.Policies, vaultPolicy)
				}
			}
		}
		t.Logf("private env through Vault (vault policies %q): the task serves the value, the job spec (%d bytes of JSON) does not hold it", vaultPolicy, len(raw))
	}

	// --- 6. restart ---------------------------------------------------------
	before = b.runningInstances(t, u, app, "web", 1, true)
	sleeper := b.runningInstances(t, u, app, "sleeper", 1, false)
	r = b.operate(t, "GET", "/apps/"+app+"/restart", u, nil).want(t, http.StatusOK)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	after = b.runningInstances(t, u, app, "web", 1, true)
	if after[0].ID == before[0].ID {
		t.Errorf("the restart did not replace the web allocation %s", before[0].ID)
	}
	if s := b.runningInstances(t, u, app, "sleeper", 1, false); s[0].ID == sleeper[0].ID {
		t.Errorf("the restart did not replace the sleeper allocation %s", sleeper[0].ID)
	}
	answers(t, after, "/greeting.txt", "hello from nomad")

	// --- 7. undeploy: the job is gone from Nomad ----------------------------
	last := after[0]
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, nomadTimeout, app+" to be undeployed", func() bool {
		return b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).Code == http.StatusNotFound
	})
	eventually(t, time.Minute, "the Nomad job "+app+" to be gone or stopped", func() bool {
		job := nomadJob(t, nc, app)
		return job == nil || (job.Stop != nil && *job.Stop)
	})
	eventually(t, time.Minute, "the allocations of "+app+" to stop", func() bool {
		allocs, _, err := nc.Allocations().List(&nomadapi.QueryOptions{Filter: "JobID == " + fmt.Sprintf("%q", app)})
		if err != nil {
			t.Fatalf("listing the allocations of %s: %v", app, err)
		}
		for _, a := range allocs {
			if a.ClientStatus == "running" || a.ClientStatus == "pending" {
				return false
			}
		}
		return true
	})
	eventually(t, 30*time.Second, "the last web instance to stop answering", func() bool {
		code, _ := fetch(last.Address, "/version.txt")
		return code == 0
	})
	tv = b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK)
	if units, _ := tv.Obj()["Units"].([]any); len(units) != 0 {
		t.Errorf("an undeployed app still has units: %s", tv)
	}
	b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil).want(t, http.StatusOK)
}

// nomadVaultWorkloadIdentity tells whether the Nomad servers are 1.7 or
// later, where a task's vault block may name a role without policies.
func nomadVaultWorkloadIdentity(t testing.TB, c *nomadapi.Client) bool {
	t.Helper()
	self, err := c.Agent().Self()
	if err != nil {
		t.Fatalf("reading the Nomad agent's version: %v", err)
	}
	ver, _ := self.Config["Version"].(map[string]any)
	v, _ := ver["Version"].(string)
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("the Nomad agent's version %q: %v", v, err)
	}
	return major > 1 || (major == 1 && minor >= 7)
}

// writeVaultReadPolicy writes (and removes at cleanup) the Vault policy
// name, granting read on the KV v2 paths Berth's Nomad templates read: the
// runtime env of every app under the Secrets prefix on the "secret" mount
// (the harness's vault {} block).
func writeVaultReadPolicy(t testing.TB, addr, token, name, prefix string) {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = addr
	vc, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("a Vault API client for %s: %v", addr, err)
	}
	vc.SetToken(token)
	rules := fmt.Sprintf("path %q {\n  capabilities = [\"read\"]\n}\n", "secret/data/"+strings.Trim(prefix, "/")+"/apps/*")
	if err := vc.Sys().PutPolicy(name, rules); err != nil {
		t.Fatalf("writing the Vault policy %s: %v", name, err)
	}
	t.Cleanup(func() { _ = vc.Sys().DeletePolicy(name) })
}
