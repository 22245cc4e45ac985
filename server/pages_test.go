package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// seedAppsOf writes the apps names straight into the store, owned by team
// (which must exist), deployed or not.
func seedAppsOf(t *testing.T, s *Server, team string, deployed bool, names ...string) {
	t.Helper()
	ctx := context.Background()
	tm, _, err := state.Get[state.Team](ctx, s.eng.Store(), state.TeamKey(team))
	if err != nil {
		t.Fatalf("team %s: %v", team, err)
	}
	var ops []backends.TxnOp
	for i, name := range names {
		a := &state.App{Name: name, Owner: tm.Users[0], AppType: state.AppTypeApp, TeamOwner: team, Teams: []string{team},
			TeamIDs: map[string]string{team: tm.ID}, Created: time.Now().UTC(), Deployed: deployed, MetaVersion: "1-abc"}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, backends.TxnOp{Verb: backends.TxnCAS, Key: state.AppKey(name), Value: b})
		if len(ops) == backends.MaxTxnOps || i == len(names)-1 {
			if _, err := s.eng.Store().Txn(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

func appNames(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%04d", prefix, i))
	}
	return out
}

var linkNext = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// walk GETs path (which may carry ?limit=) and then each page's Link, and
// returns the names (field name of each item) of every page in order.
func walk(t *testing.T, s *Server, tok, path, field string, between func()) (names []string, pages int) {
	t.Helper()
	h := map[string]string{"Authorization": "bearer " + tok}
	for path != "" {
		w := serve(s, "GET", path, "", h)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		var items []map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &items); err != nil {
			t.Fatalf("GET %s: the body is not an array: %s", path, w.Body)
		}
		pages++
		for _, it := range items {
			n, _ := it[field].(string)
			names = append(names, n)
		}
		path = ""
		if l := w.Header().Get("Link"); l != "" {
			m := linkNext.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("GET %s: Link %q", path, l)
			}
			u, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			if u.Query().Get("next") != w.Header().Get("X-Next") || w.Header().Get("X-Next") == "" {
				t.Fatalf("Link %q does not carry X-Next %q", l, w.Header().Get("X-Next"))
			}
			path = m[1]
		} else if w.Header().Get("X-Next") != "" {
			t.Fatalf("X-Next %q without a Link", w.Header().Get("X-Next"))
		}
		if pages > 100 {
			t.Fatal("the pages do not end")
		}
		if between != nil && path != "" {
			between()
		}
	}
	return names, pages
}

// 250 apps read 100 at a time on both surfaces are three pages, every app
// once, in order; without limit the answer is the whole list in one page,
// with no cursor, as before.
func TestPagesOf250Apps(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tok := login(t, s, "dev@b.co")
	h := map[string]string{"Authorization": "bearer " + tok}
	if w := serve(s, "POST", "/teams", `{"name":"devs"}`, h); w.Code >= 300 {
		t.Fatalf("create team: %d %s", w.Code, w.Body)
	}
	want := appNames("app", 0, 250)
	seedAppsOf(t, s, "devs", true, want...)
	for _, tc := range []struct{ path, field string }{
		{"/apps", "Name"}, {"/api/v1/repos/", "appname"}, {"/api/v1/apps/", "appname"},
	} {
		sep := "?"
		if strings.Contains(tc.path, "?") {
			sep = "&"
		}
		got, pages := walk(t, s, tok, tc.path+sep+"limit=100", tc.field, nil)
		if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s by 100: %d pages, %d apps (%v...), want 3 pages of the 250 apps in order", tc.path, pages, len(got), got[:min(3, len(got))])
		}
		got, pages = walk(t, s, tok, tc.path, tc.field, nil)
		if pages != 1 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s without limit: %d pages, %d apps, want the 250 in one answer", tc.path, pages, len(got))
		}
	}
	// Wrong parameters are refused, not ignored.
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "next=%25%25", "limit=10&next=!!"} {
		if w := serve(s, "GET", "/apps?"+q, "", h); w.Code != http.StatusBadRequest {
			t.Errorf("GET /apps?%s: %d, want 400", q, w.Code)
		}
	}
}

// Apps created while a client pages (before, among and after the pages
// it has read) neither repeat nor hide any app that was there throughout.
func TestPagesStableAcrossCreates(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tok := login(t, s, "dev@b.co")
	h := map[string]string{"Authorization": "bearer " + tok}
	if w := serve(s, "POST", "/teams", `{"name":"devs"}`, h); w.Code >= 300 {
		t.Fatalf("create team: %d %s", w.Code, w.Body)
	}
	// Even numbers now; odd ones are created while paging.
	var want []string
	for i := 0; i < 500; i += 2 {
		want = append(want, fmt.Sprintf("app%04d", i))
	}
	seedAppsOf(t, s, "devs", false, want...)
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < 500; i += 2 {
			select {
			case <-stop:
				return
			default:
			}
			seedAppsOf(t, s, "devs", false, fmt.Sprintf("app%04d", 500-i))
		}
	}()
	pausing := func() { time.Sleep(time.Millisecond) }
	got, pages := walk(t, s, tok, "/api/v1/repos/?limit=100", "appname", pausing)
	close(stop)
	wg.Wait()
	if pages < 3 {
		t.Fatalf("%d pages", pages)
	}
	seen := map[string]int{}
	for _, n := range got {
		seen[n]++
	}
	for n, c := range seen {
		if c > 1 {
			t.Fatalf("%s listed %d times", n, c)
		}
	}
	for _, n := range want {
		if seen[n] != 1 {
			t.Fatalf("%s, there throughout, was not listed", n)
		}
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("the pages are out of order")
	}
}

// A user paging sees only the apps of their teams, whatever the pages
// have to skip; another user's pages hold only theirs.
func TestPagesShowOnlyTheCallersApps(t *testing.T) {
	s, _ := newTestServer(t, nil)
	red := login(t, s, "red@b.co")
	blue := login(t, s, "blue@b.co")
	for tok, team := range map[string]string{red: "red", blue: "blue"} {
		if w := serve(s, "POST", "/teams", `{"name":"`+team+`"}`, map[string]string{"Authorization": "bearer " + tok}); w.Code >= 300 {
			t.Fatalf("create team: %d %s", w.Code, w.Body)
		}
	}
	// 300 apps: one red in ten, the others blue.
	var reds, blues []string
	for i := range 300 {
		n := fmt.Sprintf("app%04d", i)
		if i%10 == 3 {
			reds = append(reds, n)
		} else {
			blues = append(blues, n)
		}
	}
	seedAppsOf(t, s, "red", true, reds...)
	seedAppsOf(t, s, "blue", true, blues...)
	for _, path := range []string{"/apps?limit=7", "/api/v1/repos/?limit=7", "/api/v1/apps/?limit=7&apptype=app"} {
		field := "appname"
		if strings.HasPrefix(path, "/apps") {
			field = "Name"
		}
		got, pages := walk(t, s, red, path, field, nil)
		if strings.Join(got, ",") != strings.Join(reds, ",") || pages != 5 {
			t.Fatalf("red pages %s: %d pages %v, want its %d apps in 5 pages", path, pages, got, len(reds))
		}
		got, _ = walk(t, s, blue, path, field, nil)
		if strings.Join(got, ",") != strings.Join(blues, ",") {
			t.Fatalf("blue pages %s: %d apps, want its %d", path, len(got), len(blues))
		}
	}
	// A cursor taken from red's pages gives blue nothing of red's.
	w := serve(s, "GET", "/apps?limit=5", "", map[string]string{"Authorization": "bearer " + red})
	cur := w.Header().Get("X-Next")
	got, _ := walk(t, s, blue, "/apps?limit=50&next="+cur, "Name", nil)
	for _, n := range got {
		for _, r := range reds {
			if n == r {
				t.Fatalf("blue's pages from red's cursor show %s", n)
			}
		}
	}
	// The teams list pages too.
	got, pages := walk(t, s, red, "/teams?limit=1", "name", nil)
	if strings.Join(got, ",") != "red" || pages != 1 {
		t.Fatalf("red's teams by 1: %v in %d pages", got, pages)
	}
}

// The short lists a handler has whole page the same way.
func TestShortListsPage(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tok := login(t, s, "dev@b.co")
	whole, pages := walk(t, s, tok, "/platforms", "Name", nil)
	if pages != 1 || len(whole) < 2 {
		t.Skipf("needs two platforms or more, has %v", whole)
	}
	got, pages := walk(t, s, tok, "/platforms?limit=1", "Name", nil)
	sorted := append([]string(nil), whole...)
	sort.Strings(sorted)
	if strings.Join(got, ",") != strings.Join(sorted, ",") || pages != len(whole) {
		t.Fatalf("/platforms by 1: %v in %d pages, want %v in %d", got, pages, sorted, len(whole))
	}
}

// A list answered newest first (an app's releases) keeps that order page
// by page.
func TestNewestFirstListsPage(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tok := login(t, s, "dev@b.co")
	h := map[string]string{"Authorization": "bearer " + tok}
	if w := serve(s, "POST", "/api/v1/repos/", `{"appname":"hello"}`, h); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	for i := range 5 {
		body := fmt.Sprintf(`{"meta_version":"%d-%040d","web":{"cmd":"./web","memory":"64m"}}`, 1700000000+i, i)
		if w := serve(s, "POST", "/api/v1/repos/hello/push/", body, h); w.Code >= 300 {
			t.Fatalf("push %d: %d %s", i, w.Code, w.Body)
		}
	}
	whole, pages := walk(t, s, tok, "/api/v1/repos/hello/releases/", "meta_version", nil)
	if pages != 1 || len(whole) != 5 || !strings.HasPrefix(whole[0], "1700000004-") {
		t.Fatalf("the releases: %v in %d pages, want the 5 newest first", whole, pages)
	}
	got, pages := walk(t, s, tok, "/api/v1/repos/hello/releases/?limit=2", "meta_version", nil)
	if strings.Join(got, ",") != strings.Join(whole, ",") || pages != 3 {
		t.Fatalf("the releases by 2: %v in %d pages, want %v in 3", got, pages, whole)
	}
}
