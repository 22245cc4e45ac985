package api_test

import (
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

// The test server has no broker manager: the services endpoints answer
// their errors, which the client returns as *api.Error.
func TestServicesErrors(t *testing.T) {
	s := startServer(t, false)
	dev := devWithTeam(t, s)

	list, _, err := dev.Services().List(nil)
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("services %+v %v", list, err)
	}
	if l, _, err := dev.Instances().List(nil); err != nil || len(l) != 0 {
		t.Fatalf("instances %+v %v", l, err)
	}
	// Settings are for site admins.
	_, _, err = dev.Services().Create(&api.ServiceDefinition{ID: "mysql", Broker: "mysql", Settings: map[string]string{"host": "127.0.0.1"}}, &api.WriteOptions{RequestID: "svc-1"})
	if e := apiError(t, err, 403); e.RequestID != "svc-1" || !strings.Contains(e.Message, "site admins") {
		t.Fatalf("settings by a non-admin: %+v", e)
	}
	_, _, err = dev.Services().Create(&api.ServiceDefinition{ID: "ext", Broker: "external", Team: "devs"}, nil)
	apiError(t, err, 503) // no broker manager is configured
	_, _, err = dev.Services().CreateYAML([]byte("id: x\nbroker: y\nbogus: 1\n"), nil)
	apiError(t, err, 400)
	_, _, err = dev.Services().Instances("nope", nil)
	apiError(t, err, 404)
	_, _, err = dev.Services().Doc("nope", nil)
	apiError(t, err, 404)
	_, err = dev.Services().SetDoc("nope", "text", nil)
	apiError(t, err, 404)
	_, err = dev.Services().Grant("nope", "devs", nil)
	apiError(t, err, 404)
	_, err = dev.Services().Revoke("nope", "devs", nil)
	apiError(t, err, 404)
	_, err = dev.Services().Remove("nope", nil)
	apiError(t, err, 404)
	_, _, err = dev.Instances().Create(&api.InstanceCreateRequest{Name: "db", ServiceName: "nope"}, nil)
	apiError(t, err, 404)
	_, _, err = dev.Instances().Get("db", nil)
	apiError(t, err, 404)
	_, _, err = dev.Instances().Status("db", nil)
	apiError(t, err, 404)
	_, err = dev.Instances().Remove("db", nil)
	apiError(t, err, 404)
	if _, _, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: "hello"}, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = dev.Instances().Bind("db", "hello", nil)
	apiError(t, err, 404)
	_, _, err = dev.Instances().Unbind("db", "hello", nil)
	apiError(t, err, 404)
}

func TestNotifyEventsHealth(t *testing.T) {
	s := startServer(t, false)
	dev := devWithTeam(t, s)
	admin := s.login(t, adminEmail)

	_, _, err := dev.Notify().Add(api.NotifyImagePush, "https://hooks.example.com/x?token=y", nil)
	apiError(t, err, 403)
	n, wm, err := admin.Notify().Add(api.NotifyImagePush, "https://hooks.example.com/x?token=y", nil)
	if err != nil || wm.StatusCode != 201 || n.URL != "https://hooks.example.com/x?token=y" || n.By != adminEmail || n.Type != "imagepush" {
		t.Fatalf("notifier %+v %v", n, err)
	}
	_, _, err = admin.Notify().Add(api.NotifyImagePush, "https://hooks.example.com/x?token=y", nil)
	apiError(t, err, 409)
	_, _, err = admin.Notify().Add("nope", "https://hooks.example.com/", nil)
	apiError(t, err, 404)
	ns, _, err := dev.Notify().List(api.NotifyImagePush, nil)
	if err != nil || len(ns) != 1 || ns[0].URL != "https://hooks.example.com/…" {
		t.Fatalf("notifiers as a user %+v %v", ns, err)
	}
	strict(t, admin, "/api/v1/notify/imagepush/", &[]api.Notifier{})
	if _, err := admin.Notify().Remove(api.NotifyImagePush, "https://hooks.example.com/x?token=y", nil); err != nil {
		t.Fatal(err)
	}
	if ns, _, _ := admin.Notify().List(api.NotifyImagePush, nil); len(ns) != 0 {
		t.Fatalf("notifiers after remove %+v", ns)
	}

	_, _, err = dev.Events().List(0, "", nil)
	apiError(t, err, 403)
	page, _, err := admin.Events().List(2, "", nil)
	if err != nil || len(page.Events) != 2 || page.Next == "" || page.Events[0].ID <= page.Events[1].ID {
		t.Fatalf("events %+v %v", page, err)
	}
	next, _, err := admin.Events().List(2, page.Next, nil)
	if err != nil || len(next.Events) == 0 || next.Events[0].ID >= page.Events[1].ID {
		t.Fatalf("next page %+v %v", next, err)
	}
	strict(t, admin, "/api/v1/events/", &api.EventsPage{})
	_, _, err = admin.Events().List(5000, "", nil)
	apiError(t, err, 400)

	h, qm, err := s.client(t).Health().Get(nil)
	if err != nil || h.Status != "ok" || !h.Backends["store"].OK || h.Backends["store"].Backend != "bolt" || qm.RequestID == "" {
		t.Fatalf("health %+v %v", h, err)
	}
	strict(t, dev, "/healthz", &api.Health{})
}

func TestClientConfig(t *testing.T) {
	t.Setenv(api.AddrEnv, "127.0.0.1:1")
	t.Setenv(api.TokenEnv, "tok")
	cfg := api.DefaultConfig()
	if cfg.Address != "127.0.0.1:1" || cfg.Token != "tok" {
		t.Fatalf("config from the environment: %+v", cfg)
	}
	c, err := api.NewClient(cfg)
	if err != nil || c.Address() != "http://127.0.0.1:1" {
		t.Fatalf("client %v %v", c, err)
	}
	if _, err := api.NewClient(&api.Config{Address: "ftp://x"}); err == nil {
		t.Fatal("an ftp address was taken")
	}
	// Nothing listens there: a transport error, not an *api.Error.
	_, _, err = c.Users().Info(nil)
	if err == nil || api.StatusOf(err) != 0 {
		t.Fatalf("unreachable server: %v", err)
	}
}
