package engine

import "github.com/berthpaas/berth/engine/state"

// The actions of the releases routes: reading an app's releases and
// deploy history is app.read; a rollback is its own action (so the audit
// log names it) with the rule of app.deploy.
const (
	ActAppRollback Action = "app.rollback"
)

// releaseRules are the rules of the actions above, added to the policy
// table as routeRules are (actions.go).
var releaseRules = map[Action]rule{
	ActAppRollback: {MinRole: state.RoleDeveloper, AppToken: true},
}

func init() {
	for a, r := range releaseRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}
