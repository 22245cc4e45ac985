package api_test

import (
	"testing"

	"github.com/berthpaas/berth/api"
)

// TestUsersList: GET /users lists every user with their teams and quota
// for a site admin, and is refused to everyone else.
func TestUsersList(t *testing.T) {
	s := startServer(t, false)
	anon := s.client(t)
	if _, _, err := anon.Users().Create(&api.UserCreateRequest{Email: devEmail, Password: password}, nil); err != nil {
		t.Fatal(err)
	}
	dev := s.login(t, devEmail)
	if _, _, err := dev.Teams().Create("devs", nil); err != nil {
		t.Fatal(err)
	}
	admin := s.login(t, adminEmail)
	if _, err := admin.Quotas().Set(devEmail, 7, nil); err != nil {
		t.Fatal(err)
	}

	_, _, err := dev.Users().List(nil)
	apiError(t, err, 403)
	_, _, err = anon.Users().List(nil)
	apiError(t, err, 401)

	us, _, err := admin.Users().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 2 || us[0].Email != adminEmail || us[1].Email != devEmail {
		t.Fatalf("users = %+v, want the admin and the developer, by email", us)
	}
	if !us[0].IsAdmin || us[1].IsAdmin {
		t.Errorf("is_admin: %+v", us)
	}
	if d := us[1]; len(d.Teams) != 1 || d.Teams[0] != "devs" || d.Quota.Items != 7 || d.Quota.Available != 7 || d.Created.IsZero() {
		t.Errorf("the developer = %+v, want team devs, quota 7 of 7", d)
	}
	if us[0].Teams == nil {
		t.Errorf("a user without teams has null teams: %+v", us[0])
	}
}
