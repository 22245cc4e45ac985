package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Identity by immutable id: a team, a user or an app deleted and created
// again under the same name is someone else, and inherits nothing of the
// old one (services, instances, their credentials, bindings, env, tokens).

// needRedis skips a test when this machine's Redis (the e2e-redis broker
// target) does not answer.
func needRedis(t *testing.T) {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", DialTimeout: 3 * time.Second, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("Redis is unreachable at 127.0.0.1:6379 (%v): run /work/shared/services-up.sh", err)
	}
}

// redisService creates, as u, a redis service on the e2e-redis target
// owned by team.
func redisService(t *testing.T, b *Berth, u *User, team string) string {
	t.Helper()
	svc := b.unique("idredis")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\ntarget: e2e-redis\nteam: %s\n", svc, team))).want(t, http.StatusOK)
	return svc
}

// newInstance provisions an instance of svc as u and removes it at the end
// (as the admin, whoever has it by then).
func newInstance(t *testing.T, b *Berth, u *User, svc string) string {
	t.Helper()
	inst := "e2e-" + randHex(4) + "-id"
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
	t.Cleanup(func() {
		r := b.do(t, "GET", "/services/instances/"+inst, b.Admin, nil)
		if r.Code != http.StatusOK {
			return
		}
		for _, app := range svcStrList(r.Obj()["apps"]) {
			b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, b.Admin, nil)
		}
		b.do(t, "DELETE", "/services/instances/"+inst, b.Admin, nil)
	})
	return inst
}

// TestTeamRecreationInheritsNothing: a team that holds a service and an
// instance cannot be deleted (409, naming them); once it has handed the
// service over (grant another team, revoke this one) and removed the
// instance it can, and whoever creates a team of that name next may not
// read, repoint or remove the service, nor bind its instances.
func TestTeamRecreationInheritsNothing(t *testing.T) {
	needRedis(t)
	b := startBerth(t, Options{})
	a, team := serviceOwner(t, b, "teamholder")
	app := b.unique("teamapp")
	b.createApp(t, a, app)
	svc := redisService(t, b, a, team)
	inst := newInstance(t, b, a, svc)
	creds := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, a, nil).want(t, http.StatusOK)
	if creds.Str("REDIS_URL") == "" {
		t.Fatalf("bind answered no REDIS_URL: %s", creds)
	}
	b.remember(creds.Str("REDIS_URL"), "the instance's REDIS_URL")

	// Refused while it holds them; the answer names them.
	r := b.do(t, "DELETE", "/teams/"+team, a, nil).want(t, http.StatusConflict)
	if msg := r.Str("error"); !strings.Contains(msg, svc) || !strings.Contains(msg, inst) {
		t.Errorf("DELETE /teams/%s does not name service %s and instance %s: %s", team, svc, inst, r)
	}
	b.do(t, "DELETE", "/teams/"+team, b.Admin, nil).want(t, http.StatusConflict) // site admins too
	b.do(t, "GET", "/teams/"+team, a, nil).want(t, http.StatusOK)

	// A keeps a service granted to the team as well (read access only).
	readSvc := redisService(t, b, a, team)
	heir := b.unique("heir-team")
	b.do(t, "POST", "/teams", a, map[string]any{"name": heir}).want(t, http.StatusOK)

	// Hand-over: grant the heir team, revoke the old one; it is the owner now.
	for _, s := range []string{svc, readSvc} {
		b.do(t, "PUT", "/services/"+s+"/"+heir, a, nil).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/"+s+"/"+team, a, nil).want(t, http.StatusOK)
	}
	// Still the instance: refused, naming it and not the services.
	r = b.do(t, "DELETE", "/teams/"+team, a, nil).want(t, http.StatusConflict)
	if msg := r.Str("error"); !strings.Contains(msg, inst) || strings.Contains(msg, svc) {
		t.Errorf("DELETE /teams/%s after the hand-over: %s", team, r)
	}
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, a, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+inst, a, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/teams/"+team, a, nil).want(t, http.StatusOK)

	// The heir team keeps the service: A still manages it, and provisions.
	heirInst := newInstance(t, b, a, svc)

	// B creates a team of the old name: it is not the team that was granted.
	bob := b.newUser(t, "teamthief")
	b.do(t, "POST", "/teams", bob, map[string]any{"name": team}).want(t, http.StatusOK)
	bobApp := b.unique("thiefapp")
	b.createApp(t, bob, bobApp)
	for _, s := range []string{svc, readSvc} {
		b.do(t, "GET", "/services/"+s, bob, nil).want(t, http.StatusForbidden)
		b.do(t, "PUT", "/services/"+s+"/doc", bob, rawBody("mine now")).want(t, http.StatusForbidden)
		b.do(t, "PUT", "/services", bob, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\ntarget: e2e-redis\n", s))).want(t, http.StatusForbidden)
		b.do(t, "DELETE", "/services/"+s, bob, nil).want(t, http.StatusForbidden)
		b.do(t, "POST", "/services/instances", bob, map[string]any{"name": "e2e-" + randHex(4) + "-thief", "service_name": s}).want(t, http.StatusForbidden)
	}
	b.do(t, "GET", "/services/instances/"+heirInst, bob, nil).want(t, http.StatusForbidden)
	r = b.do(t, "PUT", "/services/instances/"+heirInst+"/"+bobApp, bob, nil).want(t, http.StatusForbidden)
	if strings.Contains(string(r.Raw), "REDIS_URL") {
		t.Errorf("the refused bind answers credentials: %s", r)
	}
	if got := serviceNames(t, b, "/services", bob); len(got) != 0 {
		t.Errorf("GET /services lists to the new team's member: %v", got)
	}
	// The services are as A left them.
	b.do(t, "GET", "/services/"+svc, a, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services/"+readSvc, a, nil).want(t, http.StatusOK)
}

// TestUserReregistrationOwnsNothing: deleting a user hands the service
// instances they created to their teams; whoever registers the email again
// owns none of them (cannot read, bind or remove them).
func TestUserReregistrationOwnsNothing(t *testing.T) {
	needRedis(t)
	b := startBerth(t, Options{})
	a, team := serviceOwner(t, b, "leaver")
	mate := b.newUser(t, "mate")
	b.do(t, "PUT", "/teams/"+team+"/"+mate.Email, a, nil).want(t, http.StatusOK)
	svc := redisService(t, b, a, team)
	inst := newInstance(t, b, a, svc)
	b.do(t, "GET", "/services/instances/"+inst, a, nil).want(t, http.StatusOK)

	b.do(t, "DELETE", "/users", a, nil).want(t, http.StatusOK)

	// Someone registers the address again.
	again := b.register(t, a.Email)
	again.Token = b.login(t, again.Email, again.Password)
	b.do(t, "GET", "/services/instances/"+inst, again, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/services/instances/"+inst+"/status", again, nil).want(t, http.StatusForbidden)
	app := b.unique("reregapp")
	b.createApp(t, again, app)
	r := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, again, nil).want(t, http.StatusForbidden)
	if strings.Contains(string(r.Raw), "REDIS_URL") {
		t.Errorf("the refused bind answers credentials: %s", r)
	}
	b.do(t, "DELETE", "/services/instances/"+inst, again, nil).want(t, http.StatusForbidden)
	if got := serviceNames(t, b, "/services/instances", again); len(got) != 0 {
		t.Errorf("GET /services/instances lists to the re-registered user: %v", got)
	}

	// The team has it: its remaining member uses and removes it.
	r = b.do(t, "GET", "/services/instances/"+inst, mate, nil).want(t, http.StatusOK)
	if teams := svcStrList(r.Obj()["teams"]); len(teams) != 1 || teams[0] != team {
		t.Errorf("the instance's teams after its owner left: %s", r)
	}
	mateApp := b.unique("mateapp")
	b.createApp(t, mate, mateApp)
	r = b.do(t, "PUT", "/services/instances/"+inst+"/"+mateApp, mate, nil).want(t, http.StatusOK)
	b.remember(r.Str("REDIS_URL"), "the instance's REDIS_URL")
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+mateApp, mate, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+inst, mate, nil).want(t, http.StatusOK)
}

// TestAppRecreationInheritsNothing: an app removed and registered again by
// someone else starts empty: no bindings, no instance lists it, no env
// (public or private), no releases, and the old app tokens are refused.
func TestAppRecreationInheritsNothing(t *testing.T) {
	needRedis(t)
	b := startBerth(t, Options{})
	a, team := serviceOwner(t, b, "appleaver")
	app := b.unique("reused")
	b.createApp(t, a, app)
	svc := redisService(t, b, a, team)
	inst := newInstance(t, b, a, svc)
	r := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, a, nil).want(t, http.StatusOK)
	b.remember(r.Str("REDIS_URL"), "the instance's REDIS_URL")
	secret := "e2e-appsecret-" + randHex(8)
	b.remember(secret, "a private env value")
	b.do(t, "POST", "/apps/"+app+"/env", a, map[string]any{"envs": []map[string]any{
		{"name": "PUBLIC_ONE", "value": "old", "public": true},
		{"name": "PRIVATE_ONE", "value": secret, "public": false},
	}}).want(t, http.StatusOK) // not deployed: nothing to redeploy
	b.push(t, a, app, pushBody(metaVersion(), 1))
	tok := b.appToken(t, a, app)

	b.do(t, "DELETE", "/apps/"+app, a, nil).want(t, http.StatusOK)

	bob := b.newUser(t, "appthief")
	b.createApp(t, bob, app)
	if got := instanceApps(t, b, a, inst); len(got) != 0 {
		t.Errorf("instance %s still lists apps %v after its app was removed", inst, got)
	}
	env := b.do(t, "GET", "/apps/"+app+"/env", bob, nil).want(t, http.StatusOK)
	if len(env.List()) != 0 || strings.Contains(string(env.Raw), "PRIVATE_ONE") || strings.Contains(string(env.Raw), "PUBLIC_ONE") {
		t.Errorf("the re-created app has the old env: %s", env)
	}
	if r := b.do(t, "GET", "/api/v1/repos/"+app+"/details/", bob, nil).want(t, http.StatusOK); strings.Contains(string(r.Raw), inst) {
		t.Errorf("the re-created app shows the old binding: %s", r)
	}
	b.do(t, "GET", "/apps/"+app, tok, nil).check(t, http.StatusUnauthorized)
	b.do(t, "POST", "/api/v1/repos/"+app+"/push/", tok, pushBody(metaVersion(), 1)).check(t, http.StatusUnauthorized)
	// Unbinding the old instance from the new app: it was never bound.
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, a, nil).want(t, http.StatusForbidden)
	// The deploy of the new app has nothing of the old (no release).
	b.do(t, "POST", "/api/v1/apps/", bob, map[string]any{"appname": app}).want(t, http.StatusBadRequest)
}
