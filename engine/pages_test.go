package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/engine/state"
)

// seedTeamApps writes n apps named <prefix>0000.., the i-th one owned by
// team teams[i%len(teams)], straight into the store (as many per
// transaction as it takes), and the teams with their members.
func seedTeamApps(t testing.TB, st backends.Store, prefix string, n int, teams map[string][]string, order []string) {
	t.Helper()
	ctx := context.Background()
	created := time.Now().UTC().Add(-time.Hour)
	for _, name := range order {
		if _, err := state.Create(ctx, st, state.TeamKey(name), &state.Team{ID: "id-" + name, Name: name, Users: teams[name], Created: created}); err != nil && !errors.Is(err, state.ErrExists) {
			t.Fatal(err)
		}
	}
	var ops []backends.TxnOp
	for i := range n {
		name := fmt.Sprintf("%s%05d", prefix, i)
		team := order[i%len(order)]
		a := &state.App{Name: name, Owner: "owner@b.co", AppType: state.AppTypeApp, TeamOwner: team, Teams: []string{team},
			TeamIDs: map[string]string{team: "id-" + team}, Created: time.Now().UTC()}
		b, err := jsonBytes(a)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: b})
		if len(ops) == backends.MaxTxnOps || i == n-1 {
			if _, err := st.Txn(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// walkRepos reads every page of ListReposPage and returns the names in order.
func walkRepos(t *testing.T, e *Engine, id *Identity, limit int) (names []string, pages int) {
	t.Helper()
	p := Page{Limit: limit}
	for {
		rs, next, err := e.ListReposPage(context.Background(), id, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > limit {
			t.Fatalf("a page of %d has %d apps", limit, len(rs))
		}
		pages++
		for _, r := range rs {
			names = append(names, r.App.Name)
		}
		if next == "" {
			return names, pages
		}
		if pages > 1000 {
			t.Fatal("the pages do not end")
		}
		p.After = next
	}
}

// A page of a list reads as many records as the page holds (and one to
// know that more follow), however many apps there are: the same count at
// 150 and at 3,000 apps, and no List of the whole prefix.
func TestListPageReadsOnlyThePage(t *testing.T) {
	for _, n := range []int{150, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e, _ := newTestEngine(t, nil)
			seedTeamApps(t, e.store, "app", n, map[string][]string{"devs": {"dev@b.co"}}, []string{"devs"})
			hooked := &storetest.Hooked{Store: e.store}
			e.ReplaceStore(hooked)
			defer e.ReplaceStore(hooked.Store)
			ctx := context.Background()
			admin := &Identity{Email: "root@b.co", Admin: true}
			dev := &Identity{Email: "dev@b.co"}
			for _, tc := range []struct {
				who  string
				id   *Identity
				gets int64 // the team, read once
			}{{"admin", admin, 0}, {"team member", dev, 1}} {
				hooked.ResetReads()
				rs, next, err := e.ListReposPage(ctx, tc.id, Page{Limit: 100, After: "app00010"})
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) != 100 || rs[0].App.Name != "app00011" || rs[99].App.Name != "app00110" || next != "app00110" {
					t.Fatalf("%s: page after app00010: %d apps, %s..., next %q", tc.who, len(rs), rs[0].App.Name, next)
				}
				r := hooked.Reads()
				if r.Lists != 0 || r.Pairs > 101 || r.Gets != tc.gets {
					t.Fatalf("%s: a page of 100 among %d apps read %+v, want no List, at most 101 pairs, %d Gets", tc.who, n, r, tc.gets)
				}
			}
			hooked.ResetReads()
			if _, _, err := e.ListAppsPage(ctx, admin, Page{Limit: 100}); err != nil {
				t.Fatal(err)
			}
			if r := hooked.Reads(); r.Lists != 0 || r.Pairs > 101 {
				t.Fatalf("ListAppsPage of 100 among %d apps read %+v", n, r)
			}
		})
	}
}

// A user paging sees only the apps of their teams, each once, across pages
// that have to scan past other teams' apps to fill; the pages together are
// the unpaged list.
func TestListPageFiltersByTeam(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	seedTeamApps(t, e.store, "app", 1000, map[string][]string{
		"red": {"r@b.co"}, "blue": {"b@b.co"}, "green": {"b@b.co"}, "grey": {"g@b.co"},
	}, []string{"red", "blue", "green", "grey", "grey", "grey", "grey", "grey", "grey", "grey"})
	ctx := context.Background()
	for _, tc := range []struct {
		email string
		want  func(i int) bool
	}{
		{"r@b.co", func(i int) bool { return i%10 == 0 }},
		{"b@b.co", func(i int) bool { return i%10 == 1 || i%10 == 2 }},
		{"nobody@b.co", func(int) bool { return false }},
	} {
		id := &Identity{Email: tc.email}
		var want []string
		for i := range 1000 {
			if tc.want(i) {
				want = append(want, fmt.Sprintf("app%05d", i))
			}
		}
		for _, limit := range []int{1, 7, 100, 1000} {
			got, pages := walkRepos(t, e, id, limit)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s paging by %d sees %d apps %v..., want %d", tc.email, limit, len(got), got[:min(5, len(got))], len(want))
			}
			if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
				t.Fatalf("%s paging %d apps by %d: %d pages, want %d", tc.email, len(want), limit, pages, wantPages)
			}
		}
		all, err := e.ListRepos(ctx, id)
		if err != nil || len(all) != len(want) {
			t.Fatalf("%s: the whole list has %d apps (%v), want %d", tc.email, len(all), err, len(want))
		}
	}
	// An app token sees its app alone, however it pages.
	tok := &Identity{AppToken: true, App: "app00500", Email: "r@b.co"}
	if got, _ := walkRepos(t, e, tok, 10); fmt.Sprint(got) != "[app00500]" {
		t.Fatalf("an app token pages %v", got)
	}
	if _, _, err := e.ListReposPage(ctx, &Identity{Email: "r@b.co"}, Page{Limit: MaxPageLimit + 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a limit over %d: %v, want invalid", MaxPageLimit, err)
	}
}

// Teams, services and deployed apps page the same way.
func TestOtherListsPage(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	teams := map[string][]string{}
	var order []string
	for i := range 25 {
		name := fmt.Sprintf("team%02d", i)
		teams[name] = []string{"root@b.co"}
		if i%2 == 0 {
			teams[name] = append(teams[name], "m@b.co")
		}
		order = append(order, name)
	}
	seedTeamApps(t, e.store, "app", 10, teams, order)
	id := &Identity{Email: "m@b.co"}
	var got []string
	p := Page{Limit: 4}
	for range 10 {
		ts, next, err := e.TeamsPage(ctx, id, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range ts {
			got = append(got, tm.Name)
		}
		if next == "" {
			break
		}
		p.After = next
	}
	if len(got) != 13 || got[0] != "team00" || got[12] != "team24" {
		t.Fatalf("m@b.co pages teams %v, want the 13 even ones", got)
	}
}
