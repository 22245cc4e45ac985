package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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

// client makes API calls.
type client struct {
	creds clientCreds
	http  *http.Client
	out   io.Writer
	// status is the HTTP status of the last call (202: an operation was
	// started, and the command waits for it).
	status int
}

func newClient(out io.Writer) *client {
	return &client{creds: loadCreds(), http: &http.Client{Timeout: 60 * time.Second}, out: out}
}

// apiError is a non-2xx answer.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

func (c *client) call(method, path string, body any, out any) error {
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/yaml"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.creds.Addr, "/")+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.creds.Token != "" {
		req.Header.Set("Authorization", "bearer "+c.creds.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	c.status = resp.StatusCode
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &apiError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
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
	c := newClient(out)
	esc := url.PathEscape
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
		pw := os.Getenv("BERTH_PASSWORD")
		if pw == "" {
			fmt.Fprint(out, "password: ")
			line, err := bufio.NewReader(in).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("no password given")
			}
			pw = strings.TrimRight(line, "\r\n")
		}
		var r struct {
			Token string `json:"token"`
		}
		if err := c.call("POST", "/users/"+esc(email)+"/tokens", map[string]string{"password": pw}, &r); err != nil {
			return err
		}
		c.creds.Email, c.creds.Token = email, r.Token
		if err := saveCreds(c.creds); err != nil {
			return err
		}
		fmt.Fprintf(out, "logged in to %s as %s\n", c.creds.Addr, email)
		return nil
	case "logout":
		if err := c.call("DELETE", "/users/tokens", nil, nil); err != nil {
			return err
		}
		c.creds.Token = ""
		return saveCreds(c.creds)
	case "whoami":
		var r map[string]any
		if err := c.call("GET", "/users/info", nil, &r); err != nil {
			return err
		}
		c.print(r)
		return nil
	case "apps":
		var apps []map[string]any
		if err := c.call("GET", "/apps", nil, &apps); err != nil {
			return err
		}
		for _, a := range apps {
			fmt.Fprintf(out, "%-30v %-12v %-20v %d units\n", a["Name"], a["State"], a["MetaVersion"], len(asList(a["Units"])))
		}
		return nil
	case "app-create":
		if err := needArgs(args, 1, "app-create NAME"); err != nil {
			return err
		}
		var r map[string]any
		if err := c.call("POST", "/apps", map[string]string{"name": args[0]}, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "created app %s (repository %v)\n", args[0], r["repository_url"])
		return nil
	case "app-remove":
		if err := needArgs(args, 1, "app-remove NAME"); err != nil {
			return err
		}
		return c.call("DELETE", "/apps/"+esc(args[0]), nil, nil)
	case "push":
		if err := needArgs(args, 3, "push APP VERSION FILE"); err != nil {
			return err
		}
		spec, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		var r map[string]any
		if err := c.call("POST", "/api/v1/repos/"+esc(args[0])+"/push/?meta_version="+url.QueryEscape(args[1]), spec, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "pushed %s %s (%v)\n", args[0], args[1], r["status"])
		return nil
	case "deploy":
		if err := needArgs(args, 1, "deploy APP [VERSION]"); err != nil {
			return err
		}
		var err error
		if len(args) > 1 {
			err = c.call("PUT", "/api/v1/apps/"+esc(args[0])+"/", map[string]string{"meta_version": args[1]}, nil)
		} else {
			err = c.call("POST", "/api/v1/apps/", map[string]string{"appname": args[0]}, nil)
		}
		if err != nil {
			return err
		}
		return c.wait(args[0])
	case "status":
		if err := needArgs(args, 1, "status APP"); err != nil {
			return err
		}
		var r map[string]any
		if err := c.call("GET", "/api/v1/apps/"+esc(args[0])+"/", nil, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "%v %v: %v", r["appname"], r["meta_version"], r["state"])
		if m, _ := r["message"].(string); m != "" {
			fmt.Fprintf(out, " (%s)", m)
		}
		fmt.Fprintln(out)
		for _, p := range asList(r["procs"]) {
			pm, _ := p.(map[string]any)
			fmt.Fprintf(out, "  %-20v x%v  cpu %v  mem %v\n", pm["procname"], pm["num_instances"], pm["cpu"], pm["memory"])
			for _, i := range asList(pm["instances"]) {
				im, _ := i.(map[string]any)
				fmt.Fprintf(out, "    %-28v %-10v %v\n", im["name"], im["state"], im["address"])
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
		if err := c.call("PATCH", "/api/v1/apps/"+esc(args[0])+"/procs/"+esc(args[1])+"/", map[string]int{"num_instances": n}, nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "restart":
		if err := needArgs(args, 1, "restart APP"); err != nil {
			return err
		}
		if err := c.call("GET", "/apps/"+esc(args[0])+"/restart", nil, nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "undeploy":
		if err := needArgs(args, 1, "undeploy APP"); err != nil {
			return err
		}
		if err := c.call("DELETE", "/api/v1/apps/"+esc(args[0])+"/", nil, nil); err != nil {
			return err
		}
		return c.wait(args[0])
	case "env":
		if err := needArgs(args, 1, "env APP"); err != nil {
			return err
		}
		var vars []map[string]any
		if err := c.call("GET", "/apps/"+esc(args[0])+"/env", nil, &vars); err != nil {
			return err
		}
		for _, v := range vars {
			fmt.Fprintf(out, "%v=%v\n", v["name"], v["value"])
		}
		return nil
	case "env-set":
		if err := needArgs(args, 2, "env-set APP [-private] KEY=VALUE..."); err != nil {
			return err
		}
		private := false
		var envs []map[string]string
		for _, a := range args[1:] {
			if a == "-private" {
				private = true
				continue
			}
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("%q is not KEY=VALUE", a)
			}
			envs = append(envs, map[string]string{"name": k, "value": v})
		}
		sort.Slice(envs, func(i, j int) bool { return envs[i]["name"] < envs[j]["name"] })
		return c.waitIfStarted(args[0], c.call("POST", "/apps/"+esc(args[0])+"/env", map[string]any{"envs": envs, "private": private}, nil))
	case "env-unset":
		if err := needArgs(args, 2, "env-unset APP KEY..."); err != nil {
			return err
		}
		return c.waitIfStarted(args[0], c.call("DELETE", "/apps/"+esc(args[0])+"/env", map[string]any{"names": args[1:]}, nil))
	}
	return fmt.Errorf("unknown command %q", name)
}

// waitIfStarted waits for the app's operation when the call err came from
// started one (202); a change to an app that is not deployed is at once.
func (c *client) waitIfStarted(app string, err error) error {
	if err != nil || c.status != http.StatusAccepted {
		return err
	}
	return c.wait(app)
}

// wait follows the app until its operation settles, printing each state.
func (c *client) wait(app string) error {
	deadline := time.Now().Add(5 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		var r map[string]any
		err := c.call("GET", "/api/v1/apps/"+url.PathEscape(app)+"/", nil, &r)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == 404 {
			fmt.Fprintln(c.out, "undeployed")
			return nil
		}
		if err != nil {
			return err
		}
		st, _ := r["state"].(string)
		if st != last {
			fmt.Fprintf(c.out, "%s %v: %s\n", app, r["meta_version"], st)
			last = st
		}
		switch st {
		case "running", "undeployed":
			return nil
		case "failed":
			return fmt.Errorf("%s failed: %v", app, r["message"])
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%s did not settle in 5 minutes", app)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
