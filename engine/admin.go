package engine

import (
	"context"
	"sort"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// ActUserList is the action of listing every user (GET /users): site
// admins only.
const ActUserList Action = "user.list"

// adminRules are the rules of the site admins' routes that are not in the
// policy table already.
var adminRules = map[Action]rule{
	ActUserList: {AdminOnly: true},
}

func init() {
	for a, r := range adminRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}

// UserSummary is one user as a site admin sees it in the list of users:
// never a password hash or keys.
type UserSummary struct {
	Email   string
	Admin   bool // a site admin (by the record or by config admins)
	Created time.Time
	Teams   []string // the teams the user is a member of, sorted
	Quota   Quota    // the user's app quota and what is left of it
}

// Users lists every user, sorted by email (site admins only).
func (s *Engine) Users(ctx context.Context, id *Identity) ([]UserSummary, error) {
	if err := s.Allowed(ctx, id, ActUserList, nil); err != nil {
		return nil, err
	}
	us, err := state.List[state.User](ctx, s.store, state.UsersPrefix)
	if err != nil {
		return nil, err
	}
	ts, err := state.List[state.Team](ctx, s.store, state.TeamsPrefix)
	if err != nil {
		return nil, err
	}
	teamsOf := map[string][]string{}
	for _, t := range ts {
		for _, u := range t.Users {
			teamsOf[u] = append(teamsOf[u], t.Name)
		}
	}
	out := make([]UserSummary, 0, len(us))
	for _, u := range us {
		teams := append([]string{}, teamsOf[u.Email]...)
		sort.Strings(teams)
		limit := s.quotaOf(u)
		out = append(out, UserSummary{
			Email: u.Email, Admin: u.Admin || s.cfg.IsAdmin(u.Email), Created: u.Created, Teams: teams,
			Quota: Quota{Limit: limit, Available: max(limit-u.Owned, 0)},
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}
