package api_test

import (
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

const lainYAML = "appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n"

// devWithTeam registers dev@example.com, logs in and makes team "devs".
func devWithTeam(t *testing.T, s *testServer) *api.Client {
	t.Helper()
	if _, _, err := s.client(t).Users().Create(&api.UserCreateRequest{Email: devEmail, Password: password}, nil); err != nil {
		t.Fatal(err)
	}
	dev := s.login(t, devEmail)
	if _, _, err := dev.Teams().Create("devs", nil); err != nil {
		t.Fatal(err)
	}
	return dev
}

func TestAppsReposMaintainersTokens(t *testing.T) {
	s := startServer(t, false)
	dev := devWithTeam(t, s)

	created, _, err := dev.Apps().Create(&api.AppCreateRequest{Name: "hello", Platform: "python"}, nil)
	if err != nil || created.Status != "success" || created.RepositoryURL == "" {
		t.Fatalf("create %+v %v", created, err)
	}
	_, _, err = dev.Apps().Create(&api.AppCreateRequest{Name: "hello"}, nil)
	apiError(t, err, 409)
	repo, wm, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: "world"}, nil)
	if err != nil || wm.StatusCode != 201 || repo.AppName != "world" || repo.AppType != "app" || repo.Owner != devEmail {
		t.Fatalf("repo create %+v %+v %v", repo, wm, err)
	}

	apps, _, err := dev.Apps().List(nil)
	if err != nil || len(apps) != 2 {
		t.Fatalf("apps %+v %v", apps, err)
	}
	strict(t, dev, "/apps", &[]api.App{})
	a, _, err := dev.Apps().Get("hello", nil)
	if err != nil || a.Name != "hello" || a.Platform != "python" || a.Repository != created.RepositoryURL || a.Owner != devEmail || a.Teams == nil {
		t.Fatalf("app %+v %v", a, err)
	}
	repos, _, err := dev.Repos().List(nil)
	if err != nil || len(repos) != 2 {
		t.Fatalf("repos %+v %v", repos, err)
	}
	strict(t, dev, "/api/v1/repos/", &[]api.Repo{})
	strict(t, dev, "/api/v1/repos/hello/", &api.Repo{})

	pushed, wm, err := dev.Repos().PushYAML("hello", "1700000000-abc", []byte(lainYAML), nil)
	if err != nil || wm.StatusCode != 201 || pushed.Status != "pushed" || len(pushed.Procs) != 1 {
		t.Fatalf("push %+v %+v %v", pushed, wm, err)
	}
	if p := pushed.Procs[0]; p.Name != "web" || p.Type != "web" || p.MemoryMB != 64 || p.NumInstances != 1 {
		t.Fatalf("pushed proc %+v", p)
	}
	again, wm, err := dev.Repos().Push("hello", &api.PushRequest{MetaVersion: "1700000000-abc", LainYAML: lainYAML}, nil)
	if err != nil || wm.StatusCode != 200 || again.Status != "unchanged" {
		t.Fatalf("push again %+v %+v %v", again, wm, err)
	}
	_, _, err = dev.Repos().Push("hello", &api.PushRequest{MetaVersion: "1700000000-abc", Spec: map[string]any{
		"appname": "hello", "web": map[string]any{"cmd": "./other", "memory": "64m"},
	}}, nil)
	if e := apiError(t, err, 409); !strings.Contains(e.Message, "different spec") {
		t.Fatalf("conflicting push: %v", e)
	}
	_, _, err = dev.Repos().Push("hello", &api.PushRequest{MetaVersion: "1700000001-def", Spec: map[string]any{
		"web": map[string]any{"cmd": "./hello", "memory": "lots"},
	}}, nil)
	apiError(t, err, 400)

	det, _, err := dev.Repos().Details("hello", nil)
	if err != nil || det.LatestMetaVersion != "1700000000-abc" || det.Deployed || det.MetaVersion != "" {
		t.Fatalf("details %+v %v", det, err)
	}
	strict(t, dev, "/api/v1/repos/hello/details/", &api.RepoDetails{})

	// Maintainers and roles.
	if _, _, err := s.client(t).Users().Create(&api.UserCreateRequest{Email: "other@example.com", Password: password}, nil); err != nil {
		t.Fatal(err)
	}
	m, wm, err := dev.Maintainers().Add("hello", &api.MaintainerAddRequest{Username: "other@example.com"}, nil)
	if err != nil || wm.StatusCode != 201 || m.Role != "developer" {
		t.Fatalf("maintainer add %+v %v", m, err)
	}
	ms, _, err := dev.Maintainers().List("hello", nil)
	if err != nil || len(ms) != 2 || ms[0].Username != devEmail || ms[0].Role != "owner" {
		t.Fatalf("maintainers %+v %v", ms, err)
	}
	strict(t, dev, "/api/v1/repos/hello/maintainers/", &[]api.Maintainer{})
	if g, _, err := dev.Maintainers().Get("hello", "other@example.com", nil); err != nil || g.Role != "developer" {
		t.Fatalf("maintainer get %+v %v", g, err)
	}
	other := s.login(t, "other@example.com")
	role, _, err := other.Repos().MyRole("hello", nil)
	if err != nil || role.Role != "developer" || role.Username != "other@example.com" || role.AppName != "hello" {
		t.Fatalf("my role %+v %v", role, err)
	}
	if r, _, err := dev.Repos().UserRole("hello", "other@example.com", nil); err != nil || r.Role != "developer" {
		t.Fatalf("user role %+v %v", r, err)
	}
	_, _, err = other.Maintainers().Add("hello", &api.MaintainerAddRequest{Username: adminEmail, Role: "owner"}, nil)
	apiError(t, err, 403)
	if _, err := dev.Maintainers().Remove("hello", "other@example.com", nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = dev.Maintainers().Get("hello", "other@example.com", nil)
	apiError(t, err, 404)
	_, _, err = other.Apps().Get("hello", nil)
	if code := api.StatusOf(err); code != 403 && code != 404 {
		t.Fatalf("a former maintainer reads the app: %v", err)
	}

	// App tokens act on their app only.
	tok, _, err := dev.Tokens().Create(&api.AppTokenRequest{AppName: "hello", Expires: 600}, nil)
	if err != nil || tok.Token == "" || tok.AppName != "hello" || tok.Expires < 590 || tok.Expires > 600 {
		t.Fatalf("app token %+v %v", tok, err)
	}
	appc := s.client(t)
	appc.SetToken(tok.Token)
	ai, _, err := appc.Users().Info(nil)
	if err != nil || !ai.AppToken || ai.App != "hello" {
		t.Fatalf("app token info %+v %v", ai, err)
	}
	if _, _, err := appc.Repos().Get("hello", nil); err != nil {
		t.Fatalf("app token reads its app: %v", err)
	}
	_, _, err = appc.Teams().List(nil)
	apiError(t, err, 403)

	ps, _, err := dev.Platforms().List(nil)
	if err != nil || len(ps) == 0 || ps[0].Name == "" {
		t.Fatalf("platforms %+v %v", ps, err)
	}
	strict(t, dev, "/platforms", &[]api.Platform{})

	if _, err := dev.Apps().Remove("world", nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = dev.Repos().Get("world", nil)
	apiError(t, err, 404)
}
