package e2e

// The everyday tools of issue 10 on a real Nomad: logs, a one-off command,
// rollback and history, a custom domain, a team token for CI, and
// undeploy, on the real berth binary with a nomad {} block, driven through
// the HTTP API. It runs only when NOMAD_ADDR is set (see
// tools/nomad/README.md), and says it was skipped otherwise; its Nomad
// needs what TestNomadDeploy's does (raw_exec, python3 on the client's
// PATH, a Consul agent).

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/api"
)

// dailyTagsPrefix is the consul_tags_prefix Berth is configured with: not
// the default ("urlprefix-"), so the tags show the setting is used.
const dailyTagsPrefix = "traefik.http.host="

// dailyHello is what the web proc prints to stdout when it starts.
const dailyHello = "hello-from-nomad"

// dailyRelease is a release with one python web proc that prints
// dailyHello, then serves its task directory (version.txt holds version).
func dailyRelease(mv, version string) map[string]any {
	return map[string]any{
		"meta_version": mv,
		"web": map[string]any{
			"cmd": "echo " + dailyHello + "; " + webCmd, "memory": "64m", "cpu": 0.1, "num_instances": 1,
			"healthcheck": "/version.txt", "env": []string{"WEBAPP_VERSION=" + version},
		},
	}
}

// jobVersion is the Berth release of the app's Nomad job ("" when there
// is no job).
func jobVersion(t testing.TB, nc *nomadapi.Client, app string) string {
	t.Helper()
	job := nomadJob(t, nc, app)
	if job == nil {
		return ""
	}
	return job.Meta["berth_meta_version"]
}

// webServiceTags are the tags of the services of the web group of the
// app's Nomad job.
func webServiceTags(t testing.TB, nc *nomadapi.Client, app string) []string {
	t.Helper()
	job := nomadJob(t, nc, app)
	if job == nil {
		t.Fatalf("no Nomad job %s", app)
	}
	var tags []string
	for _, g := range job.TaskGroups {
		if g.Name == nil || *g.Name != "web" {
			continue
		}
		for _, svc := range g.Services {
			tags = append(tags, svc.Tags...)
		}
		for _, task := range g.Tasks {
			for _, svc := range task.Services {
				tags = append(tags, svc.Tags...)
			}
		}
	}
	return tags
}

// appJobs lists the Nomad jobs of app (its own and its one-off commands'),
// with their status.
func appJobs(t testing.TB, nc *nomadapi.Client, app string) []*nomadapi.JobListStub {
	t.Helper()
	stubs, _, err := nc.Jobs().PrefixList(app)
	if err != nil {
		t.Fatalf("listing the Nomad jobs of %s: %v", app, err)
	}
	var out []*nomadapi.JobListStub
	for _, s := range stubs {
		if s.ID == app || strings.HasPrefix(s.ID, app+"-run-") {
			out = append(out, s)
		}
	}
	return out
}

func jobIDs(stubs []*nomadapi.JobListStub) []string {
	var ids []string
	for _, s := range stubs {
		ids = append(ids, fmt.Sprintf("%s (%s, stop=%v)", s.ID, s.Status, s.Stop))
	}
	return ids
}

// TestNomadDailyTools: on a real Nomad, a team's app is deployed; its
// start-up line is read through the logs API; a one-off command sees the
// app's env and returns its exit code, and leaves no job behind; a second
// release, a rollback to the first (the Nomad job follows) and the
// rollback in the history; a custom domain becomes a routing tag of the
// web service in the configured consul_tags_prefix form; a team token
// with app.deploy and app.read deploys; undeploy leaves no job of the app
// running.
func TestNomadDailyTools(t *testing.T) {
	addr, nc := nomadEnv(t)
	hcl := strings.TrimSuffix(nomadHCL(addr), "}\n") + "  consul_tags_prefix = " + hclString(dailyTagsPrefix) + "\n}\n"
	b := startBerth(t, Options{ExtraHCL: hcl})
	if tok := os.Getenv("NOMAD_TOKEN"); tok != "" {
		b.remember(tok, "the Nomad token")
	}
	app := fmt.Sprintf("ndaily%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		// Whatever happened, leave nothing of the app in the Nomad.
		if stubs, _, err := nc.Jobs().PrefixList(app); err == nil {
			for _, s := range stubs {
				if s.ID == app || strings.HasPrefix(s.ID, app+"-run-") {
					_, _, _ = nc.Jobs().DeregisterOpts(s.ID, &nomadapi.DeregisterOptions{Purge: true}, nil)
				}
			}
		}
	})
	u := b.newUser(t, "nomaddaily")
	team := b.unique("nomad-ci")
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", u, map[string]any{"name": app, "teamOwner": team}).want(t, http.StatusOK)

	// --- 1. push v1 and deploy ----------------------------------------------
	v1, v2 := metaVersion(), metaVersion()
	b.push(t, u, app, dailyRelease(v1, "one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	if v := b.waitNomadRunning(t, u, app, generationOf(t, r)); v.MetaVersion != v1 {
		t.Fatalf("deployed view: %+v", v)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")
	if mv := jobVersion(t, nc, app); mv != v1 {
		t.Fatalf("after the deploy the Nomad job is at %q, want %s", mv, v1)
	}

	// --- 2. logs: the start-up line, from Nomad's allocation logs -----------
	c := b.logsClient(t, u)
	// Polled once a second: each read opens connections to Nomad's
	// allocation logs API, which limits concurrent connections per client.
	// Nomad keeps no time per line: lines read back (not followed) carry
	// none (backends/nomad/logs.go), so the time is not asked for here.
	var got []api.LogLine
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		var err error
		got, _, err = c.Logs().Get(app, api.LogQuery{Proc: "web", Stream: api.LogStdout, Lines: 50}, nil)
		if err != nil {
			t.Fatalf("GET logs of %s: %v", app, err)
		}
		if slices.ContainsFunc(got, func(l api.LogLine) bool {
			return l.Line == dailyHello && l.Proc == "web" && l.Instance == 0 && l.Stream == api.LogStdout
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the web proc's stdout (lines=50) has no line %q within a minute: %+v", dailyHello, got)
		}
	}
	if len(got) > 50 {
		t.Errorf("lines=50 answered %d lines", len(got))
	}
	// The wire form of the same query.
	raw := b.do(t, "GET", "/api/v1/apps/"+app+"/logs/?proc=web&stream=stdout&lines=1", u, nil).want(t, http.StatusOK)
	if n := strings.Count(strings.TrimSpace(string(raw.Raw)), "\n") + 1; strings.TrimSpace(string(raw.Raw)) == "" || n != 1 {
		t.Errorf("GET logs/?lines=1 answered %d lines: %s", n, raw.Raw)
	}

	// --- 3. a one-off command with the app's env, as a batch job ------------
	r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{"envs": []map[string]any{
		{"name": "GREETING", "value": "hello-run-on-nomad", "public": true},
	}}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	out, errs, res, err := b.runIn(t, u, app, &api.RunRequest{Command: []string{"sh", "-c", "echo $GREETING; exit 3"}})
	if err != nil {
		t.Fatalf("running a one-off command on Nomad: %v (stdout %q, stderr %q)", err, out, errs)
	}
	if res.ExitCode != 3 || res.Error != "" || !slices.Equal(out, []string{"hello-run-on-nomad"}) || res.Proc != "web" || res.RunID == "" {
		t.Errorf("the run: result %+v, stdout %q, stderr %q; want exit code 3 and stdout [hello-run-on-nomad]", res, out, errs)
	}
	eventually(t, 30*time.Second, "no "+app+"-run-* job left in Nomad", func() bool {
		for _, s := range appJobs(t, nc, app) {
			if s.ID != app {
				return false
			}
		}
		return true
	})

	// --- 4. v2, then a rollback to v1; the history lists it -----------------
	b.push(t, u, app, dailyRelease(v2, "two"))
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	if v := b.waitNomadRunning(t, u, app, generationOf(t, r)); v.MetaVersion != v2 {
		t.Fatalf("after PUT %s the app is at %s", v2, v.MetaVersion)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "two")
	if mv := jobVersion(t, nc, app); mv != v2 {
		t.Fatalf("after the deploy of v2 the Nomad job is at %q, want %s", mv, v2)
	}
	r = b.operate(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, nil).want(t, http.StatusAccepted)
	if r.Str("meta_version") != v1 || r.Str("operation") != "rollback to "+v1 {
		t.Errorf("the rollback answer: %s", r)
	}
	if v := b.waitNomadRunning(t, u, app, generationOf(t, r)); v.MetaVersion != v1 {
		t.Fatalf("after the rollback the app is at %s, want %s", v.MetaVersion, v1)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")
	if mv := jobVersion(t, nc, app); mv != v1 {
		t.Errorf("after the rollback the Nomad job is at %q, want %s", mv, v1)
	}
	h := decodeAs[[]api.HistoryEntry](t, b.do(t, "GET", "/api/v1/apps/"+app+"/history/", u, nil).want(t, http.StatusOK))
	if len(h) == 0 || h[0].Operation != "rollback to "+v1 || h[0].MetaVersion != v1 || h[0].Result != api.ResultRunning || h[0].By != u.Email {
		t.Errorf("the history after the rollback, newest first: %+v", h)
	}

	// --- 5. a custom domain: a routing tag in the configured form -----------
	const host = "www.example.test"
	r = b.operate(t, "POST", "/apps/"+app+"/cname", u, api.DomainsRequest{CName: []string{host}}).want(t, http.StatusAccepted)
	ch := decodeAs[api.DomainsChange](t, r)
	if ch.Operation == nil || !slices.Equal(ch.CName, []string{host}) {
		t.Fatalf("the add's answer: %s", r)
	}
	if v := b.waitNomadRunning(t, u, app, ch.Operation.Generation); !slices.Contains(v.Routes, host) {
		t.Errorf("the app's routes after the add: %v", v.Routes)
	}
	wantTags := []string{dailyTagsPrefix + appHost(app) + "/", dailyTagsPrefix + host + "/"}
	tags := webServiceTags(t, nc, app)
	for _, w := range wantTags {
		if !slices.Contains(tags, w) {
			t.Errorf("the web service's tags %q lack %q", tags, w)
		}
	}
	if slices.ContainsFunc(tags, func(s string) bool { return strings.HasPrefix(s, "urlprefix-") }) {
		t.Errorf("the web service's tags %q use the default prefix, not %q", tags, dailyTagsPrefix)
	}
	answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")

	// --- 6. a team token for CI deploys -------------------------------------
	r = b.do(t, "POST", "/teams/"+team+"/tokens", u, map[string]any{
		"description": "CI on Nomad", "actions": []string{"app.deploy", "app.read"}, "expires_in": 3600,
	}).want(t, http.StatusCreated)
	created := decodeAs[api.TeamTokenCreated](t, r)
	if created.Token == "" || created.Team != team {
		t.Fatalf("the team token: %s", r)
	}
	b.remember(created.Token, "the team token")
	ci := &User{Email: u.Email, Token: created.Token}
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", ci, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	if v := b.waitNomadRunning(t, ci, app, generationOf(t, r)); v.MetaVersion != v2 {
		t.Fatalf("after the team token's deploy of %s the app is at %s", v2, v.MetaVersion)
	}
	answers(t, b.runningInstances(t, ci, app, "web", 1, true), "/version.txt", "two")
	if mv := jobVersion(t, nc, app); mv != v2 {
		t.Errorf("after the team token's deploy the Nomad job is at %q, want %s", mv, v2)
	}
	if tags := webServiceTags(t, nc, app); !slices.Contains(tags, dailyTagsPrefix+host+"/") {
		t.Errorf("after a new deploy the web service's tags %q lost the custom domain", tags)
	}
	h = decodeAs[[]api.HistoryEntry](t, b.do(t, "GET", "/api/v1/apps/"+app+"/history/", ci, nil).want(t, http.StatusOK))
	if len(h) == 0 || h[0].MetaVersion != v2 || h[0].Result != api.ResultRunning {
		t.Errorf("the history after the team token's deploy, newest first: %+v", h)
	}
	// The token deploys; it does not do what it was not given.
	b.do(t, "POST", "/apps/"+app+"/env", ci, map[string]any{"envs": []map[string]any{{"name": "X", "value": "1"}}}).want(t, http.StatusForbidden)

	// --- 7. undeploy: no job of the app left running in Nomad ---------------
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, nomadTimeout, app+" to be undeployed", func() bool {
		return b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).Code == http.StatusNotFound
	})
	var left []*nomadapi.JobListStub
	eventually(t, time.Minute, "no job of "+app+" left in Nomad (gone or stopped)", func() bool {
		left = left[:0]
		for _, s := range appJobs(t, nc, app) {
			if !s.Stop && s.Status != "dead" {
				left = append(left, s)
			}
		}
		return len(left) == 0
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
	t.Logf("after the undeploy the Nomad jobs of %s: %v", app, jobIDs(appJobs(t, nc, app)))
}
