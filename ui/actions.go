package ui

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/api"
)

// The actions of the app page. Each is a form that POSTs to
// /ui/apps/:app/<action>. Without confirm=yes the console only asks: it
// renders a confirmation page (what will happen, in words, with the app's
// current state) whose Confirm button re-posts the same fields with
// confirm=yes; nothing changes before that. With confirm=yes the action is
// one call of the API as the session, and the browser is sent back (303)
// to the app page with a fixed message (?done=). An answer of the API that
// is not a success is shown as the API's own message, with its status.

// actionRoutes: the form targets of the app page's actions.
var actionRoutes = []uiRoute{
	actionRoute("deploy", deployAction),
	actionRoute("rollback", rollbackAction),
	actionRoute("scale", scaleAction),
	actionRoute("restart", restartAction),
	actionRoute("env", envSetAction),
	actionRoute("env/unset", envUnsetAction),
	actionRoute("bind", bindAction),
	actionRoute("unbind", unbindAction),
}

// doneMessages are the messages the app page shows after an action (its
// ?done= parameter). They are fixed: a link cannot make the page say
// anything else.
var doneMessages = map[string]string{
	"deploy":      "Deploy started: its progress shows below.",
	"rollback":    "Rollback started: its progress shows below.",
	"scale":       "Scale started: its progress shows below.",
	"restart":     "Restart started: its progress shows below.",
	"env":         "Variable set; the app is being redeployed with it.",
	"env-now":     "Variable set.",
	"unset":       "Variable unset; the app is being redeployed without it.",
	"unset-now":   "Variable unset.",
	"bind":        "Service instance bound.",
	"unbind":      "Service instance unbound.",
	"unbind-warn": "Service instance unbound, but the app was not redeployed: its history says why; restart it to drop the old credentials.",
}

// doneMessage is the message of a ?done= value ("" for any other).
func doneMessage(key string) string { return doneMessages[key] }

// actionError is a refusal: by the API (its status and message) or of
// the form itself (400).
type actionError struct {
	status int
	msg    string
}

func badForm(format string, args ...any) *actionError {
	return &actionError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// apiError turns the answer of an API call that failed into what the user
// is shown: the API's message, with the API's status (a status that is
// not an error, or none, is a 502: the API did not answer as it should).
func apiError(status int, err error) *actionError {
	msg := "The server could not answer."
	if err != nil {
		msg = err.Error()
	}
	if status < 400 {
		status = http.StatusBadGateway
	}
	return &actionError{status, msg}
}

// actionField is a form field the confirmation page re-posts.
type actionField struct{ Name, Value string }

// question is what a confirmation page asks.
type question struct {
	Heading  string        // the page's title and heading, e.g. "Scale web"
	Question string        // the sentence, e.g. "Scale web of hello from 1 to 3 instances?"
	Notes    []string      // what else happens
	Button   string        // the Confirm button's name, e.g. "Scale web to 3"
	Fields   []actionField // re-posted with confirm=yes
}

// actionPage is what action.html shows: a question, or (with the page's
// Error) why the action was refused.
type actionPage struct {
	App, Action, Back string
	question
}

// actionCtx is one action request.
type actionCtx struct {
	c    *Console
	r    *http.Request
	s    *session
	app  string // the app's name
	esc  string // the app's name, path-escaped
	form url.Values
}

// call asks the API as the session.
func (a *actionCtx) call(method, path string, in, out any) (int, error) {
	return a.c.call(a.r, a.s, method, path, in, out)
}

// appInfo is the app as the API shows it to the session.
func (a *actionCtx) appInfo() (*api.App, *actionError) {
	var app api.App
	if status, err := a.call(http.MethodGet, "/apps/"+a.esc, nil, &app); err != nil || status != http.StatusOK {
		return nil, apiError(status, err)
	}
	return &app, nil
}

// action is one of the app page's actions: ask builds the confirmation
// question (reading what it needs from the API, changing nothing); do
// performs it and answers the ?done= key.
type action struct {
	ask func(a *actionCtx) (*question, *actionError)
	do  func(a *actionCtx) (string, *actionError)
}

func actionRoute(name string, act action) uiRoute {
	return uiRoute{http.MethodPost, "apps/:app/" + name, func(c *Console, w http.ResponseWriter, r *http.Request, s *session, p map[string]string) {
		c.runAction(w, r, s, p["app"], name, act)
	}}
}

// runAction asks (without confirm=yes) or acts (with it).
func (c *Console) runAction(w http.ResponseWriter, r *http.Request, s *session, app, name string, act action) {
	_ = r.ParseForm() // parsed already by the CSRF check
	a := &actionCtx{c: c, r: r, s: s, app: app, esc: url.PathEscape(app), form: r.PostForm}
	back := "/ui/apps/" + a.esc
	d := actionPage{App: app, Action: back + "/" + name, Back: back}
	fail := func(e *actionError) {
		if e.status == http.StatusUnauthorized {
			c.setCookie(w, r, "", -1)
		}
		c.render(w, e.status, "action", c.withSession(s, page{Title: "Not done", Error: e.msg, Data: d}))
	}
	if r.PostFormValue("confirm") != "yes" {
		q, e := act.ask(a)
		if e != nil {
			fail(e)
			return
		}
		d.question = *q
		c.render(w, http.StatusOK, "action", c.withSession(s, page{Title: q.Heading, Data: d}))
		return
	}
	done, e := act.do(a)
	if e != nil {
		fail(e)
		return
	}
	http.Redirect(w, r, back+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

// value is a form field, trimmed.
func (a *actionCtx) value(name string) string { return strings.TrimSpace(a.form.Get(name)) }

// deployAction deploys a pushed release: PUT /api/v1/apps/:app
// (api.DeployVersionRequest), which also deploys an app not yet deployed.
var deployAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		v := a.value("version")
		if v == "" {
			return nil, badForm("Choose a release to deploy.")
		}
		app, e := a.appInfo()
		if e != nil {
			return nil, e
		}
		q := &question{Heading: "Deploy " + v, Question: fmt.Sprintf("Deploy release %s of %s?", v, a.app),
			Button: "Deploy " + v, Fields: []actionField{{"version", v}}}
		if deployed(app) && app.MetaVersion != "" {
			q.Notes = append(q.Notes, fmt.Sprintf("%s is now at release %s; its instances are replaced one by one.", a.app, app.MetaVersion))
		}
		return q, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		v := a.value("version")
		if v == "" {
			return "", badForm("Choose a release to deploy.")
		}
		if status, err := a.call(http.MethodPut, "/api/v1/apps/"+a.esc, api.DeployVersionRequest{MetaVersion: v}, nil); err != nil {
			return "", apiError(status, err)
		}
		return "deploy", nil
	},
}

// deployed reports whether the app runs (or is being deployed).
func deployed(app *api.App) bool {
	return app.State != "" && app.State != api.DeployUndeployed
}

// rollbackAction goes back to the release that ran before, or to a chosen
// one: POST /api/v1/apps/:app/rollback (api.RollbackRequest).
var rollbackAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		v := a.value("version")
		app, e := a.appInfo()
		if e != nil {
			return nil, e
		}
		q := &question{Heading: "Roll back " + a.app, Fields: []actionField{{"version", v}}}
		if v == "" {
			q.Question = fmt.Sprintf("Roll %s back to the release that ran before?", a.app)
			q.Button = "Roll back"
		} else {
			q.Question = fmt.Sprintf("Roll %s back to release %s?", a.app, v)
			q.Button = "Roll back to " + v
		}
		if app.MetaVersion != "" {
			q.Notes = append(q.Notes, fmt.Sprintf("%s is now at release %s.", a.app, app.MetaVersion))
		}
		return q, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		if status, err := a.call(http.MethodPost, "/api/v1/apps/"+a.esc+"/rollback", api.RollbackRequest{MetaVersion: a.value("version")}, nil); err != nil {
			return "", apiError(status, err)
		}
		return "rollback", nil
	},
}

// scaleForm is the proc and number of a scale form.
func (a *actionCtx) scaleForm() (string, int, *actionError) {
	proc := a.value("proc")
	if proc == "" {
		return "", 0, badForm("Choose a proc to scale.")
	}
	n, err := strconv.Atoi(a.value("instances"))
	if err != nil || n < 0 {
		return "", 0, badForm("The number of instances must be a whole number, 0 or more.")
	}
	return proc, n, nil
}

// scaleAction sets a proc's number of instances:
// PATCH /api/v1/apps/:app/procs/:proc (api.ProcPatchRequest).
var scaleAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		proc, n, e := a.scaleForm()
		if e != nil {
			return nil, e
		}
		var p api.Proc
		if status, err := a.call(http.MethodGet, "/api/v1/apps/"+a.esc+"/procs/"+url.PathEscape(proc), nil, &p); err != nil {
			return nil, apiError(status, err)
		}
		return &question{Heading: "Scale " + proc,
			Question: fmt.Sprintf("Scale %s of %s from %d to %d %s?", proc, a.app, p.NumInstances, n, plural(n, "instance", "instances")),
			Button:   fmt.Sprintf("Scale %s to %d", proc, n),
			Fields:   []actionField{{"proc", proc}, {"instances", strconv.Itoa(n)}}}, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		proc, n, e := a.scaleForm()
		if e != nil {
			return "", e
		}
		if status, err := a.call(http.MethodPatch, "/api/v1/apps/"+a.esc+"/procs/"+url.PathEscape(proc), api.ProcPatchRequest{NumInstances: &n}, nil); err != nil {
			return "", apiError(status, err)
		}
		return "scale", nil
	},
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// restartAction restarts every instance of the app: GET /apps/:app/restart
// (the API restarts a whole app, not one proc).
var restartAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		if _, e := a.appInfo(); e != nil {
			return nil, e
		}
		return &question{Heading: "Restart " + a.app, Question: fmt.Sprintf("Restart every instance of %s?", a.app),
			Notes: []string{"Each instance is replaced by a new one."}, Button: "Restart " + a.app}, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		if status, err := a.call(http.MethodGet, "/apps/"+a.esc+"/restart", nil, nil); err != nil {
			return "", apiError(status, err)
		}
		return "restart", nil
	},
}

// envForm is the name, value and privacy of a set-variable form. The value
// of a private variable travels through the confirmation page sealed (see
// seal), never as itself.
func (a *actionCtx) envForm() (name, value string, private bool, e *actionError) {
	name = a.value("name")
	if name == "" {
		return "", "", false, badForm("Enter the variable's name.")
	}
	private = a.form.Get("private") == "yes"
	value = a.form.Get("value")
	if sealed := a.form.Get("sealed"); sealed != "" {
		v, err := a.c.unseal(a.s, a.app, name, sealed)
		if err != nil {
			return "", "", false, badForm("The confirmation form was changed or is from another session; set the variable again.")
		}
		value, private = v, true
	}
	return name, value, private, nil
}

// envSetAction sets one variable: POST /apps/:app/env
// (api.EnvSetRequest).
var envSetAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		name, value, private, e := a.envForm()
		if e != nil {
			return nil, e
		}
		app, e := a.appInfo()
		if e != nil {
			return nil, e
		}
		q := &question{Heading: "Set " + name, Button: "Set " + name, Fields: []actionField{{"name", name}}}
		if private {
			sealed, err := a.c.seal(a.s, a.app, name, value)
			if err != nil {
				return nil, &actionError{http.StatusInternalServerError, "The value could not be kept for the confirmation."}
			}
			q.Fields = append(q.Fields, actionField{"sealed", sealed})
			q.Question = fmt.Sprintf("Set the private variable %s of %s?", name, a.app)
			q.Notes = append(q.Notes, "Its value is kept in Secrets and hidden whenever it is read, here too.")
		} else {
			q.Fields = append(q.Fields, actionField{"value", value})
			q.Question = fmt.Sprintf("Set %s=%s on %s?", name, value, a.app)
		}
		if deployed(app) {
			q.Notes = append(q.Notes, fmt.Sprintf("%s is redeployed with it.", a.app))
		}
		return q, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		name, value, private, e := a.envForm()
		if e != nil {
			return "", e
		}
		req := api.EnvSetRequest{Envs: []api.EnvSetVar{{Name: name, Value: value}}, Private: private}
		status, err := a.call(http.MethodPost, "/apps/"+a.esc+"/env", req, nil)
		if err != nil {
			return "", apiError(status, err)
		}
		if status == http.StatusAccepted {
			return "env", nil
		}
		return "env-now", nil
	},
}

// envUnsetAction removes one variable: DELETE /apps/:app/env
// (api.EnvUnsetRequest).
var envUnsetAction = action{
	ask: func(a *actionCtx) (*question, *actionError) {
		name := a.value("name")
		if name == "" {
			return nil, badForm("Choose the variable to unset.")
		}
		app, e := a.appInfo()
		if e != nil {
			return nil, e
		}
		q := &question{Heading: "Unset " + name, Question: fmt.Sprintf("Unset %s on %s?", name, a.app),
			Button: "Unset " + name, Fields: []actionField{{"name", name}}}
		if deployed(app) {
			q.Notes = append(q.Notes, fmt.Sprintf("%s is redeployed without it.", a.app))
		}
		return q, nil
	},
	do: func(a *actionCtx) (string, *actionError) {
		name := a.value("name")
		if name == "" {
			return "", badForm("Choose the variable to unset.")
		}
		status, err := a.call(http.MethodDelete, "/apps/"+a.esc+"/env", api.EnvUnsetRequest{Names: []string{name}}, nil)
		if err != nil {
			return "", apiError(status, err)
		}
		if status == http.StatusAccepted {
			return "unset", nil
		}
		return "unset-now", nil
	},
}

// instanceForm is the service instance of a bind or unbind form.
func (a *actionCtx) instanceForm() (string, *actionError) {
	inst := a.value("instance")
	if inst == "" {
		return "", badForm("Choose a service instance.")
	}
	return inst, nil
}

// serviceInstance is the instance as the API shows it to the session.
func (a *actionCtx) serviceInstance(name string) (*api.ServiceInstance, *actionError) {
	var in api.ServiceInstance
	if status, err := a.call(http.MethodGet, "/services/instances/"+url.PathEscape(name), nil, &in); err != nil {
		return nil, apiError(status, err)
	}
	return &in, nil
}

// bindAction binds a service instance to the app:
// PUT /services/instances/:instance/:app. The API answers the credentials
// the app gets; the console does not show them.
var bindAction = action{
	ask: bindingQuestion("Bind", "to", "Its credentials are added to %s's environment; a deployed app is redeployed with them."),
	do: func(a *actionCtx) (string, *actionError) {
		inst, e := a.instanceForm()
		if e != nil {
			return "", e
		}
		if status, err := a.call(http.MethodPut, "/services/instances/"+url.PathEscape(inst)+"/"+a.esc, nil, nil); err != nil {
			return "", apiError(status, err)
		}
		return "bind", nil
	},
}

// unbindAction unbinds a service instance from the app:
// DELETE /services/instances/:instance/:app.
var unbindAction = action{
	ask: bindingQuestion("Unbind", "from", "Its credentials are revoked and removed from %s's environment; a deployed app is redeployed without them."),
	do: func(a *actionCtx) (string, *actionError) {
		inst, e := a.instanceForm()
		if e != nil {
			return "", e
		}
		var st api.Status
		if status, err := a.call(http.MethodDelete, "/services/instances/"+url.PathEscape(inst)+"/"+a.esc, nil, &st); err != nil {
			return "", apiError(status, err)
		}
		if st.Status != "" && st.Status != "ok" {
			return "unbind-warn", nil
		}
		return "unbind", nil
	},
}

// bindingQuestion is the confirmation of a bind or unbind ("Bind the
// redis instance cache to hello?"); note names the app once (%s).
func bindingQuestion(verb, prep, note string) func(a *actionCtx) (*question, *actionError) {
	return func(a *actionCtx) (*question, *actionError) {
		inst, e := a.instanceForm()
		if e != nil {
			return nil, e
		}
		if _, e := a.appInfo(); e != nil {
			return nil, e
		}
		in, e := a.serviceInstance(inst)
		if e != nil {
			return nil, e
		}
		return &question{Heading: verb + " " + inst,
			Question: fmt.Sprintf("%s the %s instance %s %s %s?", verb, in.ServiceName, inst, prep, a.app),
			Notes:    []string{fmt.Sprintf(note, a.app)},
			Button:   verb + " " + inst, Fields: []actionField{{"instance", inst}}}, nil
	}
}

// instanceOf is the instance name of a "service/instance" pair.
func instanceOf(pair string) string {
	if i := strings.LastIndexByte(pair, '/'); i >= 0 {
		return pair[i+1:]
	}
	return pair
}

func init() {
	funcs["instanceOf"] = instanceOf
}

// seal encrypts a private value for the confirmation page's round trip
// (AES-GCM under a key derived from the console's key), bound to the
// session, the app and the variable's name: the page never holds the value
// itself, and a sealed value is good for no other session or variable.
func (c *Console) seal(s *session, app, name, value string) (string, error) {
	gcm, err := c.sealer()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := gcm.Seal(nonce, nonce, []byte(value), sealAD(c.csrf(s.token), app, name))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// unseal opens what seal made for the same session, app and name.
func (c *Console) unseal(s *session, app, name, sealed string) (string, error) {
	gcm, err := c.sealer()
	if err != nil {
		return "", err
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < gcm.NonceSize() {
		return "", errors.New("malformed sealed value")
	}
	v, err := gcm.Open(nil, b[:gcm.NonceSize()], b[gcm.NonceSize():], sealAD(c.csrf(s.token), app, name))
	if err != nil {
		return "", err
	}
	return string(v), nil
}

func (c *Console) sealer() (cipher.AEAD, error) {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("berth-ui-seal"))
	blk, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func sealAD(csrf, app, name string) []byte {
	return []byte("berth-ui-env\x00" + csrf + "\x00" + app + "\x00" + name)
}
