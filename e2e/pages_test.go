package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/berthpaas/berth/api"
)

var linkNextRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// pageThrough GETs path and then each answer's Link rel="next" as u,
// returning the field of every item of every page, and the pages.
func pageThrough(t *testing.T, b *Berth, u *User, path, field string) (names []string, pages int) {
	t.Helper()
	for path != "" && pages < 50 {
		r := b.do(t, "GET", path, u, nil).want(t, http.StatusOK)
		pages++
		for _, it := range r.List() {
			names = append(names, fmt.Sprint(it.(map[string]any)[field]))
		}
		path = ""
		if l := r.Header.Get("Link"); l != "" {
			m := linkNextRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("GET %s: Link %q", r.Path, l)
			}
			nu, err := url.Parse(m[1])
			if err != nil || nu.Query().Get("next") != r.Header.Get("X-Next") {
				t.Fatalf("GET %s: Link %q and X-Next %q differ", r.Path, l, r.Header.Get("X-Next"))
			}
			path = m[1]
		}
	}
	return names, pages
}

// testPages: 250 apps read 100 at a time on both surfaces are 3 pages with
// every app once, while other apps are being created; a team member's
// pages hold their team's apps only; without limit the lists answer whole,
// as before; the api client follows the pages.
func testPages(t *testing.T, b *Berth) {
	red := b.newUser(t, "red")
	blue := b.newUser(t, "blue")
	for _, u := range []*User{red, blue} {
		b.setQuota(t, u.Email, 400)
	}
	team := b.unique("reds")
	b.do(t, "POST", "/teams", red, map[string]any{"name": team}).want(t, http.StatusOK)
	mate := b.newUser(t, "mate")
	b.do(t, "PUT", "/teams/"+team+"/"+mate.Email, red, nil).want(t, http.StatusOK)

	// 250 apps: red's team owns one in five, blue owns the others.
	var all, reds []string
	for i := range 250 {
		name := fmt.Sprintf("pg-%03d", i)
		if i%5 == 0 {
			b.do(t, "POST", "/apps", red, map[string]any{"name": name, "teamOwner": team}).want(t, http.StatusOK)
			reds = append(reds, name)
		} else {
			b.createApp(t, blue, name)
		}
		all = append(all, name)
	}

	// The admin pages through everything by 100 while blue creates more.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		errs    []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			name := fmt.Sprintf("pg-%03d-x", i*9)
			r, err := b.try("POST", "/api/v1/repos/", blue, map[string]any{"appname": name}, nil)
			mu.Lock()
			if err != nil || r.Code != http.StatusCreated {
				errs = append(errs, fmt.Sprintf("%s: %v %v", name, err, r))
			} else {
				created = append(created, name)
			}
			mu.Unlock()
		}
	}()
	for _, l := range []struct{ path, field string }{{"/apps?limit=100", "Name"}, {"/api/v1/repos/?limit=100", "appname"}} {
		got, pages := pageThrough(t, b, b.Admin, l.path, l.field)
		seen := map[string]int{}
		for _, n := range got {
			seen[n]++
			if seen[n] > 1 {
				t.Errorf("%s: %s on two pages", l.path, n)
			}
		}
		for _, n := range all {
			if seen[n] != 1 {
				t.Errorf("%s: %s, there throughout, is missing", l.path, n)
			}
		}
		if !sort.StringsAreSorted(got) || pages < 3 || pages > 4 {
			t.Errorf("%s: %d pages, sorted %v", l.path, pages, sort.StringsAreSorted(got))
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("creating apps while paging: %v", errs)
	}
	// Now still: exactly 3 pages of 100, 100 and 80 (250 + 30).
	got, pages := pageThrough(t, b, b.Admin, "/api/v1/repos/?limit=100", "appname")
	if pages != 3 || len(got) != 280 {
		t.Errorf("280 apps by 100: %d pages, %d apps", pages, len(got))
	}

	// The team member sees the team's 50 apps, by 20: 3 pages.
	for _, l := range []struct{ path, field string }{{"/apps?limit=20", "Name"}, {"/api/v1/repos/?limit=20", "appname"}} {
		got, pages := pageThrough(t, b, mate, l.path, l.field)
		if strings.Join(got, ",") != strings.Join(reds, ",") || pages != 3 {
			t.Errorf("the team member pages %s: %d pages, %d apps (%v...), want the team's %d in 3", l.path, pages, len(got), got[:min(3, len(got))], len(reds))
		}
	}

	// Without parameters: the whole list, no cursor.
	r := b.do(t, "GET", "/apps", mate, nil).want(t, http.StatusOK)
	if len(r.List()) != len(reds) || r.Header.Get("X-Next") != "" || r.Header.Get("Link") != "" {
		t.Errorf("GET /apps without limit: %d apps, X-Next %q", len(r.List()), r.Header.Get("X-Next"))
	}
	b.do(t, "GET", "/apps?limit=1001", mate, nil).want(t, http.StatusBadRequest)
	b.do(t, "GET", "/api/v1/repos/?next=not*a*cursor", mate, nil).want(t, http.StatusBadRequest)

	// The api client, following the pages.
	c, err := api.NewClient(&api.Config{Address: b.URL, Token: blue.Token, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	first, qm, err := c.Repos().List(&api.QueryOptions{Limit: 100})
	if err != nil || len(first) != 100 || qm.Next == "" {
		t.Fatalf("Repos().List(limit 100): %d, next %q, %v", len(first), qm.Next, err)
	}
	repos, qm, err := api.AllPages(&api.QueryOptions{Limit: 64}, c.Repos().List)
	if err != nil || len(repos) != 230 || qm.Next != "" {
		t.Fatalf("AllPages of blue's repos by 64: %d (want 230), %v", len(repos), err)
	}
	whole, _, err := c.Repos().List(nil)
	if err != nil || len(whole) != len(repos) {
		t.Fatalf("Repos().List(nil): %d, %v", len(whole), err)
	}
	for i := range whole {
		if whole[i].AppName != repos[i].AppName {
			t.Fatalf("the pages differ from the whole list at %d: %s vs %s", i, repos[i].AppName, whole[i].AppName)
		}
	}
}
