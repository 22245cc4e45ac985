package mongodb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/berthpaas/berth/plugins/mongodb"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mongostore"
	"github.com/berthpaas/berth/plugins/sdk/storetest"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.uber.org/goleak"
)

// The server under test: $BERTH_MONGODB_URI (a real MongoDB), or else a
// FerretDB started here from ${BERTH_CACHE:-$HOME/.cache/berth}/bin/ferretdb
// (built by tools/ferretdb/build.sh) on a free loopback port.
var (
	serverURI  string
	skipReason string
	isFerret   bool
)

func TestMain(m *testing.M) {
	brokertest.ServeChild(func() broker.Broker { return mongodb.New(sdk.Logger("broker.mongodb")) })
	goleak.VerifyTestMain(stopAfterRun{m, startServer()})
}

// stopAfterRun stops the FerretDB server after the tests, before the leak
// check.
type stopAfterRun struct {
	m    *testing.M
	stop func()
}

func (r stopAfterRun) Run() int {
	code := r.m.Run()
	r.stop()
	return code
}

func ferretBinary() string {
	cache := os.Getenv("BERTH_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "berth")
	}
	return filepath.Join(cache, "bin", "ferretdb")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startServer() (stop func()) {
	if uri := os.Getenv("BERTH_MONGODB_URI"); uri != "" {
		serverURI = uri
		return func() {}
	}
	bin := ferretBinary()
	if _, err := os.Stat(bin); err != nil {
		skipReason = fmt.Sprintf("no MongoDB-wire server: %s is missing (run tools/ferretdb/build.sh) and BERTH_MONGODB_URI is not set", bin)
		return func() {}
	}
	dir, err := os.MkdirTemp("", "berth-ferretdb-")
	if err != nil {
		skipReason = err.Error()
		return func() {}
	}
	port, err := freePort()
	if err != nil {
		skipReason = err.Error()
		return func() {}
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, _ := os.Create(filepath.Join(dir, "ferretdb.log"))
	cmd := exec.Command(bin, "--handler=sqlite", "--sqlite-url=file:"+dir+"/", "--state-dir="+dir,
		"--listen-addr="+addr, "--debug-addr=-", "--telemetry=disable", "--log-level=WARN",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=berthadmin", "--setup-password="+password)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		skipReason = fmt.Sprintf("starting FerretDB: %v", err)
		return func() {}
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		os.RemoveAll(dir)
	}
	uri := fmt.Sprintf("mongodb://berthadmin:%s@%s/?authSource=admin&authMechanism=SCRAM-SHA-256", password, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := ping(ctx, uri)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "ferretdb.log"))
			skipReason = fmt.Sprintf("FerretDB did not come up on %s: %v\n%s", addr, err, log)
			return stop
		}
		time.Sleep(200 * time.Millisecond)
	}
	serverURI, isFerret = uri, true
	return stop
}

func ping(ctx context.Context, uri string) error {
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerSelectionTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	return c.Ping(ctx, nil)
}

func needServer(t testing.TB) {
	t.Helper()
	if serverURI == "" {
		t.Skip(skipReason)
	}
}

func settings() map[string]string {
	s := map[string]string{"uri": serverURI, "meta_database": "berth_broker_test"}
	if isFerret {
		s["allow_unscoped_users"] = "true" // FerretDB v1 has no createUser roles
	}
	return s
}

func connect(ctx context.Context, uri string) (*mongo.Client, error) {
	return mongo.Connect(ctx, options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(3*time.Second).SetConnectTimeout(3*time.Second))
}

func use(ctx context.Context, creds map[string]string) error {
	c, err := connect(ctx, creds["MONGODB_URI"])
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	coll := c.Database(creds["MONGODB_DATABASE"]).Collection("notes")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "body", Value: "hello"}}); err != nil {
		return err
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "body", Value: "hello"}}).Decode(&got); err != nil {
		return err
	}
	return nil
}

// swapDatabase returns creds' URI pointed at (and authenticating against)
// other's database.
func swapDatabase(creds, other map[string]string) string {
	own, theirs := creds["MONGODB_DATABASE"], other["MONGODB_DATABASE"]
	return strings.ReplaceAll(creds["MONGODB_URI"], own, theirs)
}

// authFailed reports whether err is the server refusing a login.
func authFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "AuthenticationFailed")
}

// isolated: a binding's credentials are refused on another instance's
// database. On a server that enforces roles (MongoDB) it also checks that
// the logged-in user cannot write the other database; FerretDB v1 does not
// (see TestCrossDatabaseAuthorization).
func isolated(ctx context.Context, creds, other map[string]string) error {
	theirs := other["MONGODB_DATABASE"]
	if err := use(ctx, map[string]string{"MONGODB_URI": swapDatabase(creds, other), "MONGODB_DATABASE": theirs}); !authFailed(err) {
		return fmt.Errorf("logging in to database %s: %v; want AuthenticationFailed", theirs, err)
	}
	if !isFerret {
		c, err := connect(ctx, creds["MONGODB_URI"])
		if err != nil {
			return err
		}
		defer c.Disconnect(context.Background())
		if _, err := c.Database(theirs).Collection("notes").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err == nil {
			return fmt.Errorf("wrote into database %s", theirs)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	needServer(t)
	brokertest.Run(t, func(t testing.TB) broker.Broker {
		return brokertest.Subprocess(t, "mongodb", settings())
	}, brokertest.Checker{Use: use, Isolated: isolated, Persistent: true})
}

// TestCrossDatabaseAuthorization documents what FerretDB v1 cannot do.
func TestCrossDatabaseAuthorization(t *testing.T) {
	needServer(t)
	if isFerret {
		t.Skip("FerretDB v1.24 implements authentication but not authorization (createUser roles are NotImplemented): " +
			"a logged-in user can read other databases. Set BERTH_MONGODB_URI to a real MongoDB to test this.")
	}
	b := brokertest.Subprocess(t, "mongodb", settings())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var creds [2]map[string]string
	for i := range creds {
		id := brokertest.RandomID("authz-")
		if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); err != nil {
			t.Fatal(err)
		}
		defer b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id})
		r, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "web", AppName: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		creds[i] = r.Credentials
	}
	if err := use(ctx, creds[1]); err != nil {
		t.Fatal(err)
	}
	c, err := connect(ctx, creds[0]["MONGODB_URI"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	n, err := c.Database(creds[1]["MONGODB_DATABASE"]).Collection("notes").CountDocuments(ctx, bson.D{})
	if err == nil {
		t.Errorf("instance 0's user read instance 1's database (%d documents)", n)
	}
}

func TestUnscopedUsersNeedConsent(t *testing.T) {
	needServer(t)
	if !isFerret {
		t.Skip("only a server without createUser roles (FerretDB) refuses scoped users")
	}
	s := settings()
	delete(s, "allow_unscoped_users")
	b := brokertest.Subprocess(t, "mongodb", s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := brokertest.RandomID("scoped-")
	_, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id})
	if !errors.Is(err, broker.ErrBadRequest) || !strings.Contains(err.Error(), "allow_unscoped_users") {
		t.Fatalf("Provision without allow_unscoped_users on FerretDB: err = %v, want ErrBadRequest naming the setting", err)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); !errors.Is(err, broker.ErrGone) {
		t.Errorf("a failed Provision left an instance behind: Deprovision err = %v, want ErrGone", err)
	}
}

func TestCredentialsShape(t *testing.T) {
	needServer(t)
	b := brokertest.Subprocess(t, "mongodb", settings())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := brokertest.RandomID("shape-") + strings.Repeat("x", 63-14)
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	defer b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id})
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "web", AppName: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	db := mongodb.DatabaseName(id)
	if r.Credentials["MONGODB_DATABASE"] != db || len(db) > 63 {
		t.Errorf("MONGODB_DATABASE = %q, want %q", r.Credentials["MONGODB_DATABASE"], db)
	}
	uri := r.Credentials["MONGODB_URI"]
	if !strings.HasPrefix(uri, "mongodb://b-web:") || !strings.HasSuffix(uri, "/"+db+"?authSource="+db) {
		t.Errorf("MONGODB_URI has the wrong shape (user b-web, path and authSource %s)", db)
	}
	if err := use(ctx, r.Credentials); err != nil {
		t.Errorf("63-character instance ID: credentials do not work: %v", err)
	}
}

func TestBadSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := mongodb.New(nil)
	for _, s := range []map[string]string{{"url": "x"}, {"uri": "http://x"}, {"uri": "mongodb://127.0.0.1:1", "allow_unscoped_users": "yes"}} {
		if err := b.Configure(ctx, s); !errors.Is(err, broker.ErrBadRequest) {
			t.Errorf("Configure(%v): err = %v, want ErrBadRequest", s, err)
		}
	}
	// No server is assumed: without uri there is no target.
	if err := b.Configure(ctx, nil); !errors.Is(err, broker.ErrBadRequest) || !strings.Contains(err.Error(), "no target configured") {
		t.Errorf("no settings: err = %v, want ErrBadRequest \"no target configured\"", err)
	}
}

// TestRecordStore runs the SDK's store suite against plugins/sdk/mongostore
// on the server under test (it lives here, where that server is started).
func TestRecordStore(t *testing.T) {
	needServer(t)
	storetest.Run(t, func(t testing.TB, ns string) sdk.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := connect(ctx, serverURI)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Database(ns).Drop(context.Background())
			_ = c.Disconnect(context.Background())
		})
		return mongostore.New(c.Database(ns))
	})
}

// TestOldRecordsImported: the records of a broker from before plugins/sdk
// kept them (collections instances and bindings) still answer after an
// upgrade.
func TestOldRecordsImported(t *testing.T) {
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := connect(ctx, serverURI)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	metaName := "berth_broker_old_" + brokertest.RandomID("")
	meta := c.Database(metaName)
	defer meta.Drop(context.Background())
	id := brokertest.RandomID("old-")
	if _, err := meta.Collection("instances").InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "service_id", Value: "mongodb"},
		{Key: "plan_id", Value: "mongodb-default"}, {Key: "params", Value: `{"note":"old"}`}, {Key: "database", Value: mongodb.DatabaseName(id)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.Collection("bindings").InsertOne(ctx, bson.D{{Key: "_id", Value: id + "/web"}, {Key: "instance_id", Value: id},
		{Key: "binding_id", Value: "web"}, {Key: "app_name", Value: "hello"}, {Key: "params", Value: "{}"},
		{Key: "user", Value: "b-web"}, {Key: "password", Value: "oldpassword"}}); err != nil {
		t.Fatal(err)
	}
	s := settings()
	s["meta_database"] = metaName
	b := brokertest.Subprocess(t, "mongodb", s)
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, Params: map[string]string{"note": "old"}}); err != nil || !r.AlreadyExisted {
		t.Errorf("Provision of an instance of the old records = %+v, %v; want AlreadyExisted", r, err)
	}
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("Provision with other parameters: err = %v, want ErrConflict", err)
	}
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "web", AppName: "hello"})
	db := mongodb.DatabaseName(id)
	if err != nil || !r.AlreadyExisted || r.Credentials["MONGODB_DATABASE"] != db ||
		!strings.HasPrefix(r.Credentials["MONGODB_URI"], "mongodb://b-web:oldpassword@") {
		t.Errorf("Bind of a binding of the old records = %+v, %v; want AlreadyExisted with its credentials", r != nil && r.AlreadyExisted, err)
	}
	names, err := meta.ListCollectionNames(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: bson.A{"instances", "bindings"}}}}})
	if err != nil || len(names) != 0 {
		t.Errorf("old collections %v are left (%v)", names, err)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
		t.Errorf("Deprovision of an instance of the old records: %v", err)
	}
}
