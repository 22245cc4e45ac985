package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/devagent"
)

// consulKV writes (value non-nil) or deletes a key of this server's Store
// straight in Consul KV, behind Berth's back: it stands for a write that
// raced a check, or a record written by an older Berth.
func (b *Berth) consulKV(t *testing.T, key string, value any) {
	t.Helper()
	method, body := "DELETE", []byte(nil)
	if value != nil {
		method = "PUT"
		var err error
		if body, err = json.Marshal(value); err != nil {
			t.Fatal(err)
		}
	}
	u := strings.TrimSuffix(b.Opts.Consul, "/") + "/v1/kv/" + b.ConsulPrefix + key
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s in Consul KV: %v", method, key, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s in Consul KV: %s", method, key, resp.Status)
	}
	// A write that bypasses Berth is not announced to the servers' read
	// leases: each sees it within its next confirmation round (a second).
	time.Sleep(2 * time.Second)
}

// TestTeamIDAppsOfDeletedTeam: an app is its team's by the team's ID, not
// its name. DELETE /teams refuses while the team owns apps, but if the team
// record goes anyway (a delete racing the app's registration, as it could
// before, or a record edited by hand), whoever creates a team of that name
// gets no role on the app. App records older than team IDs keep working
// for their team, and give nothing to a team created after them.
func TestTeamIDAppsOfDeletedTeam(t *testing.T) {
	b := startBerth(t, Options{Consul: devagent.Consul(t)})
	owner := b.newUser(t, "tidowner")
	mate := b.newUser(t, "tidmate")
	thief := b.newUser(t, "tidthief")
	team := b.unique("tidteam")
	app := b.unique("tidapp")
	b.do(t, "POST", "/teams", owner, map[string]any{"name": team}).want(t, http.StatusOK)
	b.do(t, "PUT", "/teams/"+team+"/"+mate.Email, owner, nil).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", owner, map[string]any{"name": app, "teamOwner": team}).want(t, http.StatusOK)
	r := b.do(t, "GET", "/apps/"+app, mate, nil).want(t, http.StatusOK)
	if ts, _ := r.Obj()["Teams"].([]any); r.Str("TeamOwner") != team || len(ts) != 1 || ts[0] != team {
		t.Errorf("the app's teams are shown by name: %s", r)
	}
	b.do(t, "DELETE", "/teams/"+team, owner, nil).want(t, http.StatusForbidden)

	// The team record goes behind the app's back; someone else creates
	// a team of that name.
	b.consulKV(t, "teams/"+team, nil)
	b.do(t, "POST", "/teams", thief, map[string]any{"name": team}).want(t, http.StatusOK)
	b.do(t, "GET", "/apps/"+app, thief, nil).check(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/repos/"+app+"/roles/", thief, nil).check(t, http.StatusForbidden)
	b.do(t, "POST", "/api/v1/repos/"+app+"/maintainers/", thief, map[string]any{"username": thief.Email, "role": "developer"}).check(t, http.StatusForbidden)
	if r := b.do(t, "GET", "/apps", thief, nil); r.Code == http.StatusOK && strings.Contains(string(r.Raw), app) {
		t.Errorf("GET /apps lists the old team's app to the new team's member: %s", r)
	}
	// The app does not hold the new team, and still shows its team's name.
	b.do(t, "DELETE", "/teams/"+team, thief, nil).check(t, http.StatusOK)
	r = b.do(t, "GET", "/apps/"+app, owner, nil).want(t, http.StatusOK)
	if r.Str("TeamOwner") != team {
		t.Errorf("the app's team owner: %s", r)
	}

	// Older app records (no team IDs): the team they were given keeps
	// its access; a team created after the app under a deleted team's
	// name gets none.
	kept := b.unique("tidkept")
	b.do(t, "POST", "/teams", owner, map[string]any{"name": kept}).want(t, http.StatusOK)
	b.do(t, "PUT", "/teams/"+kept+"/"+mate.Email, owner, nil).want(t, http.StatusOK)
	gone := b.unique("tidgone")
	legacy := func(name, team string) {
		b.consulKV(t, "apps/"+name, map[string]any{
			"name": name, "owner": owner.Email, "team_owner": team, "teams": []string{team}, "apptype": "app",
			"maintainers": map[string]string{owner.Email: "owner"}, "giturl": "", "created": time.Now().UTC(),
			"deployed": false, "generation": 0,
		})
	}
	keptApp, goneApp := b.unique("tidold"), b.unique("tidorphan")
	legacy(keptApp, kept)
	legacy(goneApp, gone)
	b.do(t, "GET", "/apps/"+keptApp, mate, nil).check(t, http.StatusOK)
	b.do(t, "POST", "/teams", thief, map[string]any{"name": gone}).want(t, http.StatusOK)
	b.do(t, "GET", "/apps/"+goneApp, thief, nil).check(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/"+goneApp, owner, nil).check(t, http.StatusOK)
	b.do(t, "DELETE", "/teams/"+kept, owner, nil).check(t, http.StatusForbidden)
}
