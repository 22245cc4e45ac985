package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/api"
)

// The client CLI: thin commands over the HTTP API, for people at a shell.
// The server address and token come from BERTH_ADDR / BERTH_TOKEN, or from
// the credentials file `berth login` writes (~/.config/berth/credentials,
// mode 0600).

const clientUsage = `Client commands (talk to a running server):
  berth login EMAIL [-addr URL]         log in (password from the terminal or BERTH_PASSWORD)
  berth logout
  berth whoami
  berth apps                            list apps
  berth app-create NAME                 register an app
  berth app-remove NAME
  berth push APP VERSION FILE           record a release from lain.yaml (YAML or JSON)
  berth deploy APP [VERSION]            deploy the latest (or that) release; waits until it settles
  berth status APP                      procs and instances
  berth scale APP PROC N
  berth restart APP
  berth undeploy APP
  berth env APP                         list variables (private ones masked)
  berth env-set APP [-private] KEY=VALUE...
  berth env-unset APP KEY...
`

type clientCreds struct {
	Addr  string `json:"addr"`
	Email string `json:"email"`
	Token string `json:"token"`
}

func credsPath() string {
	if p := os.Getenv("BERTH_CREDENTIALS"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "berth", "credentials")
}

func loadCreds() clientCreds {
	var c clientCreds
	if b, err := os.ReadFile(credsPath()); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	if a := os.Getenv("BERTH_ADDR"); a != "" {
		c.Addr = a
	}
	if t := os.Getenv("BERTH_TOKEN"); t != "" {
		c.Token = t
	}
	if c.Addr == "" {
		c.Addr = "http://127.0.0.1:8080"
	}
	return c
}

func saveCreds(c clientCreds) error {
	p := credsPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return os.WriteFile(p, b, 0o600)
}

// client makes API calls through the api package.
type client struct {
	creds clientCreds
	api   *api.Client
	out   io.Writer
}

func newClient(out io.Writer) (*client, error) {
	c := &client{creds: loadCreds(), out: out}
	return c, c.connect()
}

// connect (re)makes the API client from the credentials.
func (c *client) connect() error {
	a, err := api.NewClient(&api.Config{Address: c.creds.Addr, Token: c.creds.Token, HTTPClient: &http.Client{Timeout: 60 * time.Second}, UserAgent: "berth-cli"})
	if err != nil {
		return err
	}
	c.api = a
	return nil
}

func (c *client) print(v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(c.out, string(b))
}

// isClientCommand reports whether name is a client command.
func isClientCommand(name string) bool {
	switch name {
	case "login", "logout", "whoami", "apps", "app-create", "app-remove", "push", "deploy", "status",
		"scale", "restart", "undeploy", "env", "env-set", "env-unset":
		return true
	}
	return false
}

func needArgs(args []string, n int, usage string) error {
	if len(args) < n {
		return fmt.Errorf("usage: berth %s", usage)
	}
	return nil
}

// runClient runs one client command.
func runClient(name string, args []string, in io.Reader, out io.Writer) error {
	c, err := newClient(out)
	if err != nil {
		return err
	}
	switch name {
	case "login":
		if err := needArgs(args, 1, "login EMAIL [-addr URL]"); err != nil {
			return err
		}
		email := args[0]
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-addr" {
				c.creds.Addr = args[i+1]
			}
		}
		if err := c.connect(); err != nil {
			return err
		}
		pw := os.Getenv("BERTH_PASSWORD")
		if pw == "" {
			fmt.Fprint(out, "password: ")
			line, err := bufio.NewReader(in).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("no password given")
			}
			pw = strings.TrimRight(line, "\r\n")
		}
		l, _, err := c.api.Users().Login(email, pw, nil)
		if err != nil {
			return err
		}
		c.creds.Email, c.creds.Token = email, l.Token
		if err := saveCreds(c.creds); err != nil {
			return err
		}
		fmt.Fprintf(out, "logged in to %s as %s\n", c.creds.Addr, email)
		return nil
	case "logout":
		if _, err := c.api.Users().Logout(nil); err != nil {
			return err
		}
		c.creds.Token = ""
		return saveCreds(c.creds)
	case "whoami":
		r, _, err := c.api.Users().Info(nil)
		if err != nil {
			return err
		}
		c.print(r)
		return nil
	case "apps":
		apps, _, err := c.api.Apps().List(nil)
		if err != nil {
			return err
		}
		for _, a := range apps {
			fmt.Fprintf(out, "%-30v %-12v %-20v %d units\n", a.Name, a.State, a.MetaVersion, len(a.Units))
		}
		return nil
	case "app-create":
		if err := needArgs(args, 1, "app-create NAME"); err != nil {
			return err
		}
		r, _, err := c.api.Apps().Create(&api.AppCreateRequest{Name: args[0]}, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created app %s (repository %v)\n", args[0], r.RepositoryURL)
		return nil
	case "app-remove":
		if err := needArgs(args, 1, "app-remove NAME"); err != nil {
			return err
		}
		_, err := c.api.Apps().Remove(args[0], nil)
		return err
	case "push":
		if err := needArgs(args, 3, "push APP VERSION FILE"); err != nil {
			return err
		}
		spec, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		r, _, err := c.api.Repos().PushYAML(args[0], args[1], spec, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "pushed %s %s (%v)\n", args[0], args[1], r.Status)
		return nil
	case "deploy":
		if err := needArgs(args, 1, "deploy APP [VERSION]"); err != nil {
			return err
		}
		var err error
		if len(args) > 1 {
			_, _, err = c.api.Deploys().DeployVersion(args[0], &api.DeployVersionRequest{MetaVersion: args[1]}, nil)
		} else {
			_, _, err = c.api.Deploys().Deploy(&api.DeployRequest{AppName: args[0]}, nil)
		}
		if err != nil {
			return err
		}
		return c.wait(args[0])
	case "status":
		if err := needArgs(args, 1, "status APP"); err != nil {
			return err
		}
		r, _, err := c.api.Deploys().Get(args[0], nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%v %v: %v", r.AppName, r.MetaVersion, r.State)
		if r.Message != "" {
			fmt.Fprintf(out, " (%s)", r.Message)
		}
		fmt.Fprintln(out)
		for _, p := range r.Procs {
			fmt.Fprintf(out, "  %-20v x%v  cpu %v  mem %v\n", p.ProcName, p.NumInstances, p.CPU, p.Memory)
			for _, i := range p.Instances {
				fmt.Fprintf(out, "    %-28v %-10v %v\n", i.Name, i.State, i.Address)
			}
		}
		return nil
	case "scale":
		if err := needArgs(args, 3, "scale APP PROC N"); err != nil {
			return err
		}
		var n int
		if _, err := fmt.Sscan(args[2], &n); err != nil {
			return fmt.Errorf("N must be a number")
		}
		if _, _, err := c.api.Procs().Scale(args[0], args[1], n, nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "restart":
		if err := needArgs(args, 1, "restart APP"); err != nil {
			return err
		}
		if _, _, err := c.api.Apps().Restart(args[0], nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "undeploy":
		if err := needArgs(args, 1, "undeploy APP"); err != nil {
			return err
		}
		if _, _, err := c.api.Deploys().Undeploy(args[0], nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "env":
		if err := needArgs(args, 1, "env APP"); err != nil {
			return err
		}
		vars, _, err := c.api.Env().List(args[0], nil)
		if err != nil {
			return err
		}
		for _, v := range vars {
			fmt.Fprintf(out, "%v=%v\n", v.Name, v.Value)
		}
		return nil
	case "env-set":
		if err := needArgs(args, 2, "env-set APP [-private] KEY=VALUE..."); err != nil {
			return err
		}
		req := &api.EnvSetRequest{}
		for _, a := range args[1:] {
			if a == "-private" {
				req.Private = true
				continue
			}
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("%q is not KEY=VALUE", a)
			}
			req.Envs = append(req.Envs, api.EnvSetVar{Name: k, Value: v})
		}
		sort.Slice(req.Envs, func(i, j int) bool { return req.Envs[i].Name < req.Envs[j].Name })
		op, _, err := c.api.Env().Set(args[0], req, nil)
		return c.waitIfStarted(args[0], op, err)
	case "env-unset":
		if err := needArgs(args, 2, "env-unset APP KEY..."); err != nil {
			return err
		}
		op, _, err := c.api.Env().Unset(args[0], &api.EnvUnsetRequest{Names: args[1:]}, nil)
		return c.waitIfStarted(args[0], op, err)
	}
	return fmt.Errorf("unknown command %q", name)
}

// waitIfStarted waits for the app's operation when the call started one
// (op is not nil: a 202); a change to an app that is not deployed is at once.
func (c *client) waitIfStarted(app string, op *api.Operation, err error) error {
	if err != nil || op == nil {
		return err
	}
	return c.wait(app)
}

// wait follows the app until its operation settles, printing each state.
func (c *client) wait(app string) error {
	deadline := time.Now().Add(5 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		r, _, err := c.api.Deploys().Get(app, nil)
		if api.IsNotFound(err) {
			fmt.Fprintln(c.out, "undeployed")
			return nil
		}
		if err != nil {
			return err
		}
		if r.State != last {
			fmt.Fprintf(c.out, "%s %v: %s\n", app, r.MetaVersion, r.State)
			last = r.State
		}
		switch r.State {
		case api.DeployRunning, api.DeployUndeployed:
			return nil
		case api.DeployFailed:
			return fmt.Errorf("%s failed: %v", app, r.Message)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%s did not settle in 5 minutes", app)
}
