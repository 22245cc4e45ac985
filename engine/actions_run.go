package engine

// ActAppRun is the action of POST /api/v1/apps/:app/run/: a one-off
// command with the app's release and env (Engine.Run). Whoever may deploy
// the app may run commands in it (the rule of ActAppDeploy): a command sees
// the app's private env and bound credentials, as a deploy of any command
// would. It changes the world, so the route is audited.
const ActAppRun Action = "app.run"

// runRules are the rules of run's actions, added to the policy as
// routeRules are.
var runRules = map[Action]rule{
	ActAppRun: policy[ActAppDeploy],
}

func init() {
	if policy[ActAppDeploy].MinRole == "" {
		panic("engine: app.deploy has no app rule to give app.run")
	}
	for a, r := range runRules {
		if _, dup := policy[a]; dup {
			panic("engine: action " + string(a) + " has two rules")
		}
		policy[a] = r
	}
}
