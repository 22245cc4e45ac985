package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Helpers of the Services, Teams and Admin pages.

// fetch calls the API like get, but names what was not found (what) and
// shows a refusal as the API's: a 403 stays a 403 page with its message,
// unless hide is set, when it looks like an absent thing (404).
func (c *Console) fetch(w http.ResponseWriter, r *http.Request, s *session, path string, out any, what string, hide bool) bool {
	status, err := c.call(r, s, http.MethodGet, path, nil, out)
	if err == nil && status == http.StatusOK {
		return true
	}
	c.refused(w, r, s, status, err, what, hide)
	return false
}

// refused renders an API answer that was not a success.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, s *session, status int, err error, what string, hide bool) {
	switch {
	case status == http.StatusUnauthorized:
		c.setCookie(w, r, "", -1)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	case status == http.StatusNotFound || (status == http.StatusForbidden && hide):
		c.render(w, http.StatusNotFound, "error", c.withSession(s, page{Title: "Not found", Error: "No such " + what + ", or you may not see it."}))
	case status == http.StatusForbidden:
		msg := "You may not see this page."
		if err != nil {
			msg = "Refused: " + err.Error() + "."
		}
		c.render(w, http.StatusForbidden, "error", c.withSession(s, page{Title: "Refused", Error: msg}))
	default:
		if status < 400 {
			status = http.StatusInternalServerError
		}
		msg := "The server could not answer."
		if err != nil {
			msg = "The server refused: " + err.Error() + "."
		}
		c.render(w, status, "error", c.withSession(s, page{Title: "Not done", Error: msg}))
	}
}

// act is a form's change: the API call, then on success a redirect to
// back (Post/Redirect/Get, so reloading does not repeat it) and on failure
// a page with the API's reason.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session, method, path string, in any, back string) {
	status, err := c.call(r, s, method, path, in, nil)
	if err != nil || status >= 300 {
		c.failed(w, r, s, status, err)
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// failed renders a change the API refused, with its reason and status.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, status int, err error) {
	if status == http.StatusUnauthorized {
		c.setCookie(w, r, "", -1)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	if status < 400 {
		status = http.StatusInternalServerError
	}
	msg := "The server could not do it."
	if err != nil {
		msg = "Not done: " + err.Error() + "."
	}
	c.render(w, status, "error", c.withSession(s, page{Title: "Not done", Error: msg}))
}

// callAnswer calls the API and decodes its JSON answer whatever the
// status (GET /healthz answers 503 with the same body when degraded).
func (c *Console) callAnswer(r *http.Request, s *session, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Accept", "application/json")
	if s != nil {
		req.Header.Set("Authorization", "bearer "+s.token)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.api.ServeHTTP(rec, req)
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return rec.status, fmt.Errorf("decoding %s: %w", path, err)
	}
	return rec.status, nil
}

// confirmData is the confirmation step of a change: the question, and a
// form that sends the same fields again with confirm=yes.
type confirmData struct {
	Question, Action, Button, Back string
	Fields                         []field
}

type field struct{ Name, Value string }

// confirmed reports whether the form said confirm=yes; if not, it renders
// the confirmation page (nothing has changed).
func (c *Console) confirmed(w http.ResponseWriter, r *http.Request, s *session, title string, d confirmData) bool {
	if r.PostFormValue("confirm") == "yes" {
		return true
	}
	c.render(w, http.StatusOK, "confirm", c.withSession(s, page{Title: title, Data: d}))
	return false
}

// done is the message a page shows after a change it was redirected from
// (?done=kind&a=&b=): made from a fixed set of sentences, so a link cannot
// put words of its own on the page.
func done(q url.Values) string {
	a, b := q.Get("a"), q.Get("b")
	switch q.Get("done") {
	case "created":
		return fmt.Sprintf("Created service instance %s.", a)
	case "bound":
		return fmt.Sprintf("Bound %s to app %s; the app is being redeployed with its credentials.", a, b)
	case "unbound":
		return fmt.Sprintf("Unbound %s from app %s.", a, b)
	case "revoked":
		return fmt.Sprintf("Revoked token %s; it no longer works.", a)
	case "quota":
		return fmt.Sprintf("Set the app quota of %s to %s.", a, b)
	}
	return ""
}

// doneURL is path?done=kind&a=&b=.
func doneURL(path, kind string, args ...string) string {
	v := url.Values{"done": {kind}}
	for i, k := range []string{"a", "b"} {
		if i < len(args) {
			v.Set(k, args[i])
		}
	}
	return path + "?" + v.Encode()
}

func esc(s string) string { return url.PathEscape(s) }

// formValue is a trimmed form field.
func formValue(r *http.Request, name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
