package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestDomains gives a deployed app a custom domain (tsuru's cname) and
// reaches the app by it through the local router; the same host name on a
// second app is a 409 naming the first; once removed, the router no longer
// serves it, and the other app may take it.
func TestDomains(t *testing.T) {
	bin := buildWebapp(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "domains")
	app, other := "domapp", "domother"
	b.createApp(t, u, app)
	b.createApp(t, u, other)
	b.push(t, u, app, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	b.routed(t, appHost(app), "the app at its own host", func(a webAnswer) bool { return a.App == app })

	const host = "www.shop-example.com"
	if code, _ := b.viaRouter(t, host); code != http.StatusNotFound {
		t.Fatalf("before it was added, %s answered %d through the router, want 404", host, code)
	}

	// Added (with a trailing dot and capitals): the routes are redeployed.
	r = b.do(t, "POST", "/apps/"+app+"/cname", u, api.DomainsRequest{CName: []string{"WWW.Shop-Example.com."}}).want(t, http.StatusAccepted)
	ch := decodeAs[api.DomainsChange](t, r)
	if ch.Operation == nil || !slices.Equal(ch.CName, []string{host}) {
		t.Fatalf("the add's answer: %s", r)
	}
	v := b.waitRunning(t, u, app, ch.Operation.Generation)
	if !slices.Equal(v.Routes, []string{appHost(app), host}) {
		t.Fatalf("the app's routes after the add: %v", v.Routes)
	}
	d := decodeAs[api.Domains](t, b.do(t, "GET", "/apps/"+app+"/cname", u, nil).want(t, http.StatusOK))
	if !slices.Equal(d.CName, []string{host}) || !slices.Equal(d.Routes, []string{appHost(app), host}) {
		t.Fatalf("GET cname: %+v", d)
	}
	got := b.routed(t, host, "the app at its custom domain", func(a webAnswer) bool { return a.App == app })
	if got.Host != host {
		t.Fatalf("the app saw Host %q, want %q", got.Host, host)
	}
	b.routed(t, appHost(app), "the app still at its own host", func(a webAnswer) bool { return a.App == app })

	// The host belongs to app: a second app gets 409 naming it.
	r = b.do(t, "POST", "/apps/"+other+"/cname", u, api.DomainsRequest{CName: []string{host}}).want(t, http.StatusConflict)
	if !strings.Contains(r.String(), app) {
		t.Fatalf("the 409 does not name the app that has the host: %s", r)
	}
	// Bad names, names under the apps domain, and strangers are refused.
	b.do(t, "POST", "/apps/"+other+"/cname", u, api.DomainsRequest{CName: []string{"under_score.example.com"}}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/apps/"+other+"/cname", u, api.DomainsRequest{CName: []string{appHost(app)}}).want(t, http.StatusBadRequest)
	stranger := b.newUser(t, "stranger")
	b.do(t, "POST", "/apps/"+app+"/cname", stranger, api.DomainsRequest{CName: []string{"x.example.com"}}).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/apps/"+app+"/cname?cname="+host, stranger, nil).want(t, http.StatusForbidden)

	// Removed: no longer served; the other app (not deployed) may take it.
	r = b.do(t, "DELETE", "/apps/"+app+"/cname?cname="+host, u, nil).want(t, http.StatusAccepted)
	ch = decodeAs[api.DomainsChange](t, r)
	if ch.Operation == nil || len(ch.CName) != 0 {
		t.Fatalf("the remove's answer: %s", r)
	}
	v = b.waitRunning(t, u, app, ch.Operation.Generation)
	if !slices.Equal(v.Routes, []string{appHost(app)}) {
		t.Fatalf("the app's routes after the remove: %v", v.Routes)
	}
	eventually(t, 15*time.Second, "the removed host no longer served", func() bool {
		code, _ := b.viaRouter(t, host)
		return code == http.StatusNotFound
	})
	b.routed(t, appHost(app), "the app still at its own host", func(a webAnswer) bool { return a.App == app })
	b.do(t, "DELETE", "/apps/"+app+"/cname?cname="+host, u, nil).want(t, http.StatusNotFound)
	ch = decodeAs[api.DomainsChange](t, b.do(t, "POST", "/apps/"+other+"/cname", u, api.DomainsRequest{CName: []string{host}}).want(t, http.StatusOK))
	if ch.Operation != nil || !slices.Equal(ch.CName, []string{host}) {
		t.Fatalf("the add to an app not deployed answered %+v", ch)
	}
	d = decodeAs[api.Domains](t, b.do(t, "GET", "/apps/"+other+"/cname", u, nil).want(t, http.StatusOK))
	if !slices.Equal(d.CName, []string{host}) {
		t.Fatalf("the other app's domains: %+v", d)
	}
}
