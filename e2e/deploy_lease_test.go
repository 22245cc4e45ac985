package e2e

import (
	"net/http"
	"testing"
)

// TestDeployLeaseFreeAtFinalState: once an operation is reported final
// (the events stream ends at "running"), the app's lease is free, so the
// next operation is accepted, not refused with 409. A client that waits for
// convergence as documented must never be told the app is busy with the
// operation it just saw finish.
func TestDeployLeaseFreeAtFinalState(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "leaser")
	app := "leaseweb"
	b.createApp(t, u, app)
	b.push(t, u, app, webRelease(metaVersion(), bin, 1))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	ps.note(t, app, b.waitRunning(t, u, app, generationOf(t, r)).Procs[0].Instances)

	const rounds = 6
	busy, renamed := 0, 0
	for i := 0; i < rounds; i++ {
		n := 1 + (i+1)%2
		r := b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": n})
		r.want(t, http.StatusAccepted)
		evs := b.events(t, u, app)
		if len(evs) == 0 || evs[len(evs)-1].Event != "running" {
			t.Fatalf("round %d: the events stream did not end at running: %+v", i, evs)
		}
		// The record of the operation keeps its name and author.
		wantOp := r.Str("operation")
		if fin := evs[len(evs)-1].Data; fin["operation"] != wantOp || fin["by"] != u.Email {
			renamed++
			t.Logf("round %d: the final event of %q by %s says operation %v by %v", i, wantOp, u.Email, fin["operation"], fin["by"])
		}
		// At once, as a client that waited for the final state would.
		next := b.do(t, "GET", "/apps/"+app+"/restart", u, nil)
		switch next.Code {
		case http.StatusOK:
			b.waitRunning(t, u, app, generationOf(t, next))
		case http.StatusConflict:
			busy++
			t.Logf("round %d: after the final event the app was still busy: %s", i, next.Str("error"))
			b.operate(t, "GET", "/apps/"+app+"/restart", u, nil).want(t, http.StatusOK)
			b.waitRunning(t, u, app, b.deployed(t, u, app).Generation)
		default:
			next.want(t, http.StatusOK)
		}
		ps.note(t, app, b.proc(t, u, app, "web").Instances)
	}
	if renamed > 0 {
		t.Errorf("in %d of %d rounds the deploy record lost the operation's name and author (the reconciler wrote its own \"reconcile\" record: "+
			"changeApp in server/deploy.go writes the app record, which wakes the reconciler, before it writes the deploy record)", renamed, rounds)
	}
	if busy > 0 {
		t.Errorf("in %d of %d rounds the operation right after the final event got 409 \"busy\" naming the finished operation: "+
			"the reconciler publishes the final state before it releases the app's lease (server/reconciler.go finish)", busy, rounds)
	}
}
