package e2e

// Every write is atomic and a refused operation changes nothing (issue 8):
// concurrent private env writes are all kept, and an env change refused
// with 409 (the app's lease is held) leaves the private value as it was.

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// atomicVariants are the backends the atomicity tests run on: the embedded
// sealed Secrets (on bolt and on Consul) and Vault KV v2 (with Consul as
// the Store).
var atomicVariants = []backendVariant{backendVariants[0], backendVariants[1], backendVariants[3]}

// TestPrivateEnvConcurrentWrites: 50 users' worth of parallel private
// env-sets of distinct keys, on an app that is not deployed and then on a
// deployed one. Every accepted write (200/202) is stored — GET env lists
// it and the deployed process sees its value — and every refused one
// (409) is absent.
func TestPrivateEnvConcurrentWrites(t *testing.T) {
	bin := buildWebapp(t)
	for _, bv := range atomicVariants {
		t.Run(bv.name, func(t *testing.T) {
			ps := trackProcs(t)
			b := startBerth(t, bv.opts(t))
			u := b.newUser(t, "racer")
			app := b.unique("racy")
			b.createApp(t, u, app)

			const writers = 50
			setAll := func(prefix string) (accepted, refused map[string]string) {
				accepted, refused = map[string]string{}, map[string]string{}
				var mu sync.Mutex
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < writers; i++ {
					name, val := fmt.Sprintf("%s%02d", prefix, i), fmt.Sprintf("v-%s-%d-%s", prefix, i, randHex(4))
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						r := b.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{
							"envs": []map[string]any{{"name": name, "value": val, "public": false}},
						})
						mu.Lock()
						defer mu.Unlock()
						switch r.Code {
						case http.StatusOK, http.StatusAccepted:
							accepted[name] = val
						case http.StatusConflict:
							refused[name] = val
						default:
							t.Errorf("env-set %s: %s", name, r)
						}
					}()
				}
				close(start)
				wg.Wait()
				return accepted, refused
			}

			// Not deployed: every write is accepted and kept.
			acc1, ref1 := setAll("PRIVA_")
			t.Logf("app not deployed: %d accepted, %d refused", len(acc1), len(ref1))
			if len(acc1) == 0 {
				t.Fatal("no env-set was accepted")
			}
			r := b.do(t, "POST", "/api/v1/repos/"+app+"/push/", u, webRelease(metaVersion(), bin, 1))
			r.want(t, http.StatusCreated)
			r = b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
			v := b.waitRunning(t, u, app, generationOf(t, r))
			pids := ps.note(t, app, v.Procs[0].Instances)
			if len(pids) != 1 {
				t.Fatalf("instances: %+v", v.Procs[0].Instances)
			}
			checkPrivate(t, b, u, app, procEnviron(t, pids[0]), acc1, ref1)

			// Deployed: one operation holds the lease at a time; the
			// refused writes must leave no trace.
			acc2, ref2 := setAll("PRIVB_")
			t.Logf("app deployed: %d accepted, %d refused", len(acc2), len(ref2))
			if len(acc2) == 0 {
				t.Fatal("no env-set was accepted on the deployed app")
			}
			v = b.waitRunning(t, u, app, b.deployed(t, u, app).Generation)
			// Restart so the process is started from the stored state as it is now.
			r = b.operate(t, "GET", "/apps/"+app+"/restart", u, nil).want(t, http.StatusOK)
			v = b.waitRunning(t, u, app, generationOf(t, r))
			pids = ps.note(t, app, v.Procs[0].Instances)
			if len(pids) != 1 {
				t.Fatalf("instances: %+v", v.Procs[0].Instances)
			}
			for k, val := range acc1 {
				acc2[k] = val
			}
			checkPrivate(t, b, u, app, procEnviron(t, pids[0]), acc2, ref2)
		})
	}
}

// checkPrivate checks GET env lists exactly the accepted private names
// (masked) and none of the refused ones, and the process sees the accepted
// values and none of the refused ones.
func checkPrivate(t *testing.T, b *Berth, u *User, app string, env map[string]string, accepted, refused map[string]string) {
	t.Helper()
	listed := map[string]bool{}
	for _, x := range b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK).List() {
		m, _ := x.(map[string]any)
		name, _ := m["name"].(string)
		listed[name] = true
	}
	lostList, lostProc := 0, 0
	for name, val := range accepted {
		if !listed[name] {
			lostList++
		}
		if env[name] != val {
			lostProc++
		}
	}
	if lostList > 0 || lostProc > 0 {
		t.Errorf("of %d accepted private env-sets, %d are missing from GET env and %d did not reach the process with their value (lost writes)",
			len(accepted), lostList, lostProc)
	}
	for name := range refused {
		if listed[name] || env[name] != "" {
			t.Errorf("env-set of %s was refused with 409 but GET env lists it (%v) or the process has it (%v)", name, listed[name], env[name] != "")
		}
	}
}

// TestEnvRefusedChangesNothing: while a deploy holds the app's lease, an
// env-set and an env-unset of a private variable are refused with 409 and
// the variable keeps its value: the next restart still sees it.
func TestEnvRefusedChangesNothing(t *testing.T) {
	bin := buildWebapp(t)
	for _, bv := range atomicVariants {
		t.Run(bv.name, func(t *testing.T) {
			ps := trackProcs(t)
			b := startBerth(t, bv.opts(t))
			u := b.newUser(t, "refused")
			app := b.unique("refused")
			b.createApp(t, u, app)
			b.push(t, u, app, webRelease(metaVersion(), bin, 1))
			r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
			b.waitRunning(t, u, app, generationOf(t, r))
			good := "good-" + randHex(8)
			b.remember(good, "a private env value")
			r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{
				"envs": []map[string]any{{"name": "SECRET", "value": good, "public": false}}}).want(t, http.StatusAccepted)
			b.waitRunning(t, u, app, generationOf(t, r))

			// Each refused operation in turn: a slow deploy (its instance is
			// ready after 8s) holds the lease, the env change is refused with
			// 409, and once the deploy is done a restart shows the value the
			// refused change must not have touched.
			bad := "bad-" + randHex(8)
			b.remember(bad, "a refused private env value")
			refused := []struct {
				what, method, path string
				body               any
			}{
				{"env-set", "POST", "/apps/" + app + "/env", map[string]any{"envs": []map[string]any{{"name": "SECRET", "value": bad, "public": false}}}},
				{"env-unset", "DELETE", "/apps/" + app + "/env?env=SECRET", nil},
			}
			for _, op := range refused {
				mv := metaVersion()
				b.push(t, u, app, webRelease(mv, bin, 1, "WEBAPP_START_DELAY=8s"))
				r = b.operate(t, "PUT", "/api/v1/apps/"+app, u, map[string]any{"meta_version": mv}).want(t, http.StatusAccepted)
				slowGen := generationOf(t, r)
				if got := b.do(t, op.method, op.path, u, op.body); got.Code != http.StatusConflict {
					t.Fatalf("%s while a deploy runs: %s, want 409", op.what, got)
				}
				b.waitRunningWithin(t, u, app, slowGen, 60*time.Second, 100*time.Millisecond)
				r = b.operate(t, "GET", "/apps/"+app+"/restart", u, nil).want(t, http.StatusOK)
				v := b.waitRunningWithin(t, u, app, generationOf(t, r), 60*time.Second, 100*time.Millisecond)
				pids := ps.note(t, app, v.Procs[0].Instances)
				if len(pids) != 1 {
					t.Fatalf("instances: %+v", v.Procs[0].Instances)
				}
				switch got := procEnviron(t, pids[0])["SECRET"]; got {
				case good:
				case bad:
					t.Errorf("the %s refused with 409 changed the private value: the restarted process sees the refused value", op.what)
				case "":
					t.Errorf("the %s refused with 409 removed the private value: the restarted process has no SECRET", op.what)
				default:
					t.Errorf("after the refused %s the restarted process sees an unexpected SECRET value", op.what)
				}
			}
		})
	}
}
