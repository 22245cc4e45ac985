// Package python_test runs the Python example broker (plugin.py) as Berth
// does: a plugin process started by a plugins.Manager over go-plugin's
// handshake, gRPC protocol version 2 and AutoMTLS, against the brokertest
// conformance suite.
package python_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// python is Debian's interpreter, which has python3-grpcio and
// python3-protobuf (a python3 earlier on PATH, e.g. pyenv's, may not).
const python = "/usr/bin/python3"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requirePython fails the test (it does not skip it) when the interpreter
// lacks grpc: the project's set-up installs it.
func requirePython(t testing.TB) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import grpc and google.protobuf (%v: %s); install them with `bash tools/python/install.sh` "+
			"(part of `make services`), i.e. apt-get install -y python3-grpcio python3-protobuf python3-grpc-tools",
			python, err, strings.TrimSpace(string(out)))
	}
}

func pluginPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("plugin.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newBroker starts plugin.py as <plugin_dir>/berth-broker-pyexample (a
// symlink, as an operator would install it) through a new plugins.Manager,
// hence a new process, configured with settings.
func newBroker(t testing.TB, settings map[string]string) broker.Broker {
	t.Helper()
	requirePython(t)
	dir := t.TempDir()
	if err := os.Symlink(pluginPath(t), filepath.Join(dir, plugins.ExternalPrefix+"pyexample")); err != nil {
		t.Fatal(err)
	}
	m := plugins.NewManager(plugins.ManagerConfig{
		PluginDir:   dir,
		Logger:      hclog.New(&hclog.LoggerOptions{Name: "pytest", Level: hclog.Info, Output: testWriter{t}}),
		CallTimeout: 20 * time.Second,
	})
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := m.Broker(ctx, brokertest.RandomID("py-"), "pyexample", settings)
	if err != nil {
		t.Fatalf("starting the Python broker: %v", err)
	}
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // logging after the test ended panics
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestConformance: the Python broker, keeping its state in a directory,
// passes the same suite as the Go brokers, including two processes sharing
// the state and a restart.
func TestConformance(t *testing.T) {
	requirePython(t)
	state := t.TempDir()
	brokertest.Run(t, func(t testing.TB) broker.Broker {
		return newBroker(t, map[string]string{"state_dir": state})
	}, brokertest.Checker{Persistent: true})
}

// TestConformanceInMemory: without state_dir it keeps its state in memory.
func TestConformanceInMemory(t *testing.T) {
	requirePython(t)
	brokertest.Run(t, func(t testing.TB) broker.Broker { return newBroker(t, nil) }, brokertest.Checker{})
}

// TestErrorsArriveTyped: each kind of error the Python broker raises
// reaches the host as that kind (errors.Is the sentinel), with its message.
func TestErrorsArriveTyped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newBroker(t, nil)
	check := func(what string, err, kind error, msg string) {
		t.Helper()
		if !errors.Is(err, kind) || err.Error() != msg || broker.IsTransport(err) {
			t.Errorf("%s: err = %v (transport %v), want %v with the message %q", what, err, broker.IsTransport(err), kind, msg)
		}
		for _, other := range []error{broker.ErrGone, broker.ErrNotFound, broker.ErrConflict, broker.ErrBadRequest, broker.ErrUnavailable} {
			if other != kind && errors.Is(err, other) {
				t.Errorf("%s: err = %v is also %v", what, err, other)
			}
		}
	}
	_, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: "nope"})
	check("Deprovision of a missing instance", err, broker.ErrGone, `gone: instance 'nope' does not exist`)
	_, err = b.Bind(ctx, broker.BindRequest{InstanceID: "nope", BindingID: "b", AppName: "app"})
	check("Bind on a missing instance", err, broker.ErrNotFound, `not found: instance 'nope' does not exist`)
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "one"}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Provision(ctx, broker.ProvisionRequest{InstanceID: "one", Params: map[string]string{"size": "big"}})
	check("Provision with other parameters", err, broker.ErrConflict, `conflict: instance 'one' already exists with different parameters`)
	_, err = b.Provision(ctx, broker.ProvisionRequest{InstanceID: "One"})
	check("Provision of an invalid ID", err, broker.ErrBadRequest,
		`bad request: invalid instance_id 'One': want 1 to 63 characters from [a-z0-9-], starting with a letter and not ending with '-'`)
	err = b.Configure(ctx, map[string]string{"state_dir": "relative/dir"})
	check("Configure with a bad state_dir", err, broker.ErrBadRequest, `bad request: state_dir 'relative/dir' is not an absolute path to a directory`)

	// Its "backing server" (the state directory) going away is the
	// broker's own UNAVAILABLE, not a failure of the plugin process.
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.Configure(ctx, map[string]string{"state_dir": state}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	_, err = b.Provision(ctx, broker.ProvisionRequest{InstanceID: "two"})
	check("Provision with the state directory gone", err, broker.ErrUnavailable,
		"broker unavailable: state_dir '"+state+"': No such file or directory")
}

// TestHandshakeAndAutoMTLS runs plugin.py by hand the way go-plugin does
// and checks what it promises: the handshake line with its certificate, a
// server that takes only the host's certificate, and the health service
// reporting "plugin" as SERVING.
func TestHandshakeAndAutoMTLS(t *testing.T) {
	requirePython(t)
	clientCert, clientPEM := selfSigned(t)
	cmd := exec.Command(python, pluginPath(t))
	cmd.Env = append(os.Environ(), broker.Handshake.MagicCookieKey+"="+broker.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1,2", "PLUGIN_CLIENT_CERT="+string(clientPEM))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the handshake line: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 6 || parts[0] != "1" || parts[1] != "2" || parts[2] != "tcp" || !strings.HasPrefix(parts[3], "127.0.0.1:") || parts[4] != "grpc" {
		t.Fatalf("handshake line = %q, want 1|2|tcp|127.0.0.1:PORT|grpc|CERT", line)
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	serverCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	healthOf := func(creds credentials.TransportCredentials) (*healthpb.HealthCheckResponse, error) {
		conn, err := grpc.NewClient(parts[3], grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "plugin"})
	}
	resp, err := healthOf(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{clientCert}, RootCAs: roots, ServerName: "localhost"}))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of plugin over mTLS = %v, %v; want SERVING", resp, err)
	}
	otherCert, _ := selfSigned(t)
	if _, err := healthOf(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{otherCert}, RootCAs: roots, ServerName: "localhost"})); err == nil {
		t.Error("the plugin accepted a client certificate that is not the host's")
	}
	if _, err := healthOf(insecure.NewCredentials()); err == nil {
		t.Error("the plugin answered a plaintext connection")
	}
}

// TestRefusals: run by hand (no cookie) or by a host that does not speak
// protocol version 2, the plugin says why and exits.
func TestRefusals(t *testing.T) {
	requirePython(t)
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "not meant to be run by hand"},
		{[]string{broker.Handshake.MagicCookieKey + "=" + broker.Handshake.MagicCookieValue, "PLUGIN_PROTOCOL_VERSIONS=1"},
			"speaks broker protocol version 2; the host speaks 1"},
	} {
		cmd := exec.Command(python, pluginPath(t))
		cmd.Env = append(os.Environ(), tc.env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("env %v: err = %v, output %q; want a failure saying %q", tc.env, err, out, tc.want)
		}
	}
}

// selfSigned makes a certificate like go-plugin's AutoMTLS client's.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"HashiCorp"}},
		DNSNames:              []string{"localhost"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}
