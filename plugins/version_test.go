package plugins_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

const v1Env = "BERTH_TEST_SERVE_V1"

// serveV1 is what a plugin built before protocol version 2 does: the same
// cookie, handshake version 1, the JSON service.
func serveV1(b broker.Broker) {
	hs := broker.Handshake
	hs.ProtocolVersion = broker.ProtocolVersionV1
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         map[string]plugin.Plugin{broker.PluginName: &broker.GRPCPluginV1{Impl: b}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// TestVersion1PluginStillServed: Berth keeps speaking protocol version 1 to
// a plugin that only knows it, with its errors intact, and logs that the
// plugin should be rebuilt.
func TestVersion1PluginStillServed(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	logs := lockedWriter{mu: &mu, w: &buf}
	m := plugins.NewManager(plugins.ManagerConfig{
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}),
		Command: func(string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), v1Env+"=1")
			return cmd, nil
		},
	})
	defer m.Close()
	b, err := m.Broker(ctx(t), "svc", "mysql", nil)
	if err != nil {
		t.Fatalf("starting a version 1 plugin: %v", err)
	}
	pid(t, b) // a real call answered by the subprocess
	if _, err := b.Deprovision(ctx(t), broker.DeprovisionRequest{InstanceID: "x"}); !errors.Is(err, broker.ErrGone) {
		t.Fatalf("Deprovision over version 1: err = %v, want ErrGone", err)
	}
	if err := b.Configure(ctx(t), map[string]string{"fail": "yes"}); !errors.Is(err, broker.ErrBadRequest) || !strings.Contains(err.Error(), "fail=yes") {
		t.Fatalf("Configure over version 1: err = %v, want ErrBadRequest with its message", err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "old protocol version") || !strings.Contains(out, "protocol=1") {
		t.Errorf("no warning about the old protocol in the log:\n%s", out)
	}
}
