package e2e

import "testing"

// scenarios is every end-to-end story of the users/teams/tokens/quotas/app
// registration surface. Each gets its own server; TestE2E runs them all on
// every backend variant (embedded; Consul Store; Vault Secrets; both).
var scenarios = []scenario{
	{name: "health", run: testHealthAndMetrics},
	{name: "users", run: testUsers},
	{name: "closed-registration", opts: func(o *Options) { o.ClosedRegistration = true }, run: testClosedRegistration},
	{name: "password-reset", run: testPasswordReset},
	{name: "ssh-keys", run: testSSHKeys},
	{name: "remove-user", run: testRemoveUser},
	{name: "teams", run: testTeams},
	{name: "quota", opts: func(o *Options) { o.DefaultQuota = 2 }, run: testQuota},
	{name: "app-tokens", run: testAppTokens},
	{name: "apps", run: testApps},
	{name: "repos-seed", run: testReposSeed},
	{name: "maintainers", run: testMaintainers},
	{name: "push", run: testPush},
	{name: "notify", opts: func(o *Options) { o.NotifySecret = "e2e-notify-hmac-" + randHex(8) }, run: testNotify},
	{name: "events", run: testEvents},
	{name: "trailing-slash", run: testTrailingSlash},
	{name: "bad-input", opts: func(o *Options) { o.MaxBodyBytes = 64 << 10 }, run: testBadInput},
	{name: "authz-matrix", run: testAuthzMatrix},
	{name: "pages", run: testPages},
}

func TestE2E(t *testing.T) {
	for _, v := range backendVariants {
		t.Run(v.name, func(t *testing.T) {
			// The variants run side by side: most of their time is spent
			// waiting on bcrypt, fsync, Consul and Vault, not on one another.
			t.Parallel()
			base := v.opts(t)
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					opts := base
					if sc.opts != nil {
						sc.opts(&opts)
					}
					b := startBerth(t, opts)
					sc.run(t, b)
				})
			}
		})
	}
}
