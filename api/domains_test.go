package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

// TestDomains adds, lists and removes custom domains with the client: the
// answers decode strictly, a host of another app is a 409 naming it.
func TestDomains(t *testing.T) {
	s := startServer(t, false)
	dev := devWithTeam(t, s)
	for _, app := range []string{"site", "rival"} {
		if _, _, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: app}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ch, wm, err := dev.Domains().Add("site", []string{"www.site.example", "shop.site.example"}, nil)
	if err != nil || wm.StatusCode != http.StatusOK || ch.Operation != nil || ch.AppName != "site" ||
		!slices.Equal(ch.CName, []string{"www.site.example", "shop.site.example"}) || len(ch.Routes) != 3 {
		t.Fatalf("add: %+v %+v %v", ch, wm, err)
	}
	var d api.Domains
	strict(t, dev, "/apps/site/cname", &d)
	if !slices.Equal(d.Routes, ch.Routes) || !slices.Equal(d.CName, ch.CName) {
		t.Fatalf("list: %+v", d)
	}
	l, _, err := dev.Domains().List("site", nil)
	if err != nil || !slices.Equal(l.CName, d.CName) {
		t.Fatalf("List: %+v %v", l, err)
	}
	// The tsuru view of the app shows them beside its own address.
	var app api.App
	strict(t, dev, "/apps/site", &app)
	if app.Ip != "site.apps.localhost" || !slices.Equal(app.CName, d.CName) {
		t.Fatalf("the app's view: Ip %q, cname %v", app.Ip, app.CName)
	}
	_, _, err = dev.Domains().Add("rival", []string{"www.site.example"}, nil)
	if e := apiError(t, err, http.StatusConflict); !strings.Contains(e.Message, `"site"`) {
		t.Fatalf("the 409 does not name the app: %v", e)
	}
	ch, _, err = dev.Domains().Remove("site", []string{"www.site.example"}, nil)
	if err != nil || !slices.Equal(ch.CName, []string{"shop.site.example"}) {
		t.Fatalf("remove: %+v %v", ch, err)
	}
	_, _, err = dev.Domains().Remove("site", []string{"www.site.example"}, nil)
	apiError(t, err, http.StatusNotFound)
	if _, _, err := dev.Domains().Add("rival", []string{"www.site.example"}, nil); err != nil {
		t.Fatalf("add of a freed host: %v", err)
	}
}
