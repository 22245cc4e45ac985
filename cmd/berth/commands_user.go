package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/posener/complete"

	"github.com/berthpaas/berth/api"
)

func userCommands(g *registry) {
	g.noun("user", "Your account: create, login, logout, info, password, keys, remove", `
Your account on the server: register, log in and out, see who you are,
change your password, manage your SSH keys, remove the account.`)

	g.add("user create", func() *cmd {
		return &cmd{args: "EMAIL", minArgs: 1, maxArgs: 1,
			synopsis: "Register an account",
			help: `
Registers an account (POST /users). The password comes from BERTH_PASSWORD,
else from a line of standard input. Anyone may register while the server's
users.open_registration is set; otherwise only site admins may.`,
			run: func(r *run) error {
				pw, err := r.readSecret("BERTH_PASSWORD", "password: ", bufio.NewReader(r.In))
				if err != nil {
					return err
				}
				u, _, err := r.cl.Users().Create(&api.UserCreateRequest{Email: r.args[0], Password: pw}, nil)
				if err != nil {
					return err
				}
				r.outf("created user %s; log in with: berth login %s", u.Email, u.Email)
				return nil
			}}
	})

	login := func() *cmd {
		var oldAddr string
		return &cmd{args: "EMAIL", minArgs: 1, maxArgs: 1,
			synopsis: "Log in and save the token",
			help: `
Logs in (POST /users/:email/tokens) and saves the server's address, your
email and the token in the credentials file (~/.config/berth/credentials or
$BERTH_CREDENTIALS, mode 0600); later commands use them. The password comes
from BERTH_PASSWORD, else from a line of standard input.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&oldAddr, "addr", "", "(hidden) the old name of -address")
			},
			run: func(r *run) error {
				if oldAddr != "" && !r.addrSet {
					r.address, r.addrSet = oldAddr, true
					c, err := r.api()
					if err != nil {
						return usagef("%v", err)
					}
					r.cl = c
				}
				pw, err := r.readSecret("BERTH_PASSWORD", "password: ", bufio.NewReader(r.In))
				if err != nil {
					return err
				}
				email := r.args[0]
				l, _, err := r.cl.Users().Login(email, pw, nil)
				if err != nil {
					return err
				}
				if err := saveCreds(clientCreds{Addr: r.cl.Address(), Email: email, Token: l.Token}); err != nil {
					return err
				}
				r.outf("logged in to %s as %s (token saved in %s; it expires %s)", r.cl.Address(), email, credsPath(), l.Expires.Format("2006-01-02 15:04 MST"))
				return nil
			}}
	}
	g.add("user login", login)
	g.alias("login", "user login", login)

	logout := func() *cmd {
		return &cmd{synopsis: "Log out: revoke the token and forget it",
			help: `Revokes the token (DELETE /users/tokens) and removes it from the credentials file.`,
			run: func(r *run) error {
				if _, err := r.cl.Users().Logout(nil); err != nil && api.StatusOf(err) != 401 {
					return err
				}
				// Forget the saved token when it is the one revoked.
				if c := loadCreds(); c.Token != "" && c.Token == r.cl.Token() {
					c.Token = ""
					if err := saveCreds(c); err != nil {
						return err
					}
				}
				r.outf("logged out")
				return nil
			}}
	}
	g.add("user logout", logout)
	g.alias("logout", "user logout", logout)

	info := func() *cmd {
		return &cmd{jsonOut: true, synopsis: "Show who the token belongs to",
			help: `Shows who the token belongs to (GET /users/info): a user, or an app token. JSON: api.UserInfo.`,
			run: func(r *run) error {
				u, _, err := r.cl.Users().Info(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(u)
				}
				if u.AppToken {
					r.outf("an app token of app %s", u.App)
					return nil
				}
				r.outf("%s%s on %s", u.Email, map[bool]string{true: " (site admin)"}[u.IsAdmin], r.cl.Address())
				return nil
			}}
	}
	g.add("user info", info)
	g.alias("whoami", "user info", info)

	g.add("user password", func() *cmd {
		return &cmd{synopsis: "Change your password",
			help: `
Changes your password (PUT /users/password). The current password comes from
BERTH_PASSWORD, the new one from BERTH_NEW_PASSWORD; else each from a line of
standard input. Your other tokens stay valid.`,
			run: func(r *run) error {
				br := bufio.NewReader(r.In)
				old, err := r.readSecret("BERTH_PASSWORD", "current password: ", br)
				if err != nil {
					return err
				}
				nw, err := r.readSecret("BERTH_NEW_PASSWORD", "new password: ", br)
				if err != nil {
					return err
				}
				if _, err := r.cl.Users().ChangePassword(&api.PasswordChangeRequest{Old: old, New: nw}, nil); err != nil {
					return err
				}
				r.outf("password changed")
				return nil
			}}
	})

	g.add("user remove", func() *cmd {
		var yes bool
		return &cmd{synopsis: "Remove your account",
			help: `
Removes your account, its tokens, team memberships and maintainer roles
(DELETE /users). Refused while you own apps. Needs -yes.`,
			flags: func(fs *flag.FlagSet) { fs.BoolVar(&yes, "yes", false, "Confirm the removal.") },
			run: func(r *run) error {
				if !yes {
					return usagef("removing your account needs -yes")
				}
				if _, err := r.cl.Users().Remove(nil); err != nil {
					return err
				}
				r.outf("account removed")
				return nil
			}}
	})

	g.add("user keys", func() *cmd {
		return &cmd{jsonOut: true, synopsis: "List your SSH keys (and add or remove one)",
			help: `Lists your SSH public keys (GET /users/keys). JSON: []api.SSHKey.`,
			run: func(r *run) error {
				keys, _, err := r.cl.Keys().List(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(keys)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tFINGERPRINT")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\n", k.Name, k.Fingerprint)
				}
				return tw.Flush()
			}}
	})
	g.add("user keys add", func() *cmd {
		var name string
		return &cmd{args: "FILE", minArgs: 1, maxArgs: 1, predict: complete.PredictFiles("*.pub"),
			synopsis: "Add an SSH public key",
			help:     `Adds the SSH public key in FILE (authorized_keys form; "-": standard input) (POST /users/keys).`,
			flags:    func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "The key's name (default: its comment).") },
			run: func(r *run) error {
				b, err := readFileArg(r, r.args[0])
				if err != nil {
					return err
				}
				k, _, err := r.cl.Keys().Add(&api.KeyRequest{Key: strings.TrimSpace(string(b)), Name: name}, nil)
				if err != nil {
					return err
				}
				r.outf("added key %s (%s)", k.Name, k.Fingerprint)
				return nil
			}}
	})
	g.add("user keys remove", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, synopsis: "Remove an SSH key",
			help: `Removes your SSH key named NAME (DELETE /users/keys).`,
			run: func(r *run) error {
				if _, err := r.cl.Keys().Remove(&api.KeyRequest{Name: r.args[0]}, nil); err != nil {
					return err
				}
				r.outf("removed key %s", r.args[0])
				return nil
			}}
	})
}

// readFileArg reads FILE, or standard input for "-".
func readFileArg(r *run, name string) ([]byte, error) {
	if name == "-" {
		var b strings.Builder
		br := bufio.NewReader(r.In)
		_, err := br.WriteTo(&b)
		return []byte(b.String()), err
	}
	return os.ReadFile(name)
}

func teamCommands(g *registry) {
	g.noun("team", "Teams: list, create, info, remove, add-user, remove-user", `
Teams own apps, services and instances; their members may act on them.`)
	g.add("team list", func() *cmd {
		return &cmd{jsonOut: true, synopsis: "List your teams",
			help: `Lists the teams you are in (all of them for site admins) (GET /teams). JSON: []api.Team.`,
			run: func(r *run) error {
				teams, _, err := r.cl.Teams().List(nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(teams)
				}
				tw := tabwriter.NewWriter(r.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tUSERS")
				for _, t := range teams {
					fmt.Fprintf(tw, "%s\t%s\n", t.Name, strings.Join(t.Users, ", "))
				}
				return tw.Flush()
			}}
	})
	g.add("team create", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, synopsis: "Create a team (you are its first member)",
			help: `Creates a team with you as its first member (POST /teams).`,
			run: func(r *run) error {
				t, _, err := r.cl.Teams().Create(r.args[0], nil)
				if err != nil {
					return err
				}
				r.outf("created team %s", t.Name)
				return nil
			}}
	})
	g.add("team info", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, jsonOut: true, synopsis: "Show a team and its members",
			help: `Shows a team and its members (GET /teams/:name). JSON: api.Team.`,
			run: func(r *run) error {
				t, _, err := r.cl.Teams().Get(r.args[0], nil)
				if err != nil {
					return err
				}
				if r.json {
					return r.printJSON(t)
				}
				r.outf("team %s\nusers:", t.Name)
				for _, u := range t.Users {
					r.outf("  %s", u)
				}
				return nil
			}}
	})
	g.add("team remove", func() *cmd {
		return &cmd{args: "NAME", minArgs: 1, maxArgs: 1, synopsis: "Remove a team",
			help: `Removes a team (DELETE /teams/:name). Refused while it owns apps, services or instances.`,
			run: func(r *run) error {
				if _, err := r.cl.Teams().Remove(r.args[0], nil); err != nil {
					return err
				}
				r.outf("removed team %s", r.args[0])
				return nil
			}}
	})
	g.add("team add-user", func() *cmd {
		return &cmd{args: "TEAM EMAIL", minArgs: 2, maxArgs: 2, synopsis: "Add a user to a team",
			help: `Adds the user EMAIL to TEAM (PUT /teams/:team/:email).`,
			run: func(r *run) error {
				if _, err := r.cl.Teams().AddUser(r.args[0], r.args[1], nil); err != nil {
					return err
				}
				r.outf("added %s to team %s", r.args[1], r.args[0])
				return nil
			}}
	})
	g.add("team remove-user", func() *cmd {
		return &cmd{args: "TEAM EMAIL", minArgs: 2, maxArgs: 2, synopsis: "Remove a user from a team",
			help: `Removes the user EMAIL from TEAM (DELETE /teams/:team/:email).`,
			run: func(r *run) error {
				if _, err := r.cl.Teams().RemoveUser(r.args[0], r.args[1], nil); err != nil {
					return err
				}
				r.outf("removed %s from team %s", r.args[1], r.args[0])
				return nil
			}}
	})
}
