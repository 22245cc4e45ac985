package engine

import "github.com/berthpaas/berth/engine/state"

// The actions of the token routes (team tokens, and listing and revoking
// app tokens).
const (
	ActTeamTokenCreate Action = "team.token.create"
	ActTeamTokenRead   Action = "team.token.read"
	ActTeamTokenRevoke Action = "team.token.revoke"
	ActAppTokenRead    Action = "app.token.read"
	ActAppTokenRevoke  Action = "app.token.revoke"
)

// tokenRules: the team token routes let any authenticated caller through
// to the engine, which checks membership of the team the request names;
// an app's tokens are seen and revoked by those who may issue them.
var tokenRules = map[Action]rule{
	ActTeamTokenCreate: {},
	ActTeamTokenRead:   {},
	ActTeamTokenRevoke: {},
	ActAppTokenRead:    {MinRole: state.RoleAdmin},
	ActAppTokenRevoke:  {MinRole: state.RoleAdmin},
}

func init() {
	for a, r := range tokenRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}
