// Package ui is Berth's web console, served by `berth server` at /ui/.
//
// Why it is built this way:
//
//   - Server-rendered pages (Go html/template) with a little vanilla
//     JavaScript, not a front end built with npm: there is no second
//     toolchain to install, pin and audit, no build output to keep in step
//     with the sources, and the pages work (apart from the live log tail and
//     deploy progress) with JavaScript off. html/template escapes every
//     value by context, which is most of what keeps a console safe.
//   - Templates, CSS and JavaScript are embedded with go:embed: the binary
//     is the whole console, nothing is fetched from the internet at run
//     time, no separate process runs.
//   - The pages talk to the same API as the CLI: each page asks the
//     server's own HTTP handler (in process, with the session's token as a
//     bearer token) for the typed answers of package api. Permissions,
//     masking of private values, rate limits on logins and the audit log are
//     therefore exactly the API's; the console adds no path around them.
//   - The session token lives in an HttpOnly, SameSite=Strict cookie
//     scoped to /ui, so the API under / never accepts it: the log tail and
//     the deploy events are proxied under /ui/apps/:app/ (GET only) rather
//     than opening cookie authentication on /api/. Every POST carries a
//     CSRF token (an HMAC of the session token under a key drawn when the
//     server starts) and must come from this host (Origin, or Referer).
//   - Changes that are hard to take back (bind, unbind, revoking a token)
//     ask first: their form posted without confirm=yes answers a
//     confirmation page and changes nothing. Other changes redirect to the
//     page they were made from (Post/Redirect/Get), which says what was
//     done from a fixed set of sentences.
//   - A team token's value is shown once, in the answer to the form that
//     made it (not a redirect: it is never put in a URL, a cookie or the
//     server's memory); the team page lists tokens without values.
//   - Each part of the console keeps its pages in its own file and route
//     table (apps, services, teams, admin; see routes.go). The Admin
//     pages ask the admins-only API (GET /users, GET /api/v1/events):
//     others get its refusal.
package ui
