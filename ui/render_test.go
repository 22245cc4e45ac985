package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestAppPageRendersADeployedApp renders the app page with the parts a
// server without a scheduler cannot produce (procs, instances, a deploy in
// progress), which the tests through a real server do not reach.
func TestAppPageRendersADeployedApp(t *testing.T) {
	c, err := New(http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	d := appData{
		App: api.App{Name: "web", TeamOwner: "alpha", State: "deploying", MetaVersion: "1700000000-abc"},
		Deployed: &api.DeployedApp{AppName: "web", Procs: []api.Proc{{ProcName: "web", Type: "web", NumInstances: 2, CPU: 0.5, Memory: "128m",
			Instances: []api.Instance{{Name: "web.web.0", State: "running", Address: "127.0.0.1:31000", Restarts: 3}}}},
			Deploy: &api.Deploy{Operation: "deploy 1700000000-abc", State: "deploying"}},
		Env:      []api.EnvVar{{Name: "SECRET", Value: "*** (private)"}},
		Bound:    []string{"redis/cache"},
		Domains:  api.Domains{Routes: []string{"web.example"}, CName: []string{"www.example.com"}},
		Releases: []api.Release{{MetaVersion: "1700000000-abc", PushedBy: "ann@example.com", Pushed: time.Unix(1700000000, 0), Current: true}},
		History:  []api.HistoryEntry{{Generation: 2, Operation: "deploy 1700000000-abc", Result: "failed", Message: "boom"}},
	}
	w := httptest.NewRecorder()
	c.render(w, 200, "app", page{Title: "web", Email: "ann@example.com", CSRF: "x", Data: d})
	if w.Code != 200 {
		t.Fatalf("render: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{"127.0.0.1:31000", "<td>3</td>", "1/2 instances", "deploy 1700000000-abc: deploying",
		"redis/cache", "www.example.com", "web.example (route)", "ann@example.com", "failed — boom", "private (hidden)"} {
		if !strings.Contains(body, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	if strings.Contains(body, "*** (private)") {
		t.Error("the page shows the API's masked value instead of its own label")
	}
}
