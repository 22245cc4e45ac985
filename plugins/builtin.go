package plugins

import (
	"fmt"
	"strings"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/mongodb"
	"github.com/berthpaas/berth/plugins/mysql"
	"github.com/berthpaas/berth/plugins/osb"
	"github.com/berthpaas/berth/plugins/redis"
	"github.com/berthpaas/berth/plugins/sdk"
)

// NewBuiltin returns a new, unconfigured built-in broker by name.
func NewBuiltin(name string) (broker.Broker, error) {
	logger := sdk.Logger("broker." + name)
	switch name {
	case "mysql":
		return mysql.New(logger), nil
	case "mongodb":
		return mongodb.New(logger), nil
	case "redis":
		return redis.New(logger), nil
	case "osb":
		return osb.New(logger), nil
	}
	return nil, fmt.Errorf("%w: %q is not a built-in broker (built-ins: %s)", ErrUnknownPlugin, name, strings.Join(Builtins, ", "))
}

// ServeBuiltin serves built-in broker name as a go-plugin plugin on this
// process's stdin/stdout; it is what `berth plugin <name>` runs. It returns
// an error for an unknown name, and returns when the host goes away.
// Run by hand (without the handshake cookie) it prints a message and exits.
func ServeBuiltin(name string) error {
	b, err := NewBuiltin(name)
	if err != nil {
		return err
	}
	sdk.ServeWithLogger(b, sdk.Logger("broker."+name))
	return nil
}
