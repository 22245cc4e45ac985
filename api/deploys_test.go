package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

func TestDeployProcsEnvEvents(t *testing.T) {
	s := startServer(t, true)
	dev := devWithTeam(t, s)
	if _, _, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: "hello"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.Repos().PushYAML("hello", "1700000000-abc", []byte(lainYAML), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, _, err := dev.Deploys().Get("hello", nil)
	apiError(t, err, 404) // registered, not deployed

	op, wm, err := dev.Deploys().Deploy(&api.DeployRequest{AppName: "hello"}, nil)
	if err != nil || wm.StatusCode != 202 || op.AppName != "hello" || op.MetaVersion != "1700000000-abc" || op.Generation != 1 || op.Events != "/api/v1/apps/hello/events/" {
		t.Fatalf("deploy %+v %+v %v", op, wm, err)
	}
	// The app is busy until its deploy settles: a second operation is a
	// 409 naming who holds it.
	_, _, err = dev.Procs().Scale("hello", "web", 2, nil)
	if e := apiError(t, err, 409); e.LockHolder != devEmail || e.LockOperation != "deploy 1700000000-abc" || e.Extra["lock_holder"] != devEmail {
		t.Fatalf("busy: %+v", e)
	}

	// The events stream ends at the final state.
	var states []string
	var lastIndex uint64
	err = dev.Deploys().Events(ctx, "hello", true, func(ev api.DeployEvent) error {
		if ev.Deploy == nil || ev.Deploy.AppName != "hello" || ev.Index == 0 || ev.Type != ev.Deploy.State {
			return errors.New("bad event")
		}
		states = append(states, ev.Type)
		lastIndex = ev.Index
		return nil
	})
	if err != nil || len(states) == 0 || states[len(states)-1] != api.DeployRunning || lastIndex == 0 {
		t.Fatalf("events %v %v", states, err)
	}

	v, _, err := dev.Deploys().Get("hello", nil)
	if err != nil || v.State != api.DeployRunning || len(v.Procs) != 1 || v.Deploy == nil || v.Deploy.By != devEmail {
		t.Fatalf("deployed %+v %v", v, err)
	}
	if p := v.Procs[0]; p.ProcName != "web" || p.Memory != "64m" || len(p.Instances) != 1 || p.Instances[0].Name != "hello.web.0" || p.Instances[0].Address == "" {
		t.Fatalf("proc %+v", p)
	}
	strict(t, dev, "/api/v1/apps/hello/", &api.DeployedApp{})
	strict(t, dev, "/api/v1/apps/", &[]api.DeployedApp{})
	strict(t, dev, "/apps/hello", &api.App{})

	op, _, err = dev.Procs().Patch("hello", "web", &api.ProcPatchRequest{NumInstances: ptr(2), Memory: "128m"}, nil)
	if err != nil || op.ProcName != "web" || strings.Join(op.Ignored, ",") != "memory" || op.Message == "" {
		t.Fatalf("patch %+v %v", op, err)
	}
	v, err = dev.Deploys().Wait(ctx, "hello", 100*time.Millisecond, nil)
	if err != nil || v.State != api.DeployRunning {
		t.Fatalf("wait after scale %+v %v", v, err)
	}
	p, _, err := dev.Procs().Get("hello", "web", nil)
	if err != nil || p.NumInstances != 2 || len(p.Instances) != 2 {
		t.Fatalf("proc after scale %+v %v", p, err)
	}
	strict(t, dev, "/api/v1/apps/hello/procs/web/", &api.Proc{})
	if ps, _, err := dev.Procs().List("hello", nil); err != nil || len(ps) != 1 {
		t.Fatalf("procs %+v %v", ps, err)
	}
	_, _, err = dev.Procs().Get("hello", "nope", nil)
	apiError(t, err, 404)

	// Env: a private variable redeploys and is masked when read.
	op, wm, err = dev.Env().Set("hello", &api.EnvSetRequest{Envs: []api.EnvSetVar{{Name: "TOKEN", Value: "abc123"}}, Private: true}, nil)
	if err != nil || op == nil || wm.StatusCode != 202 || op.Operation != "set env" {
		t.Fatalf("env set %+v %+v %v", op, wm, err)
	}
	if _, err := dev.Deploys().Wait(ctx, "hello", 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	op, wm, err = dev.Env().SetFlat("hello", map[string]string{"GREETING": "hi"}, nil)
	if err != nil || op == nil || wm.StatusCode != 202 {
		t.Fatalf("env set flat %+v %v", op, err)
	}
	if _, err := dev.Deploys().Wait(ctx, "hello", 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	vars, _, err := dev.Env().List("hello", nil)
	if err != nil || len(vars) != 2 || vars[0] != (api.EnvVar{Name: "GREETING", Value: "hi", Public: true}) || vars[1] != (api.EnvVar{Name: "TOKEN", Value: "*** (private)"}) {
		t.Fatalf("env %+v %v", vars, err)
	}
	strict(t, dev, "/apps/hello/env", &[]api.EnvVar{})
	op, wm, err = dev.Env().Unset("hello", &api.EnvUnsetRequest{Names: []string{"GREETING"}, NoRestart: true}, nil)
	if err != nil || op != nil || wm.StatusCode != 200 {
		t.Fatalf("env unset without restart %+v %+v %v", op, wm, err)
	}
	_, _, err = dev.Env().Unset("hello", &api.EnvUnsetRequest{Names: []string{"GREETING"}}, nil)
	apiError(t, err, 404)

	op, wm, err = dev.Apps().Restart("hello", nil)
	if err != nil || wm.StatusCode != 200 || op.Operation != "restart" {
		t.Fatalf("restart %+v %+v %v", op, wm, err)
	}
	if _, err := dev.Deploys().Wait(ctx, "hello", 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}

	// Rollback to a release that was never pushed is refused.
	_, _, err = dev.Deploys().DeployVersion("hello", &api.DeployVersionRequest{MetaVersion: "1700000009-fff"}, nil)
	apiError(t, err, 400)
	deadline := "1ms"
	_, _, err = dev.Deploys().DeployVersion("hello", &api.DeployVersionRequest{MetaVersion: "1700000000-abc", DeployPolicy: api.DeployPolicy{ProgressDeadline: &deadline}}, nil)
	apiError(t, err, 400) // below the minimum deadline

	// Resources: a plain app is not one.
	_, _, err = dev.Resources().Instances("hello", nil)
	apiError(t, err, 404)

	op, wm, err = dev.Deploys().Undeploy("hello", nil)
	if err != nil || wm.StatusCode != 202 || op.Operation != "undeploy" {
		t.Fatalf("undeploy %+v %v", op, err)
	}
	v, err = dev.Deploys().Wait(ctx, "hello", 100*time.Millisecond, nil)
	if err != nil || (v != nil && v.State != api.DeployUndeployed) {
		t.Fatalf("wait after undeploy %+v %v", v, err)
	}
	_, _, err = dev.Deploys().Get("hello", nil)
	apiError(t, err, 404)
}

func TestSwapAndHealers(t *testing.T) {
	s := startServer(t, true)
	dev := devWithTeam(t, s)
	for _, n := range []string{"blue", "green"} {
		if _, _, err := dev.Repos().Create(&api.RepoCreateRequest{AppName: n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	res, _, err := dev.Apps().Swap("blue", "green", nil)
	if err != nil || len(res) != 2 {
		t.Fatalf("swap %+v %v", res, err)
	}
	if _, ok := res["blue"]; !ok {
		t.Fatalf("swap answer without blue: %+v", res)
	}
	_, _, err = dev.Apps().Swap("blue", "blue", nil)
	apiError(t, err, 400)

	hs, _, err := dev.Healers().List(nil)
	if err != nil || len(hs) != 2 || hs[0]["reconcile"] == "" || hs[1]["services"] == "" {
		t.Fatalf("healers %+v %v", hs, err)
	}
	_, _, err = dev.Healers().Run("reconcile", nil)
	apiError(t, err, 403)
	admin := s.login(t, adminEmail)
	r, _, err := admin.Healers().Run("reconcile", nil)
	if err != nil || r.Healer != "reconcile" || r.Result == nil {
		t.Fatalf("reconcile healer %+v %v", r, err)
	}
	strict(t, admin, "/healers", &[]api.Healer{})
	strict(t, admin, "/healers/reconcile", &api.HealerResult{})
	// The services healer answers what it repaired, an empty list when
	// nothing: "repaired": [], which HealerResult must encode back.
	r, _, err = admin.Healers().Run("services", nil)
	if err != nil || r.Healer != "services" || r.Repaired == nil || len(r.Repaired) != 0 || r.Result != nil {
		t.Fatalf("services healer %+v %v", r, err)
	}
	strict(t, admin, "/healers/services", &api.HealerResult{})
	_, _, err = admin.Healers().Run("nope", nil)
	apiError(t, err, 404)
}

func ptr[T any](v T) *T { return &v }
