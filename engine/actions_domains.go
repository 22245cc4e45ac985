package engine

import "github.com/berthpaas/berth/engine/state"

// The actions of custom domains (tsuru's cname): extra host names the
// router sends to an app's web proc. Reading them is app.read.
const (
	ActAppDomainAdd    Action = "app.domain.add"
	ActAppDomainRemove Action = "app.domain.remove"
)

// domainRules are added to the policy as routeRules are. A developer of
// the app may change its domains; an app token may not (it could take a
// host name for its app).
var domainRules = map[Action]rule{
	ActAppDomainAdd:    {MinRole: state.RoleDeveloper},
	ActAppDomainRemove: {MinRole: state.RoleDeveloper},
}

func init() {
	for a, r := range domainRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}
