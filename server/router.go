package server

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// register puts the route table into the router. httprouter cannot hold a
// static segment and a parameter at the same place of one method's tree
// (/services/instances beside /services/:name, /users/keys beside
// /users/:email/tokens), so where the table has both, the routes through
// that place are registered under one generic pattern (:p1, :p2, ...) and
// dispatched here, each to its own route, static segments winning over
// parameters from the left. Each route keeps its own action, permission and
// audit record. Every route answers with and without a trailing slash.
func (s *Server) register(table []route) {
	byMethod := map[string][]*route{}
	for i := range table {
		rt := &table[i]
		byMethod[rt.Method] = append(byMethod[rt.Method], rt)
	}
	for method, rts := range byMethod {
		for pattern, group := range genericPatterns(rts) {
			var h httprouter.Handle
			if len(group) == 1 && pattern == group[0].Path {
				h = s.wrap(group[0])
			} else {
				h = s.dispatch(pattern, group)
			}
			s.router.Handle(method, pattern, h)
			if pattern != "/" {
				s.router.Handle(method, pattern+"/", h)
			}
		}
	}
}

func segments(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

func isParam(seg string) bool { return strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") }

// genericPatterns groups one method's routes by the pattern each is
// registered under: its own, or a generic one where it shares a place with
// a route that has a parameter there.
func genericPatterns(rts []*route) map[string][]*route {
	segs := make([][]string, len(rts))
	gen := make([][]string, len(rts))
	maxLen := 0
	for i, rt := range rts {
		segs[i] = segments(rt.Path)
		gen[i] = append([]string(nil), segs[i]...)
		maxLen = max(maxLen, len(segs[i]))
	}
	for depth := 0; depth < maxLen; depth++ {
		groups := map[string][]int{}
		for i := range rts {
			if len(segs[i]) > depth {
				key := strings.Join(gen[i][:depth], "/")
				groups[key] = append(groups[key], i)
			}
		}
		for _, idx := range groups {
			distinct := map[string]bool{}
			param := false
			for _, i := range idx {
				distinct[segs[i][depth]] = true
				param = param || isParam(segs[i][depth])
			}
			if !param || len(distinct) == 1 {
				continue
			}
			for _, i := range idx {
				gen[i][depth] = ":p" + strconv.Itoa(depth)
			}
		}
	}
	out := map[string][]*route{}
	for i, rt := range rts {
		p := "/" + strings.Join(gen[i], "/")
		out[p] = append(out[p], rt)
	}
	return out
}

// dispatch serves the routes registered under one generic pattern: the
// first whose static segments match (static before parameter, from the
// left) gets the request, with its own parameter names.
func (s *Server) dispatch(pattern string, group []*route) httprouter.Handle {
	type candidate struct {
		segs []string
		h    httprouter.Handle
	}
	cands := make([]candidate, len(group))
	for i, rt := range group {
		cands[i] = candidate{segments(rt.Path), s.wrap(rt)}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i].segs, cands[j].segs
		for k := 0; k < len(a) && k < len(b); k++ {
			if pa, pb := isParam(a[k]), isParam(b[k]); pa != pb {
				return !pa
			}
		}
		return false
	})
	gen := segments(pattern)
	notFound := jsonStatusHandler(http.StatusNotFound, "no such endpoint")
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		vals := make([]string, len(gen))
		for k, g := range gen {
			if isParam(g) {
				vals[k] = ps.ByName(g[1:])
			} else {
				vals[k] = g
			}
		}
	next:
		for _, c := range cands {
			var own httprouter.Params
			for k, seg := range c.segs {
				switch {
				case isParam(seg):
					own = append(own, httprouter.Param{Key: seg[1:], Value: vals[k]})
				case seg != vals[k]:
					continue next
				}
			}
			c.h(w, r, own)
			return
		}
		notFound.ServeHTTP(w, r)
	}
}
