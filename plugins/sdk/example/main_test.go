package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	brokertest.ServeChild(func() broker.Broker { return New() })
	goleak.VerifyTestMain(m)
}

// TestConformance runs the suite against the example broker in a plugin
// subprocess found in a plugin directory, as Berth runs third-party brokers.
func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t testing.TB) broker.Broker {
		return brokertest.Subprocess(t, "example", nil)
	}, brokertest.Checker{}) // no server to check credentials against; state is in memory
}

// TestBuiltBinary builds this command as berth-broker-example and drives it
// through a plugins.Manager, exactly as an operator's plugin_dir would.
func TestBuiltBinary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH: cannot build the example binary")
	}
	dir := t.TempDir()
	build := exec.Command(gobin, "build", "-o", filepath.Join(dir, "berth-broker-example"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, CallTimeout: 10 * time.Second})
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := m.Broker(ctx, "svc", "example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "one"}); err != nil {
		t.Fatal(err)
	}
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: "one", BindingID: "web", AppName: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Credentials["EXAMPLE_INSTANCE"] != "one" || len(r.Credentials["EXAMPLE_TOKEN"]) != 32 {
		t.Errorf("credentials = %v", r.Credentials)
	}
}
