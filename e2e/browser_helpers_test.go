package e2e

// The browser harness: the web console (/ui/) driven in Debian's Chromium,
// headless, through chromedp. A test opens a browser on a running server
// and acts as a user would:
//
//	br := newBrowser(t, b)
//	br.login(u.Email, u.Password)          // through the login form
//	br.clickNav(`a[href="/ui/apps/hello"]`) // follows a link, waits for the page
//	br.waitText("#deploy-progress", "running")
//	br.screenshot("app")                    // <artifacts>/<Test>-app.png
//
// Every page the browser loads (visit, login, submitForm, clickNav) is
// checked for accessibility (a11yJS) and every message the page writes
// to its console is kept: a JavaScript error, a Content Security Policy
// violation or any other error the browser logs fails the test (see
// checkConsole). When a test fails, the page's screenshot and text are
// saved and logged. Every step has its own timeout.
//
// Chromium comes from Debian (apt-get install chromium), installed by
// tools/chromium/install.sh, which `make services` (and so `make test`)
// runs. A machine without it fails these tests, saying so.
//
// Screenshots go to $BERTH_ARTIFACTS, or e2e/artifacts/ (git-ignored).

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium.
const chromiumPath = "/usr/bin/chromium"

// Timeouts of the browser's steps.
const (
	browserStart = 30 * time.Second // starting Chromium and its first tab
	stepTimeout  = 15 * time.Second // one navigation, query or script
	waitTimeout  = 45 * time.Second // waitText: long enough for a deploy to converge
)

// Browser is one headless Chromium (one tab) on one berth server.
type Browser struct {
	t    *testing.T
	b    *Berth
	ctx  context.Context // the tab's chromedp context (no deadline: each step adds one)
	name string          // the test's name, for the screenshots' files

	mu       sync.Mutex
	messages []string // console errors, exceptions and CSP violations, in order
	// allowed are patterns of console errors a test expects (e.g. the
	// 404 of a page it opens on purpose).
	allowed []*regexp.Regexp
	shots   map[string]int
}

// newBrowser starts Chromium headless on a fresh profile, 1280x900, and
// closes it when the test ends. A missing Chromium fails the test: the
// project's set-up installs it.
func newBrowser(t *testing.T, b *Berth) *Browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is missing (%s: %v): run tools/chromium/install.sh (make services runs it) to install Debian's chromium", chromiumPath, err)
	}
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	br := &Browser{t: t, b: b, ctx: ctx, name: fileName(t.Name()), shots: map[string]int{}}
	// This test's screenshots of an earlier run would mislead.
	old, _ := filepath.Glob(filepath.Join(artifactsDir(t), br.name+"-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	t.Cleanup(func() {
		// Close the browser and wait for it to exit, then remove its
		// profile (a child process may write there a moment longer than
		// the browser lives; t.TempDir's own removal would fail on it).
		done := make(chan struct{})
		go func() { cancelTab(); cancelAlloc(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("Chromium did not stop within 20s")
		}
		for i := 0; i < 50; i++ {
			if err := os.RemoveAll(profile); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Start the browser with no deadline on the context (a deadline there
	// would be the browser's life), bounded by a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting Chromium (%s): %v", chromiumPath, err)
		}
	case <-time.After(browserStart):
		cancelTab()
		t.Fatalf("Chromium did not start within %v", browserStart)
	}

	// Keep what the page writes to its console, and every CSP violation
	// (a securitypolicyviolation listener on every document, reporting
	// through a binding the page cannot see the answers of).
	if err := chromedp.Listen(ctx, br.onEvent); err != nil {
		t.Fatalf("listening to the browser's console: %v", err)
	}
	br.run("installing the CSP violation reporter", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspReporterJS})
		return err
	}))

	// On failure: the page as it was, as a screenshot and as text.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		br.dumpPage()
	})
	// At the end of a passing test, a last look at the console.
	t.Cleanup(func() {
		if !t.Failed() {
			br.checkConsole()
		}
	})
	return br
}

// cspBinding is the function the page's CSP listener calls.
const cspBinding = "__berthCSPViolation"

// cspReporterJS runs in every document before its own scripts.
const cspReporterJS = `document.addEventListener("securitypolicyviolation", function (e) {
  try { window.` + cspBinding + `(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber); } catch (x) {}
});`

// onEvent runs in chromedp's event loop: it must only record.
func (br *Browser) onEvent(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg = "JavaScript exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber)
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("browser log (%s): %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	case *runtime.EventBindingCalled:
		if e.Name != cspBinding {
			return
		}
		msg = "CSP violation: " + e.Payload
	default:
		return
	}
	br.mu.Lock()
	br.messages = append(br.messages, msg)
	br.mu.Unlock()
}

// allowConsole lets console errors matching pattern pass (for example the
// browser's note of a 404 answer the test asked for).
func (br *Browser) allowConsole(pattern string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.allowed = append(br.allowed, regexp.MustCompile(pattern))
}

// consoleProblems returns the console messages seen so far that no
// allowConsole pattern matches, and forgets them all.
func (br *Browser) consoleProblems() []string {
	// A round trip to the page: every event the browser sent before its
	// answer has been recorded (Listen sees events in order).
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`0`))
	cancel()
	br.mu.Lock()
	defer br.mu.Unlock()
	var out []string
next:
	for _, m := range br.messages {
		for _, re := range br.allowed {
			if re.MatchString(m) {
				continue next
			}
		}
		out = append(out, m)
	}
	br.messages = nil
	return out
}

// checkConsole fails the test on console errors, JavaScript exceptions
// and CSP violations of the pages so far.
func (br *Browser) checkConsole() {
	br.t.Helper()
	if p := br.consoleProblems(); len(p) > 0 {
		br.t.Errorf("the browser reported errors on %s:\n  %s", br.location(), strings.Join(p, "\n  "))
	}
}

// run runs one step with the step timeout; failing, it ends the test.
func (br *Browser) run(what string, a chromedp.Action[chromedp.Void]) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, a); err != nil {
		br.t.Fatalf("browser: %s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](br *Browser, expr string, opts ...chromedp.EvaluateOption) T {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		br.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	return fmt.Sprintf("%q", s) // Go's quoting is valid JS for the strings tests use
}

// url is the server's address of path.
func (br *Browser) url(path string) string { return br.b.URL + path }

// location is the page's URL.
func (br *Browser) location() string {
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

// path is the path of the page's URL.
func (br *Browser) path() string {
	br.t.Helper()
	u, err := url.Parse(br.location())
	if err != nil {
		br.t.Fatalf("the page's URL: %v", err)
	}
	return u.Path
}

// visit loads path (on the server) and checks the page; it returns the
// HTTP status of the document.
func (br *Browser) visit(path string) int64 {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(br.url(path)))
	if err != nil {
		br.t.Fatalf("browser: opening %s: %v", path, err)
	}
	br.checkPage()
	if resp == nil {
		return 0
	}
	return resp.Status
}

// clickNav clicks what selector finds (a link or a submit button) and
// waits for the page it leads to; it returns that document's status.
func (br *Browser) clickNav(selector string) int64 {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
	if err != nil {
		br.t.Fatalf("browser: clicking %s on %s and waiting for the next page: %v", selector, br.location(), err)
	}
	br.checkPage()
	if resp == nil {
		return 0
	}
	return resp.Status
}

// click clicks what selector finds, without waiting for a new page.
func (br *Browser) click(selector string) {
	br.t.Helper()
	br.run("clicking "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// submitForm submits the form selector finds with its submit button, as
// a user does, and waits for the answer's page.
func (br *Browser) submitForm(formSelector string) int64 {
	br.t.Helper()
	return br.clickNav(formSelector + ` [type="submit"]`)
}

// field finds an input by its label's text (or takes a CSS selector: a
// string starting with # . [ or naming an element and attribute).
func (br *Browser) field(labelOrSelector string) string {
	br.t.Helper()
	if strings.ContainsAny(labelOrSelector[:1], "#.[") || strings.ContainsAny(labelOrSelector, "[=") {
		return labelOrSelector
	}
	id := eval[string](br, `(function (want) {
  for (const l of document.querySelectorAll("label")) {
    if (l.textContent.trim() === want) {
      const c = l.control;
      if (!c) { return ""; }
      if (!c.id) { c.id = "berth-e2e-" + Math.random().toString(36).slice(2); }
      return c.id;
    }
  }
  return "";
})(`+jsString(labelOrSelector)+`)`)
	if id == "" {
		br.t.Fatalf("browser: no field labelled %q on %s", labelOrSelector, br.location())
	}
	return "#" + id
}

// fill types value into the field labelled labelOrSelector (its old value
// cleared first).
func (br *Browser) fill(labelOrSelector, value string) {
	br.t.Helper()
	sel := br.field(labelOrSelector)
	br.run("filling "+labelOrSelector, chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Clear(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	))
}

// keys types s (kb's keys: "\t" is Tab, "\r" Enter) into whatever has
// the focus, as a keyboard does.
func (br *Browser) keys(s string) {
	br.t.Helper()
	br.run("typing on the keyboard", chromedp.KeyEvent(s))
}

// keysNav is keys for keys that load another page (Enter on a link or in
// a form); it waits for that page and returns its status.
func (br *Browser) keysNav(s string) int64 {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(s))
	if err != nil {
		br.t.Fatalf("browser: typing and waiting for the next page on %s: %v", br.location(), err)
	}
	br.checkPage()
	if resp == nil {
		return 0
	}
	return resp.Status
}

// focused describes the element that has the keyboard focus.
func (br *Browser) focused() string {
	br.t.Helper()
	return eval[string](br, `(function (e) {
  if (!e || e === document.body) { return "(nothing)"; }
  return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.getAttribute("href") ? "[href=" + e.getAttribute("href") + "]" : "") + " " + (e.textContent || "").trim();
})(document.activeElement)`)
}

// text is the rendered text of the first element selector finds.
func (br *Browser) text(selector string) string {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		br.t.Fatalf("browser: reading the text of %s on %s: %v", selector, br.location(), err)
	}
	return s
}

// exists reports whether selector finds an element now.
func (br *Browser) exists(selector string) bool {
	br.t.Helper()
	return eval[bool](br, `document.querySelector(`+jsString(selector)+`) !== null`)
}

// html is the document's HTML as the browser holds it now.
func (br *Browser) html() string {
	br.t.Helper()
	return eval[string](br, `document.documentElement.outerHTML`)
}

// waitText waits until the text of the element selector finds contains
// substring (up to waitTimeout), without reloading the page.
func (br *Browser) waitText(selector, substring string) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, waitTimeout)
	defer cancel()
	expr := `(function (sel, want) { const e = document.querySelector(sel); return e !== null && e.textContent.includes(want); })(` +
		jsString(selector) + `, ` + jsString(substring) + `)`
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		got := "(no such element)"
		if br.exists(selector) {
			got = fmt.Sprintf("%q", br.text(selector))
		}
		br.t.Fatalf("browser: waiting for %q in %s on %s: %v; its text is %s", substring, selector, br.location(), err, got)
	}
}

// cookie is the value of the named cookie of the server ("" when absent).
func (br *Browser) cookie(name string) string {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{br.url("/ui/")}})
	if err != nil {
		br.t.Fatalf("browser: reading cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie puts a cookie for the server's /ui into the browser, as an
// old copy of a session would be.
func (br *Browser) setCookie(name, value string) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: name, Value: value, URL: br.url("/ui"), Path: "/ui", HTTPOnly: new(true), SameSite: network.CookieSameSiteStrict,
	})
	if err != nil {
		br.t.Fatalf("browser: setting cookie %s: %v", name, err)
	}
}

// login logs in through the login form and checks that it lands on the
// apps list.
func (br *Browser) login(email, password string) {
	br.t.Helper()
	br.visit("/ui/login")
	br.fill("Email", email)
	br.fill("Password", password)
	if st := br.submitForm(`form[action="/ui/login"]`); st != 200 {
		br.t.Fatalf("logging in as %s: the page after the form answered %d: %s", email, st, br.text("main"))
	}
	if p := br.path(); p != "/ui/apps" {
		br.t.Fatalf("logging in as %s led to %s, not /ui/apps: %s", email, p, br.text("main"))
	}
}

// logout clicks Log out and checks that it lands on the login page.
func (br *Browser) logout() {
	br.t.Helper()
	br.clickNav(`form[action="/ui/logout"] button`)
	if p := br.path(); p != "/ui/login" {
		br.t.Fatalf("logging out led to %s, not /ui/login: %s", p, br.text("main"))
	}
}

// setViewport emulates a screen of width x height CSS pixels; mobile
// adds a phone's mobile and touch emulation.
func (br *Browser) setViewport(width, height int64, mobile bool) {
	br.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	br.run(fmt.Sprintf("emulating a %dx%d screen", width, height), chromedp.EmulateViewport(width, height, opts...))
}

// artifactsDir is where screenshots go: $BERTH_ARTIFACTS, or e2e/artifacts.
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("BERTH_ARTIFACTS")
	if dir == "" {
		dir = "artifacts" // the tests run in e2e/
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("making the artifacts directory: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(s string) string { return strings.Trim(unsafeName.ReplaceAllString(s, "-"), "-") }

// screenshot saves a full-page PNG of the page as <artifacts>/<Test>-name.png
// and logs its path; it returns the path.
func (br *Browser) screenshot(name string) string {
	br.t.Helper()
	png, err := br.capture()
	if err != nil {
		br.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	return br.save(name, png)
}

func (br *Browser) capture() ([]byte, error) {
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.FullScreenshot(100))
}

func (br *Browser) save(name string, png []byte) string {
	br.t.Helper()
	br.mu.Lock()
	br.shots[name]++
	n := br.shots[name]
	br.mu.Unlock()
	base := br.name + "-" + fileName(name)
	if n > 1 {
		base += fmt.Sprintf("-%d", n)
	}
	path := filepath.Join(artifactsDir(br.t), base+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		br.t.Errorf("writing screenshot %s: %v", path, err)
		return ""
	}
	br.t.Logf("screenshot %s: %s", name, path)
	return path
}

// dumpPage saves a screenshot of the page and logs its URL and text, for
// a test that failed. Errors here are only logged.
func (br *Browser) dumpPage() {
	if br.ctx.Err() != nil {
		return
	}
	if png, err := br.capture(); err == nil {
		br.save("failure", png)
	} else {
		br.t.Logf("browser: no failure screenshot: %v", err)
	}
	ctx, cancel := context.WithTimeout(br.ctx, stepTimeout)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		br.t.Logf("browser: the page's text could not be read: %v", err)
		return
	}
	br.t.Logf("browser: the page at %s when the test failed:\n%s", br.location(), text)
	if p := br.consoleProblems(); len(p) > 0 {
		br.t.Logf("browser: console errors:\n  %s", strings.Join(p, "\n  "))
	}
}

// checkPage runs on every page the browser loads: its console so far,
// and the accessibility check.
func (br *Browser) checkPage() {
	br.t.Helper()
	br.checkConsole()
	br.checkA11y()
}

// a11yJS lists what keeps the page from being usable with a screen reader
// or a keyboard: form fields without a label, buttons and links without
// a name, images without alt, a document without lang or a title, not
// exactly one h1, duplicate ids, text whose contrast with its background
// is below WCAG 2 AA.
const a11yJS = `(function () {
  var out = [];
  function byIds(ids) {
    return (ids || "").split(/\s+/).filter(Boolean).map(function (id) {
      var e = document.getElementById(id); return e ? e.textContent : "";
    }).join(" ").trim();
  }
  function aria(e) { return (e.getAttribute("aria-label") || "").trim() || byIds(e.getAttribute("aria-labelledby")); }
  function what(e) {
    var s = e.tagName.toLowerCase();
    if (e.id) { s += "#" + e.id; }
    if (e.getAttribute("name")) { s += "[name=" + e.getAttribute("name") + "]"; }
    if (e.getAttribute("href")) { s += "[href=" + e.getAttribute("href") + "]"; }
    return s;
  }
  if (!(document.documentElement.getAttribute("lang") || "").trim()) { out.push("<html> has no lang"); }
  if (!document.title.trim()) { out.push("the page has no title"); }
  var h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) { out.push("the page has " + h1 + " h1 headings, not one"); }
  document.querySelectorAll("input, select, textarea").forEach(function (e) {
    if (e.type === "hidden") { return; }
    var labelled = Array.prototype.some.call(e.labels || [], function (l) { return l.textContent.trim() !== ""; });
    if (!labelled && !aria(e) && !(e.getAttribute("title") || "").trim()) { out.push(what(e) + " has no label"); }
  });
  document.querySelectorAll("button, a[href], [role=button], input[type=submit], input[type=button], input[type=reset]").forEach(function (e) {
    var name = (e.textContent || "").trim() || aria(e) || (e.getAttribute("title") || "").trim() ||
      ((e.tagName === "INPUT") ? (e.value || "").trim() : "") ||
      Array.prototype.map.call(e.querySelectorAll("img[alt]"), function (i) { return i.alt; }).join("").trim();
    if (!name) { out.push(what(e) + " has no accessible name"); }
  });
  document.querySelectorAll("img").forEach(function (e) {
    if (!e.hasAttribute("alt")) { out.push("img " + (e.getAttribute("src") || "") + " has no alt"); }
  });
  // Contrast (WCAG 2 AA): every visible element with its own text
  // against the first opaque background behind it: 4.5:1, or 3:1 for
  // large text (24px, or 18.66px bold).
  function rgb(c) {
    var m = (c || "").match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/);
    return m ? { r: +m[1], g: +m[2], b: +m[3], a: m[4] === undefined ? 1 : +m[4] } : null;
  }
  function lum(c) {
    return [c.r, c.g, c.b].map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
      .reduce(function (acc, v, i) { return acc + v * [0.2126, 0.7152, 0.0722][i]; }, 0);
  }
  function background(e) {
    for (; e && e.nodeType === 1; e = e.parentElement) {
      var b = rgb(getComputedStyle(e).backgroundColor);
      if (b && b.a >= 1) { return b; }
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  }
  document.querySelectorAll("body *").forEach(function (e) {
    var own = Array.prototype.some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim() !== ""; });
    if (!own || !e.getClientRects().length) { return; }
    var st = getComputedStyle(e);
    if (st.visibility === "hidden" || +st.opacity === 0) { return; }
    var r = e.getBoundingClientRect();
    if (r.right < 0 || r.bottom < 0) { return; } // moved off screen (the skip link)
    var fg = rgb(st.color); if (!fg) { return; }
    var l1 = lum(fg), l2 = lum(background(e));
    var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    var size = parseFloat(st.fontSize), bold = (+st.fontWeight || 400) >= 700;
    var need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) { out.push(what(e) + " text \"" + e.textContent.trim().slice(0, 30) + "\" has contrast " + ratio.toFixed(2) + ":1, below " + need + ":1"); }
  });
  var seen = {};
  document.querySelectorAll("[id]").forEach(function (e) {
    if (seen[e.id]) { out.push("id " + e.id + " is used twice"); }
    seen[e.id] = true;
  });
  return out;
})()`

// checkA11y runs a11yJS on the page and fails the test on what it finds.
func (br *Browser) checkA11y() {
	br.t.Helper()
	if v := eval[[]string](br, a11yJS); len(v) > 0 {
		br.t.Errorf("accessibility of %s:\n  %s", br.location(), strings.Join(v, "\n  "))
	}
}

// noHorizontalScroll fails the test when the document is wider than the
// window (the user would have to scroll sideways). With mobile emulation
// the browser widens window.innerWidth to a document that overflows (it
// zooms out), so the document is also held to the layout viewport's width
// (documentElement.clientWidth, the screen's width).
func (br *Browser) noHorizontalScroll() {
	br.t.Helper()
	type widths struct {
		Scroll int      `json:"scroll"`
		Inner  int      `json:"inner"`
		Client int      `json:"client"`
		Wide   []string `json:"wide"`
	}
	w := eval[widths](br, `(function () {
  var inner = Math.min(window.innerWidth, document.documentElement.clientWidth), wide = [];
  document.querySelectorAll("body *").forEach(function (e) {
    var r = e.getBoundingClientRect();
    var spills = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === "visible";
    if ((r.right > inner + 0.5 || spills) && !e.closest(".table-wrap, pre")) { wide.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "") + " to " + Math.round(r.right) + "px"); }
  });
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, client: document.documentElement.clientWidth, wide: wide.slice(0, 10)};
})()`)
	if w.Scroll > w.Inner || w.Scroll > w.Client {
		br.t.Errorf("%s scrolls sideways: the document is %dpx wide, the window %dpx (layout viewport %dpx); too wide: %s",
			br.location(), w.Scroll, w.Inner, w.Client, strings.Join(w.Wide, ", "))
	}
}
