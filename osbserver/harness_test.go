package osbserver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/osbserver"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/berthpaas/berth/plugins/mysql"
	"github.com/berthpaas/berth/plugins/osb"
	"github.com/berthpaas/berth/plugins/sdk"
)

// The test binary serves, as a broker plugin, the broker named by
// OSBTEST_BROKER (mysql for Berth's own broker, osb by default).
func TestMain(m *testing.M) {
	brokertest.ServeChild(func() broker.Broker {
		if os.Getenv("OSBTEST_BROKER") == "mysql" {
			return mysql.New(sdk.Logger("mysql"))
		}
		return osb.New(sdk.Logger("osb"))
	})
	goleak.VerifyTestMain(m)
}

const (
	mysqlAddr = "127.0.0.1:3306"
	osbUser   = "platform"
	osbPass   = "s3cret-osb-password"
	osbTeam   = "osbteam"
)

// needMariaDB fails (not skips) the test when MariaDB is down: the
// project's set-up starts it.
func needMariaDB(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", mysqlAddr, 3*time.Second)
	if err != nil {
		t.Fatalf("MariaDB is not reachable on %s (%v): start it (make services)", mysqlAddr, err)
	}
	c.Close()
}

// berth is a Berth engine with the mysql service granted to osbTeam,
// and its OSB endpoint on a real HTTP server.
type berth struct {
	audit *auditLog
	eng   *engine.Engine
	osb   *osbserver.Server
	srv   *httptest.Server
	URL   string // the OSB API's base URL (…/osb)
	stop  func() // stops it all (once)
}

// newBerth starts one; dir holds its Store (a second one on the same dir
// is the same Berth after a restart).
func newBerth(t testing.TB, dir string, async bool) *berth {
	t.Helper()
	needMariaDB(t)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Plugins.CallTimeoutDur = 20 * time.Second
	cfg.BrokerTargets = []*config.BrokerTarget{{Name: "local-mysql", Broker: "mysql",
		Resolved: map[string]string{"host": "127.0.0.1", "port": "3306", "user": "root"}}}
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mgr := plugins.NewManager(plugins.ManagerConfig{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "berth", Level: hclog.Warn, Output: testWriter{t}}),
		Command: func(name string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), "BERTH_BROKERTEST_CHILD=1", "OSBTEST_BROKER="+name)
			return cmd, nil
		},
		CallTimeout: cfg.Plugins.CallTimeoutDur,
	})
	eng, err := engine.New(engine.Deps{Config: cfg, Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: mgr,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "engine", Level: hclog.Warn, Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin := &engine.Identity{Email: "admin@berth.local", Admin: true}
	if _, err := eng.CreateTeam(ctx, admin, osbTeam); err != nil && !errors.Is(err, engine.ErrConflict) {
		t.Fatal(err)
	}
	def := "id: mysql\nbroker: mysql\ntarget: local-mysql\nteam: " + osbTeam + "\ndoc: MySQL databases on the shared MariaDB\n"
	if _, _, err := eng.CreateService(ctx, admin, strings.NewReader(def)); err != nil && !errors.Is(err, engine.ErrConflict) {
		t.Fatal(err)
	}
	audit := &auditLog{}
	o := osbserver.New(eng, osbserver.Config{Username: osbUser, Password: osbPass, Team: osbTeam, Async: async, Audit: audit.record,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "osb", Level: hclog.Warn, Output: testWriter{t}})})
	mux := http.NewServeMux()
	mux.Handle(osbserver.Prefix+"/", o.Handler())
	srv := httptest.NewServer(mux)
	o.Start()
	var once sync.Once
	b := &berth{audit: audit, eng: eng, osb: o, srv: srv, URL: srv.URL + osbserver.Prefix, stop: func() {
		once.Do(func() {
			srv.Close()
			o.Close()
			mgr.Close()
			eng.Close()
			_ = sec.Close()
			_ = st.Close()
		})
	}}
	t.Cleanup(b.stop)
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The mysql checks: what an app does with a binding's credentials.
func openDB(creds map[string]string, database string) (*sql.DB, error) {
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net = creds["MYSQL_USER"], creds["MYSQL_PASSWORD"], "tcp"
	c.Addr = net.JoinHostPort(creds["MYSQL_HOST"], creds["MYSQL_PORT"])
	c.DBName = database
	c.Timeout = 5 * time.Second
	return sql.Open("mysql", c.FormatDSN())
}

func useDB(ctx context.Context, creds map[string]string) error {
	db, err := openDB(creds, creds["MYSQL_DATABASE"])
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY AUTO_INCREMENT, body TEXT)"); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO notes (body) VALUES (?)", "hello"); err != nil {
		return err
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM notes WHERE body = 'hello'").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("row written is not read back")
	}
	return nil
}

func denied(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1044 || me.Number == 1045 || me.Number == 1142 || me.Number == 1049)
}

func isolatedDB(ctx context.Context, creds, other map[string]string) error {
	theirs := other["MYSQL_DATABASE"]
	db, err := openDB(creds, theirs)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); !denied(err) {
		return fmt.Errorf("connecting to database %s: %v; want access denied", theirs, err)
	}
	return nil
}

// restart stops b and starts the same Berth (its Store) again.
func restart(t testing.TB, b *berth, dir string) *berth {
	b.stop()
	return newBerth(t, dir, true)
}

// auditLog collects what the endpoint audits.
type auditLog struct {
	mu      sync.Mutex
	entries []string // "actor action target status"
}

func (a *auditLog) record(actor, action, target string, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, fmt.Sprintf("%s %s %s %d", actor, action, target, status))
}

func (a *auditLog) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.entries...)
}
