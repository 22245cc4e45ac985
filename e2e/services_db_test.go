package e2e

// The story, for each built-in broker on a real server:
//  1. create the service from YAML, an instance, and bind it to a deployed app;
//  2. the app's process writes with the injected env (through the router);
//  3. unbind: the credentials stop working;
//  4. remove the instance: the database is gone.
// Plus isolation: one instance's credentials cannot reach another's data.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/berthpaas/berth/api"
)

// dbKind is what differs between brokers in the story.
type dbKind struct {
	name   string // the broker, and dbapp's kind
	target string // the operator's broker_target the service names
	// targetHCL defines target when the harness's config does not.
	targetHCL string
	endpoint  string   // endpoint.production
	credKeys  []string // variables Bind must answer
	secrets   []string // of those, the ones that carry a password
	// readBack logs in with creds and finds value written by the app.
	readBack func(ctx context.Context, creds map[string]string, value string) error
	// trespass uses a's credentials on b's data; nil means refused.
	trespass func(ctx context.Context, a, b map[string]string) error
	// remember lists secret values in the settings (never to be logged or stored).
	remember []string
	// exists reports, as the server's admin, whether the instance's data
	// (database, keys) exists.
	exists func(ctx context.Context, creds map[string]string) (bool, error)
}

func TestServicesMySQL(t *testing.T) {
	const addr = "127.0.0.1:3306"
	admin := func() *sql.DB {
		cfg := gomysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", addr, 3*time.Second
		c, _ := gomysql.NewConnector(cfg)
		return sql.OpenDB(c)
	}
	{
		db := admin()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.PingContext(ctx)
		cancel()
		db.Close()
		if err != nil {
			t.Skipf("MariaDB is unreachable at %s as root without password (%v): run /work/shared/services-up.sh", addr, err)
		}
	}
	open := func(creds map[string]string, dbName string) *sql.DB {
		cfg := gomysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.DBName = creds["MYSQL_USER"], creds["MYSQL_PASSWORD"], dbName
		cfg.Net, cfg.Addr, cfg.Timeout = "tcp", net.JoinHostPort(creds["MYSQL_HOST"], creds["MYSQL_PORT"]), 3*time.Second
		c, _ := gomysql.NewConnector(cfg)
		return sql.OpenDB(c)
	}
	runDBStoryVariants(t, []string{"embedded", "consul+vault"}, dbKind{
		name:     "mysql",
		endpoint: addr,
		target:   "e2e-mysql",
		credKeys: []string{"MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "DATABASE_URL"},
		secrets:  []string{"MYSQL_PASSWORD", "DATABASE_URL"},
		readBack: func(ctx context.Context, creds map[string]string, value string) error {
			db := open(creds, creds["MYSQL_DATABASE"])
			defer db.Close()
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM e2e_rows WHERE v = ?", value).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%d rows with v=%q, want 1", n, value)
			}
			return nil
		},
		trespass: func(ctx context.Context, a, b map[string]string) error {
			db := open(a, b["MYSQL_DATABASE"]) // a's account, b's database
			defer db.Close()
			if err := db.PingContext(ctx); err == nil {
				return fmt.Errorf("%s opened database %s", a["MYSQL_USER"], b["MYSQL_DATABASE"])
			}
			db2 := open(a, a["MYSQL_DATABASE"])
			defer db2.Close()
			if _, err := db2.ExecContext(ctx, "CREATE TABLE `"+b["MYSQL_DATABASE"]+"`.intruder (x INT)"); err == nil {
				return fmt.Errorf("%s created a table in %s", a["MYSQL_USER"], b["MYSQL_DATABASE"])
			}
			return nil
		},
		exists: func(ctx context.Context, creds map[string]string) (bool, error) {
			db := admin()
			defer db.Close()
			var n int
			err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", creds["MYSQL_DATABASE"]).Scan(&n)
			if err != nil {
				return false, err
			}
			var users int
			err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", creds["MYSQL_USER"]).Scan(&users)
			return n > 0 || users > 0, err
		},
	})
}

func TestServicesRedis(t *testing.T) {
	const addr = "127.0.0.1:6379"
	admin := func() *goredis.Client {
		return goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 3 * time.Second, MaxRetries: -1})
	}
	{
		rdb := admin()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		rdb.Close()
		if err != nil {
			t.Skipf("Redis is unreachable at %s without password (%v): run /work/shared/services-up.sh", addr, err)
		}
	}
	open := func(creds map[string]string) (*goredis.Client, error) {
		opt, err := goredis.ParseURL(creds["REDIS_URL"])
		if err != nil {
			return nil, errors.New("REDIS_URL does not parse")
		}
		opt.DialTimeout, opt.MaxRetries = 3*time.Second, -1
		return goredis.NewClient(opt), nil
	}
	runDBStory(t, dbKind{
		name:     "redis",
		endpoint: addr,
		target:   "e2e-redis",
		credKeys: []string{"REDIS_URL", "REDIS_KEY_PREFIX"},
		secrets:  []string{"REDIS_URL"},
		readBack: func(ctx context.Context, creds map[string]string, value string) error {
			rdb, err := open(creds)
			if err != nil {
				return err
			}
			defer rdb.Close()
			got, err := rdb.Get(ctx, creds["REDIS_KEY_PREFIX"]+"e2e").Result()
			if err != nil {
				return err
			}
			if got != value {
				return fmt.Errorf("read %q, want %q", got, value)
			}
			return nil
		},
		trespass: func(ctx context.Context, a, b map[string]string) error {
			rdb, err := open(a)
			if err != nil {
				return err
			}
			defer rdb.Close()
			if err := rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("a's own credentials do not work: %v", err)
			}
			if v, err := rdb.Get(ctx, b["REDIS_KEY_PREFIX"]+"e2e").Result(); err == nil || errors.Is(err, goredis.Nil) {
				return fmt.Errorf("read b's key (%q, %v)", v, err)
			}
			if err := rdb.Set(ctx, b["REDIS_KEY_PREFIX"]+"intruder", "x", 0).Err(); err == nil {
				return errors.New("wrote a key under b's prefix")
			}
			if keys, err := rdb.Keys(ctx, "*").Result(); err == nil {
				return fmt.Errorf("listed every key: %v", keys)
			}
			return nil
		},
		exists: func(ctx context.Context, creds map[string]string) (bool, error) {
			rdb := admin()
			defer rdb.Close()
			keys, err := rdb.Keys(ctx, creds["REDIS_KEY_PREFIX"]+"*").Result()
			if err != nil {
				return false, err
			}
			u, err := url.Parse(creds["REDIS_URL"])
			if err != nil {
				return false, errors.New("REDIS_URL does not parse")
			}
			users, err := rdb.Do(ctx, "ACL", "USERS").StringSlice()
			if err != nil {
				return false, err
			}
			for _, name := range users {
				if name == u.User.Username() {
					return true, nil
				}
			}
			return len(keys) > 0, nil
		},
	})
}

// startFerretDB starts FerretDB (a MongoDB-wire server) on a free loopback
// port like plugins/mongodb's tests do, and returns its admin URI and
// password. It skips the test when the binary is missing.
func startFerretDB(t *testing.T) (uri, addr, password string) {
	t.Helper()
	cache := os.Getenv("BERTH_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "berth")
	}
	bin := filepath.Join(cache, "bin", "ferretdb")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no MongoDB-wire server: %s is missing (build it with tools/ferretdb/build.sh)", bin)
	}
	dir := t.TempDir()
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	password = hex.EncodeToString(pw)
	addr = freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "ferretdb.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--handler=sqlite", "--sqlite-url=file:"+dir+"/", "--state-dir="+dir,
		"--listen-addr="+addr, "--debug-addr=-", "--telemetry=disable", "--log-level=WARN",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=berthadmin", "--setup-password="+password)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting FerretDB: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	uri = fmt.Sprintf("mongodb://berthadmin:%s@%s/?authSource=admin&authMechanism=SCRAM-SHA-256", password, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerSelectionTimeout(2*time.Second))
		if err == nil {
			err = c.Ping(ctx, nil)
			_ = c.Disconnect(context.Background())
		}
		cancel()
		if err == nil {
			return uri, addr, password
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "ferretdb.log"))
			t.Fatalf("FerretDB did not come up on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServicesMongoDB(t *testing.T) {
	adminURI, addr, adminPW := startFerretDB(t)
	t.Setenv("BERTH_E2E_MONGODB_URI", adminURI) // the server reads it (secret_env)
	connect := func(ctx context.Context, uri string) (*mongo.Client, error) {
		return mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerSelectionTimeout(3*time.Second).SetConnectTimeout(3*time.Second))
	}
	runDBStory(t, dbKind{
		name:     "mongodb",
		endpoint: addr,
		remember: []string{adminPW},
		// FerretDB v1 cannot scope a user to a database (see plugins/mongodb).
		// The admin URI (with its password) comes from the environment.
		target: "e2e-mongodb",
		targetHCL: "broker_target \"e2e-mongodb\" {\n  broker = \"mongodb\"\n" +
			"  settings = { meta_database = \"berth_broker_e2e\", allow_unscoped_users = \"true\" }\n" +
			"  secret_env = { uri = \"BERTH_E2E_MONGODB_URI\" }\n}\n",
		credKeys: []string{"MONGODB_URI", "MONGODB_DATABASE"},
		secrets:  []string{"MONGODB_URI"},
		readBack: func(ctx context.Context, creds map[string]string, value string) error {
			c, err := connect(ctx, creds["MONGODB_URI"])
			if err != nil {
				return err
			}
			defer func() { _ = c.Disconnect(context.Background()) }()
			n, err := c.Database(creds["MONGODB_DATABASE"]).Collection("e2e").CountDocuments(ctx, bson.D{{Key: "v", Value: value}})
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%d documents with v=%q, want 1", n, value)
			}
			return nil
		},
		// a's user logging in to b's database (its authSource) is refused.
		// FerretDB v1 does not enforce roles, so a logged-in user reading
		// another database is not checked here (plugins/mongodb documents it).
		trespass: func(ctx context.Context, a, b map[string]string) error {
			uri := strings.ReplaceAll(a["MONGODB_URI"], a["MONGODB_DATABASE"], b["MONGODB_DATABASE"])
			c, err := connect(ctx, uri)
			if err != nil {
				return nil
			}
			defer func() { _ = c.Disconnect(context.Background()) }()
			if err := c.Ping(ctx, nil); err == nil {
				return fmt.Errorf("logged in to %s with %s's credentials", b["MONGODB_DATABASE"], a["MONGODB_DATABASE"])
			}
			return nil
		},
		exists: func(ctx context.Context, creds map[string]string) (bool, error) {
			c, err := connect(ctx, adminURI)
			if err != nil {
				return false, err
			}
			defer func() { _ = c.Disconnect(context.Background()) }()
			dbs, err := c.ListDatabaseNames(ctx, bson.D{})
			if err != nil {
				return false, err
			}
			for _, d := range dbs {
				if d == creds["MONGODB_DATABASE"] {
					return true, nil
				}
			}
			return false, nil
		},
	})
}

// runDBStoryVariants runs the story on the named backend variants (see
// backendVariants): with Consul and Vault, the harness's secret check also
// searches Consul KV.
func runDBStoryVariants(t *testing.T, variants []string, k dbKind) {
	for _, name := range variants {
		t.Run(name, func(t *testing.T) {
			for _, v := range backendVariants {
				if v.name == name {
					runDBStoryOn(t, v.opts(t), k)
					return
				}
			}
			t.Fatalf("no backend variant %q", name)
		})
	}
}

// runDBStory is the story for one broker, on the embedded backends.
func runDBStory(t *testing.T, k dbKind) { runDBStoryOn(t, Options{}, k) }

func runDBStoryOn(t *testing.T, opts Options, k dbKind) {
	appBin := svcBuildProgram(t, "dbapp", t.TempDir(), "dbapp")
	opts.ExtraHCL += "plugins {\n  call_timeout = \"20s\"\n}\n" + k.targetHCL
	b := startBerth(t, opts)
	u, team := serviceOwner(t, b, k.name+"owner")
	for _, v := range k.remember {
		b.remember(v, "a secret in the "+k.name+" service's settings")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// 1. The service, from YAML.
	svc := b.unique("e2e" + k.name)
	def := fmt.Sprintf("id: %s\nbroker: %s\nendpoint: {production: %q}\nteam: %s\ntarget: %s\n", svc, k.name, k.endpoint, team, k.target)
	r := b.do(t, "POST", "/services", u, yamlBody(def)).want(t, http.StatusOK)
	for _, v := range k.remember {
		if strings.Contains(string(r.Raw), v) {
			t.Errorf("POST /services echoes a secret of the settings: %s", r)
		}
	}
	// Instance names are global on the database server: make them unique per run.
	run := randHex(3)
	instA, instB := "e2e-"+run+"-a", "e2e-"+run+"-b"
	t.Cleanup(func() { svcCleanupInstances(t, b, u, instA, instB) })
	r = b.do(t, "POST", "/services/instances", u, map[string]any{"name": instA, "service_name": svc}).want(t, http.StatusOK)
	if r.Str("state") != "ready" {
		t.Errorf("a provisioned instance answers state %q: %s", r.Str("state"), r)
	}
	// Duplicate instance names: 409; the first is untouched.
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": instA, "service_name": svc}).want(t, http.StatusConflict)
	if r := b.do(t, "GET", "/services/instances/"+instA+"/status", u, nil).want(t, http.StatusOK); r.Str("state") != "ready" || r.Str("broker") != "succeeded" {
		t.Errorf("status after a refused duplicate: %s", r)
	}

	// A deployed app running dbapp; it has no credentials yet.
	app := b.unique(k.name + "app")
	b.createApp(t, u, app)
	mv := metaVersion()
	b.do(t, "POST", "/api/v1/repos/"+app+"/push/", u, map[string]any{
		"meta_version": mv,
		"web":          map[string]any{"cmd": appBin, "port": 8080, "memory": "64m", "num_instances": 1, "healthcheck": "/healthz"},
	}).want(t, http.StatusCreated)
	b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	svcWaitRunning(t, b, u, app)
	if names := svcAppEnvNames(t, b, app); len(names) != 0 {
		t.Fatalf("before any bind the app already has %v", names)
	}

	// A second instance, for the lease and isolation checks.
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": instB, "service_name": svc}).want(t, http.StatusOK)

	// Bind: the answer is the env the app gets; the app is redeployed.
	r = b.do(t, "PUT", "/services/instances/"+instA+"/"+app, u, nil).want(t, http.StatusOK)
	credsA := bindCreds(t, b, r, k)
	// The redeploy holds the app's lease (released when the reconciler sees
	// it running, at least one 500ms progress tick later): a second
	// operation meanwhile is 409.
	if r := b.do(t, "PUT", "/services/instances/"+instB+"/"+app, u, nil).want(t, http.StatusConflict); !strings.Contains(r.Str("error"), "busy") {
		t.Errorf("a bind during the redeploy is refused without saying the app is busy: %s", r)
	}
	svcWaitRunning(t, b, u, app)
	b.do(t, "PUT", "/services/instances/"+instA+"/"+app, u, nil).want(t, http.StatusConflict) // binding twice
	if got := instanceApps(t, b, u, instA); !svcSameStrings(got, []string{app}) {
		t.Errorf("the instance's apps after bind: %v", got)
	}
	if raw := string(b.do(t, "GET", "/services/instances/"+instA, u, nil).Raw); strings.Contains(raw, credsA[k.secrets[0]]) {
		t.Errorf("GET /services/instances/%s shows credentials", instA)
	}

	// 2. The app's process writes with the injected env.
	if names := svcAppEnvNames(t, b, app); !svcSameStrings(names, k.credKeys) {
		t.Errorf("the app's service variables are %v, want %v", names, k.credKeys)
	}
	value := "row-" + randHex(6)
	code, body, raw := svcRouterDo(t, b, "POST", app, "/write?kind="+k.name+"&value="+value)
	if code != http.StatusOK || body["found"] != true {
		t.Fatalf("the app could not write through its binding: %d %s", code, raw)
	}
	if err := k.readBack(ctx, credsA, value); err != nil {
		t.Fatalf("reading the app's write with the bind's credentials: %v", err)
	}
	if ok, err := k.exists(ctx, credsA); err != nil || !ok {
		t.Fatalf("the instance's data is not on the server (%v, %v)", ok, err)
	}

	// Isolation: B's credentials cannot reach A's data, nor A's B's. B is
	// bound to an app that is registered but not deployed.
	app2 := b.unique(k.name + "idle")
	b.createApp(t, u, app2)
	credsB := bindCreds(t, b, b.do(t, "PUT", "/services/instances/"+instB+"/"+app2, u, nil).want(t, http.StatusOK), k)
	if err := k.trespass(ctx, credsB, credsA); err != nil {
		t.Errorf("instance B's credentials reach instance A: %v", err)
	}
	if err := k.trespass(ctx, credsA, credsB); err != nil {
		t.Errorf("instance A's credentials reach instance B: %v", err)
	}
	if err := k.readBack(ctx, credsB, value); err == nil {
		t.Errorf("instance B sees the row written into instance A")
	}

	// Unbinding what is not bound: 404.
	b.do(t, "DELETE", "/services/instances/"+instB+"/"+app, u, nil).want(t, http.StatusNotFound)
	// DELETE /services while it has instances: 403.
	b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusForbidden)

	// 3. Unbind: the credentials stop working; the app loses them.
	b.do(t, "DELETE", "/services/instances/"+instA+"/"+app, u, nil).want(t, http.StatusOK)
	if err := k.readBack(ctx, credsA, value); err == nil {
		t.Errorf("the credentials still work after unbind")
	} else {
		t.Logf("after unbind, the credentials are refused: %v", err)
	}
	svcWaitRunning(t, b, u, app)
	if names := svcAppEnvNames(t, b, app); len(names) != 0 {
		t.Errorf("after unbind the app still has %v", names)
	}
	if code, _, raw := svcRouterDo(t, b, "POST", app, "/write?kind="+k.name+"&value=x"); code != http.StatusInternalServerError {
		t.Errorf("after unbind the app still writes: %d %s", code, raw)
	}
	b.do(t, "DELETE", "/services/instances/"+instA+"/"+app, u, nil).want(t, http.StatusNotFound)
	if got := instanceApps(t, b, u, instA); len(got) != 0 {
		t.Errorf("the instance's apps after unbind: %v", got)
	}
	// B is untouched by A's unbind.
	if err := k.trespass(ctx, credsB, credsA); err != nil {
		t.Errorf("after A's unbind: %v", err)
	}

	// 4. Remove the instances: their data is gone.
	if ok, err := k.exists(ctx, credsA); err != nil || !ok {
		t.Fatalf("instance A's data vanished before its removal (%v, %v)", ok, err)
	}
	b.do(t, "DELETE", "/services/instances/"+instB, u, nil).want(t, http.StatusForbidden) // still bound to app2
	b.do(t, "DELETE", "/services/instances/"+instA, u, nil).want(t, http.StatusOK)
	if ok, err := k.exists(ctx, credsA); err != nil || ok {
		t.Errorf("instance A's data is still on the server after its removal (%v, %v)", ok, err)
	}
	b.do(t, "GET", "/services/instances/"+instA, u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/instances/"+instA, u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/instances/"+instB+"/"+app2, u, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+instB, u, nil).want(t, http.StatusOK)
	if ok, err := k.exists(ctx, credsB); err != nil || ok {
		t.Errorf("instance B's data is still on the server after its removal (%v, %v)", ok, err)
	}
	b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	b.do(t, "GET", "/services/"+svc, u, nil).want(t, http.StatusNotFound)
}

// bindCreds checks a bind's answer and remembers its secrets.
func bindCreds(t *testing.T, b *Berth, r *Resp, k dbKind) map[string]string {
	t.Helper()
	out := map[string]string{}
	for key, v := range r.Obj() {
		s, ok := v.(string)
		if !ok {
			t.Errorf("bind answered a non-string %s: %s", key, r)
		}
		out[key] = s
	}
	got := []string{}
	for key := range out {
		got = append(got, key)
	}
	sort.Strings(got)
	if !svcSameStrings(got, k.credKeys) {
		t.Fatalf("bind answered the variables %v, want %v", got, k.credKeys)
	}
	for _, key := range k.secrets {
		b.remember(out[key], "the bound "+key)
		if u, err := url.Parse(out[key]); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				b.remember(pw, "the password in the bound "+key)
			}
		}
	}
	return out
}

// svcWaitRunning waits until the app's current operation is running (its
// lease released); a failed deploy fails the test at once.
func svcWaitRunning(t *testing.T, b *Berth, u *User, app string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusOK)
		switch r.Str("state") {
		case "running":
			return
		case "failed":
			t.Fatalf("the deploy of %s failed: %s", app, r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s is not running after 60s: %s", app, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// svcAppEnvNames asks the running app which service variables it has.
func svcAppEnvNames(t *testing.T, b *Berth, app string) []string {
	t.Helper()
	var body map[string]any
	// The router may need a moment to see the new instance.
	eventually(t, 10*time.Second, "the app to answer GET /env through the router", func() bool {
		var code int
		code, body, _ = svcRouterDo(t, b, "GET", app, "/env")
		return code == http.StatusOK
	})
	return svcStrList(body["names"])
}

// svcCleanupInstances removes whatever a failed test left on the database
// servers, through the API (the server is still running when it runs).
func svcCleanupInstances(t *testing.T, b *Berth, u *User, names ...string) {
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", b.URL+"/services/instances/"+name, nil)
		req.Header.Set("Authorization", "bearer "+u.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode == http.StatusNotFound {
			if resp != nil {
				resp.Body.Close()
			}
			cancel()
			continue
		}
		var v api.ServiceInstance
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		for _, app := range v.Apps {
			svcDelete(ctx, b, u, "/services/instances/"+name+"/"+app)
		}
		svcDelete(ctx, b, u, "/services/instances/"+name)
		cancel()
		t.Logf("cleanup: removed leftover instance %s", name)
	}
}

func svcDelete(ctx context.Context, b *Berth, u *User, path string) {
	req, _ := http.NewRequestWithContext(ctx, "DELETE", b.URL+path, nil)
	req.Header.Set("Authorization", "bearer "+u.Token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
