package api_test

import (
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

func TestUsersKeysTeamsQuota(t *testing.T) {
	s := startServer(t, false)
	anon := s.client(t)

	u, wm, err := anon.Users().Create(&api.UserCreateRequest{Email: devEmail, Password: password}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != devEmail || u.Created.IsZero() || wm.StatusCode != 200 || wm.RequestID == "" {
		t.Fatalf("created %+v %+v", u, wm)
	}
	_, _, err = anon.Users().Create(&api.UserCreateRequest{Email: devEmail, Password: password}, nil)
	if e := apiError(t, err, 409); !strings.Contains(e.Message, "already exists") {
		t.Fatalf("second create: %v", e)
	}

	// A wrong password: a 401 that carries the request id the caller sent.
	_, _, err = anon.Users().Login(devEmail, "wrong-password", &api.WriteOptions{RequestID: "req-wrong-pw"})
	if e := apiError(t, err, 401); e.RequestID != "req-wrong-pw" || e.Error() != "wrong email or password (HTTP 401)" {
		t.Fatalf("wrong password: %+v", e)
	}
	_, _, err = anon.Users().Info(nil)
	apiError(t, err, 401)

	dev := s.login(t, devEmail)
	info, qm, err := dev.Users().Info(&api.QueryOptions{RequestID: "who-1"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Email != devEmail || info.IsAdmin || info.AppToken || qm.RequestID != "who-1" {
		t.Fatalf("info %+v %+v", info, qm)
	}
	strict(t, dev, "/users/info", &api.UserInfo{})

	key := sshKey(t, "me@laptop")
	added, _, err := dev.Keys().Add(&api.KeyRequest{Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if added.Name != "me@laptop" || !strings.HasPrefix(added.Fingerprint, "SHA256:") {
		t.Fatalf("key added: %+v", added)
	}
	_, _, err = dev.Keys().Add(&api.KeyRequest{Key: key}, nil)
	apiError(t, err, 409)
	keys, _, err := dev.Keys().List(nil)
	if err != nil || len(keys) != 1 || keys[0].Fingerprint != added.Fingerprint {
		t.Fatalf("keys %+v %v", keys, err)
	}
	strict(t, dev, "/users/keys", &[]api.SSHKey{})
	if _, err := dev.Keys().Remove(&api.KeyRequest{Name: "me@laptop"}, nil); err != nil {
		t.Fatal(err)
	}
	if keys, _, _ := dev.Keys().List(nil); len(keys) != 0 {
		t.Fatalf("keys after remove: %+v", keys)
	}

	team, _, err := dev.Teams().Create("devs", nil)
	if err != nil || team.Name != "devs" || len(team.Users) != 1 || team.Users[0] != devEmail {
		t.Fatalf("team %+v %v", team, err)
	}
	if _, err := dev.Teams().AddUser("devs", adminEmail, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := dev.Teams().Get("devs", nil)
	if err != nil || strings.Join(got.Users, ",") != adminEmail+","+devEmail {
		t.Fatalf("team after add %+v %v", got, err)
	}
	strict(t, dev, "/teams/devs", &api.Team{})
	if _, err := dev.Teams().RemoveUser("devs", adminEmail, nil); err != nil {
		t.Fatal(err)
	}
	_, err = dev.Teams().RemoveUser("devs", devEmail, nil)
	apiError(t, err, 403) // the last member
	ts, _, err := dev.Teams().List(nil)
	if err != nil || len(ts) != 1 {
		t.Fatalf("teams %+v %v", ts, err)
	}
	_, _, err = dev.Teams().Get("nope", nil)
	if !api.IsNotFound(err) {
		t.Fatalf("missing team: %v", err)
	}

	q, _, err := dev.Quotas().Get(devEmail, nil)
	if err != nil || q.Items < 1 || q.Available != q.Items {
		t.Fatalf("quota %+v %v", q, err)
	}
	strict(t, dev, "/quota/"+devEmail, &api.Quota{})
	_, err = dev.Quotas().Set(devEmail, 1, nil)
	apiError(t, err, 403)
	admin := s.login(t, adminEmail)
	if _, err := admin.Quotas().Set(devEmail, 1, nil); err != nil {
		t.Fatal(err)
	}
	if q, _, _ := dev.Quotas().Get(devEmail, nil); q.Items != 1 {
		t.Fatalf("quota after set: %+v", q)
	}

	st, _, err := anon.Users().ResetPassword("nobody@example.com", "", nil)
	if err != nil || !strings.Contains(st.Status, "nobody@example.com") {
		t.Fatalf("reset: %+v %v", st, err)
	}
	_, _, err = anon.Users().ResetPassword(devEmail, "bogus", nil)
	apiError(t, err, 403)

	if _, err := dev.Users().ChangePassword(&api.PasswordChangeRequest{Old: "not-it", New: "another-pw"}, nil); api.StatusOf(err) != 403 {
		t.Fatalf("wrong old password: %v", err)
	}
	if _, err := dev.Users().ChangePassword(&api.PasswordChangeRequest{Old: password, New: "another-pw"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := anon.Users().Login(devEmail, "another-pw", nil); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if _, err := dev.Users().Logout(nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = dev.Users().Info(nil)
	apiError(t, err, 401)
}

func TestRemoveUser(t *testing.T) {
	s := startServer(t, false)
	anon := s.client(t)
	if _, _, err := anon.Users().Create(&api.UserCreateRequest{Email: devEmail, Password: password}, nil); err != nil {
		t.Fatal(err)
	}
	dev := s.login(t, devEmail)
	if _, err := dev.Users().Remove(nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := anon.Users().Login(devEmail, password, nil)
	apiError(t, err, 401)
}
