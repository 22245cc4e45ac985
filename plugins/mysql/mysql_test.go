package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/berthpaas/berth/plugins/mysql"
	"github.com/berthpaas/berth/plugins/sdk"
	gomysql "github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	brokertest.ServeChild(func() broker.Broker { return mysql.New(sdk.Logger("broker.mysql")) })
	goleak.VerifyTestMain(m)
}

const addr = "127.0.0.1:3306"

func settings() map[string]string {
	return map[string]string{"host": "127.0.0.1", "port": "3306", "user": "root", "meta_database": "berth_broker_test"}
}

func needServer(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("MariaDB/MySQL is not reachable on %s (%v); run /work/shared/services-up.sh or `make services`", addr, err)
	}
	c.Close()
}

// open connects as an app would, with a binding's credentials.
func open(creds map[string]string, database string) (*sql.DB, error) {
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net = creds["MYSQL_USER"], creds["MYSQL_PASSWORD"], "tcp"
	c.Addr = net.JoinHostPort(creds["MYSQL_HOST"], creds["MYSQL_PORT"])
	c.DBName = database
	c.Timeout = 5 * time.Second
	return sql.Open("mysql", c.FormatDSN())
}

// use writes and reads a row in the binding's own database.
func use(ctx context.Context, creds map[string]string) error {
	db, err := open(creds, creds["MYSQL_DATABASE"])
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

// denied reports whether err is the server refusing by privileges.
func denied(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1044 || me.Number == 1045 || me.Number == 1142 || me.Number == 1049)
}

// isolated uses creds against other's database, both by connecting to it
// and by naming it from the binding's own connection.
func isolated(ctx context.Context, creds, other map[string]string) error {
	theirs := other["MYSQL_DATABASE"]
	db, err := open(creds, theirs)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); !denied(err) {
		return fmt.Errorf("connecting to database %s: %v; want access denied", theirs, err)
	}
	own, err := open(creds, creds["MYSQL_DATABASE"])
	if err != nil {
		return err
	}
	defer own.Close()
	if _, err := own.ExecContext(ctx, "CREATE TABLE `"+theirs+"`.stolen (id INT)"); !denied(err) {
		return fmt.Errorf("CREATE TABLE in %s: %v; want access denied", theirs, err)
	}
	if _, err := own.QueryContext(ctx, "SELECT * FROM `"+theirs+"`.notes"); !denied(err) {
		return fmt.Errorf("SELECT from %s: %v; want access denied", theirs, err)
	}
	rows, err := own.QueryContext(ctx, "SHOW DATABASES")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		if name == theirs {
			return fmt.Errorf("SHOW DATABASES lists %s", name)
		}
	}
	return rows.Err()
}

func TestConformance(t *testing.T) {
	needServer(t)
	brokertest.Run(t, func(t testing.TB) broker.Broker {
		return brokertest.Subprocess(t, "mysql", settings())
	}, brokertest.Checker{Use: use, Isolated: isolated, Persistent: true})
}

func TestCredentialsShape(t *testing.T) {
	needServer(t)
	b := brokertest.Subprocess(t, "mysql", settings())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := brokertest.RandomID("shape-") + strings.Repeat("x", 63-14)
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	defer b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id})
	bid := strings.Repeat("b", 63)
	resp, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Credentials
	if c["MYSQL_DATABASE"] != mysql.DatabaseName(id) || len(c["MYSQL_DATABASE"]) > 64 {
		t.Errorf("MYSQL_DATABASE = %q", c["MYSQL_DATABASE"])
	}
	if len(c["MYSQL_USER"]) > 32 || c["MYSQL_USER"] != mysql.BindingUser(id, bid) {
		t.Errorf("MYSQL_USER = %q (must fit 32 characters)", c["MYSQL_USER"])
	}
	want := fmt.Sprintf("mysql://%s:%s@127.0.0.1:3306/%s", c["MYSQL_USER"], c["MYSQL_PASSWORD"], c["MYSQL_DATABASE"])
	if c["DATABASE_URL"] != want || c["MYSQL_HOST"] != "127.0.0.1" || c["MYSQL_PORT"] != "3306" || len(c["MYSQL_PASSWORD"]) < 16 {
		t.Errorf("credentials = %v", c)
	}
	if err := use(ctx, c); err != nil {
		t.Errorf("63-character IDs: credentials do not work: %v", err)
	}
}

func TestNothingOrphaned(t *testing.T) {
	needServer(t)
	b := brokertest.Subprocess(t, "mysql", settings())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := brokertest.RandomID("orphan-")
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	for _, bid := range []string{"one", "two"} {
		if _, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: bid}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := sql.Open("mysql", "root@tcp("+addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	countRecords := func() int {
		var n int
		if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM berth_broker_test.records WHERE k IN (?, ?, ?)",
			"instance/"+id, "binding/"+id+"/one", "binding/"+id+"/two").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countRecords(); n != 3 {
		t.Fatalf("before Deprovision the server holds %d records of the instance and its two bindings, want 3", n)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User LIKE ?", mysql.OwnerUser(id)[:12]+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d users of the deprovisioned instance remain", n)
	}
	if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", mysql.DatabaseName(id)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s remains after Deprovision", mysql.DatabaseName(id))
	}
	if n := countRecords(); n != 0 {
		t.Errorf("%d records of the instance remain", n)
	}
}

func TestBadSettings(t *testing.T) {
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := mysql.New(nil)
	if err := b.Configure(ctx, map[string]string{"hots": "x"}); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("unknown setting: err = %v, want ErrBadRequest", err)
	}
	if err := b.Configure(ctx, map[string]string{"host": "127.0.0.1", "user": "root", "port": "99999"}); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad port: err = %v, want ErrBadRequest", err)
	}
	if err := b.Configure(ctx, map[string]string{"host": "127.0.0.1", "user": "root", "meta_database": "x`; drop"}); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad meta_database: err = %v, want ErrBadRequest", err)
	}
	// No server is assumed: without host and user there is no target.
	for _, s := range []map[string]string{nil, {"port": "3306"}, {"host": "127.0.0.1"}} {
		if err := b.Configure(ctx, s); !errors.Is(err, broker.ErrBadRequest) || !strings.Contains(err.Error(), "no target configured") {
			t.Errorf("Configure(%v): err = %v, want ErrBadRequest \"no target configured\"", s, err)
		}
	}
	if err := b.Configure(ctx, map[string]string{"host": "127.0.0.1", "user": "root", "port": "1"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("unreachable server: err = %v, want ErrUnavailable", err)
	}
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "x"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Provision on an unconfigured broker: err = %v, want ErrUnavailable", err)
	}
}

// TestOldRecordsImported: the records of a broker from before plugins/sdk
// kept them (tables instances and bindings) still answer after an upgrade.
func TestOldRecordsImported(t *testing.T) {
	needServer(t)
	meta := "berth_broker_old_" + brokertest.RandomID("")
	root, err := sql.Open("mysql", "root@tcp("+addr+")/?interpolateParams=true")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	defer root.Exec("DROP DATABASE IF EXISTS `" + meta + "`")
	id, bid := brokertest.RandomID("old-"), "web"
	user := mysql.BindingUser(id, bid)
	for _, q := range []string{
		"CREATE DATABASE `" + meta + "`",
		"CREATE TABLE `" + meta + "`.instances (id VARCHAR(63) NOT NULL PRIMARY KEY, service_id VARCHAR(255) NOT NULL, plan_id VARCHAR(255) NOT NULL," +
			"params TEXT NOT NULL, db_name VARCHAR(64) NOT NULL, owner_user VARCHAR(32) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
		"CREATE TABLE `" + meta + "`.bindings (instance_id VARCHAR(63) NOT NULL, binding_id VARCHAR(63) NOT NULL, app_name VARCHAR(255) NOT NULL," +
			"params TEXT NOT NULL, user_name VARCHAR(32) NOT NULL, password VARCHAR(64) NOT NULL," +
			"created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (instance_id, binding_id))",
		"INSERT INTO `" + meta + "`.instances (id, service_id, plan_id, params, db_name, owner_user) VALUES ('" + id + "', 'mysql', 'mysql-default', '{\"note\":\"old\"}', '" + mysql.DatabaseName(id) + "', '" + mysql.OwnerUser(id) + "')",
		"INSERT INTO `" + meta + "`.bindings (instance_id, binding_id, app_name, params, user_name, password) VALUES ('" + id + "', 'web', 'hello', '{}', '" + user + "', 'oldpassword')",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := settings()
	s["meta_database"] = meta
	b := brokertest.Subprocess(t, "mysql", s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, Params: map[string]string{"note": "old"}}); err != nil || !r.AlreadyExisted {
		t.Errorf("Provision of an instance of the old records = %+v, %v; want AlreadyExisted", r, err)
	}
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("Provision with other parameters: err = %v, want ErrConflict", err)
	}
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: bid, AppName: "hello"})
	if err != nil || !r.AlreadyExisted || r.Credentials["MYSQL_USER"] != user || r.Credentials["MYSQL_PASSWORD"] != "oldpassword" ||
		r.Credentials["DATABASE_URL"] != "mysql://"+user+":oldpassword@127.0.0.1:3306/"+mysql.DatabaseName(id) {
		t.Errorf("Bind of a binding of the old records = %+v, %v; want AlreadyExisted with its credentials", r, err)
	}
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('instances', 'bindings')", meta).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d old tables are left under their names (%v), want them renamed", n, err)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
		t.Errorf("Deprovision of an instance of the old records: %v", err)
	}
}
