package server

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// pageQuery are the query parameters of a paginated list. Without them a
// list answers whole, as it always did. The answer's body keeps its shape
// (a bare array); the cursor of the next page travels in headers: X-Next
// (the cursor alone) and Link (<this list's URL with next=...>; rel="next"),
// both absent on the last page.
var pageQuery = []queryParam{
	{Name: "limit", Type: "integer", Doc: "at most this many items (1 to 1000; default: all); the next page's cursor is then in the X-Next header and the Link header (rel=\"next\"), absent on the last page"},
	{Name: "next", Doc: "the cursor of the page to read (the X-Next header of the page before); opaque"},
}

// pageOf reads a list request's limit and next query parameters.
func pageOf(c *call) (engine.Page, error) {
	q := c.r.URL.Query()
	var p engine.Page
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > engine.MaxPageLimit {
			return p, engine.InvalidField("limit", "limit must be a number from 1 to %d", engine.MaxPageLimit)
		}
		p.Limit = n
	}
	if n := q.Get("next"); n != "" {
		b, err := base64.RawURLEncoding.DecodeString(n)
		if err != nil || len(b) == 0 {
			return p, engine.InvalidField("next", "next is not a cursor this server gave")
		}
		p.After = string(b)
	}
	return p, nil
}

// setNext puts the cursor of the page after this one in the answer's
// headers (none when this page is the last).
func setNext(c *call, next string) {
	if next == "" {
		return
	}
	cur := base64.RawURLEncoding.EncodeToString([]byte(next))
	q := c.r.URL.Query()
	q.Set("next", cur)
	u := url.URL{Path: c.r.URL.Path, RawQuery: q.Encode()}
	h := c.w.Header()
	h.Set("X-Next", cur)
	h.Set("Link", "<"+u.String()+">; rel=\"next\"")
}

// pageSlice pages a list the handler has whole (a short one: the
// platforms, healers, notifiers, an app's procs or maintainers, a user's
// keys, a service's instances): without limit and next it is answered as
// it is; with them, sorted by key, the cursor being the key of the page's
// last item.
func pageSlice[T any](c *call, items []T, key func(T) string) ([]T, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	if p.Limit == 0 && p.After == "" {
		return items, nil
	}
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	out := make([]T, 0, min(len(sorted), max(p.Limit, 0)))
	for _, it := range sorted {
		if p.After != "" && key(it) <= p.After {
			continue
		}
		if p.Limit > 0 && len(out) == p.Limit {
			setNext(c, key(out[len(out)-1]))
			break
		}
		out = append(out, it)
	}
	return out, nil
}

// healerName is the name of a healer as listed ({name: description}).
func healerName(h api.Healer) string {
	for name := range h {
		return name
	}
	return ""
}

// deployedQuery are the query parameters of GET /api/v1/apps/.
var deployedQuery = append([]queryParam{{Name: "apptype", Doc: "only apps of this type: app, service, resource or resource-instance"}}, pageQuery...)

// newestFirst is a page key of a list answered newest first: keys of
// larger n sort first.
func newestFirst(n int64) string {
	return fmt.Sprintf("%020d", uint64(math.MaxInt64-n))
}
