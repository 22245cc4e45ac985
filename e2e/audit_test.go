package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
)

// auditPage is one page of GET /api/v1/events/.
func auditPage(t *testing.T, b *Berth, path string) (ids []string, evs []map[string]any, next string) {
	t.Helper()
	r := b.do(t, "GET", path, b.Admin, nil).want(t, http.StatusOK)
	list, _ := r.Obj()["events"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		ids = append(ids, m["id"].(string))
		evs = append(evs, m)
	}
	return ids, evs, r.Str("next")
}

// TestAuditLog: an anonymous request refused with 401 on an audited route
// leaves no record (an authenticated failure does), and paging the log by
// its cursor gives every event exactly once while requests keep adding
// events.
func TestAuditLog(t *testing.T) {
	b := startBerth(t, Options{DefaultQuota: 100000})
	u := b.newUser(t, "audited")
	b.createApp(t, u, "audited-app")

	// Anonymous, and with a token that is no one's: 401, not recorded.
	b.do(t, "POST", "/api/v1/repos/", nil, map[string]any{"appname": "anon-app"}).want(t, http.StatusUnauthorized)
	b.do(t, "POST", "/api/v1/repos/", &User{Token: "not-a-token-" + randHex(8)}, map[string]any{"appname": "anon-app"}).want(t, http.StatusUnauthorized)
	b.do(t, "DELETE", "/apps/audited-app", nil, nil).want(t, http.StatusUnauthorized)
	b.do(t, "POST", "/teams", nil, map[string]any{"name": "anonteam"}).want(t, http.StatusUnauthorized)
	// Authenticated and refused: recorded.
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": "audited-app"}).want(t, http.StatusConflict)

	_, evs, next := auditPage(t, b, "/api/v1/events/?limit=1000")
	if next != "" {
		t.Fatalf("one page of 1000 has a next cursor: %q", next)
	}
	conflicts := 0
	for _, e := range evs {
		out, _ := e["outcome"].(string)
		if strings.HasPrefix(out, "failure (401") || e["target"] == "anon-app" || e["target"] == "anonteam" ||
			(e["action"] == "app.remove" && e["target"] == "audited-app") {
			t.Errorf("an unauthenticated 401 was recorded: %v", e)
		}
		if e["action"] == "repo.create" && e["actor"] == u.Email && e["target"] == "audited-app" && strings.HasPrefix(out, "failure (409") {
			conflicts++
		}
	}
	if conflicts != 1 {
		t.Errorf("the authenticated 409 was recorded %d times, want once: %v", conflicts, evs)
	}

	// Enough events for many pages.
	for i := 0; i < 30; i++ {
		b.createApp(t, u, fmt.Sprintf("paged-%d", i))
	}
	before, _, _ := auditPage(t, b, "/api/v1/events/?limit=1000")

	// Page by 4 while another user keeps creating apps: those events are
	// newer than the first page, so the pages hold exactly the events that
	// existed when paging began.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := b.try("POST", "/api/v1/repos/", u, map[string]any{"appname": fmt.Sprintf("during-%d", i)}, nil)
			if err == nil && r.Code != http.StatusCreated {
				err = fmt.Errorf("creating during-%d: %s", i, r)
			}
			if err != nil {
				appendErr = err
				return
			}
		}
	}()
	var paged []string
	path := "/api/v1/events/?limit=4"
	pages := 0
	for ; pages < 200; pages++ {
		ids, _, next := auditPage(t, b, path)
		if len(ids) > 4 || (next != "" && len(ids) != 4) {
			t.Fatalf("page %d: %d events, next %q", pages, len(ids), next)
		}
		if pages == 0 {
			// The first page may hold events appended since: start from
			// the newest event listed before.
			path = "/api/v1/events/?limit=4&before=" + before[0]
			paged = append(paged, before[0])
			continue
		}
		paged = append(paged, ids...)
		if next == "" {
			break
		}
		path = "/api/v1/events/?limit=4&before=" + next
	}
	close(stop)
	wg.Wait()
	if appendErr != nil {
		t.Fatal(appendErr)
	}
	if pages+1 < len(before)/4 {
		t.Errorf("only %d pages of 4 for %d events", pages+1, len(before))
	}
	seen := map[string]int{}
	for _, id := range paged {
		seen[id]++
		if seen[id] == 2 {
			t.Errorf("event %s listed twice", id)
		}
	}
	if strings.Join(paged, ",") != strings.Join(before, ",") {
		t.Errorf("paging gave %d events, want the %d that existed, newest first:\n%v\n%v", len(paged), len(before), paged, before)
	}
	if !sort.SliceIsSorted(paged, func(i, j int) bool { return paged[i] > paged[j] }) {
		t.Errorf("pages are not newest first")
	}
	// The appends were recorded too, above what was paged.
	after, _, _ := auditPage(t, b, "/api/v1/events/?limit=1000")
	if len(after) <= len(before) || after[len(after)-len(before)] != before[0] {
		t.Errorf("the log after the appends (%d events) does not continue the log before (%d)", len(after), len(before))
	}

	// A cursor that is not an event id is refused.
	b.do(t, "GET", "/api/v1/events/?before=nonsense", b.Admin, nil).want(t, http.StatusBadRequest)

	// The queue never filled.
	m := b.do(t, "GET", "/metrics", nil, nil).want(t, http.StatusOK)
	if !strings.Contains(string(m.Raw), "berth_audit_dropped_total 0") {
		t.Errorf("/metrics has no berth_audit_dropped_total of 0")
	}
}
