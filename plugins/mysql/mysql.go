// Package mysql is the built-in MySQL/MariaDB service broker.
//
// Provision creates a database and an owner user (random password, grants on
// that database only). Bind creates one user per binding with grants on the
// instance's database and returns MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
// MYSQL_PASSWORD, MYSQL_DATABASE and DATABASE_URL. Unbind drops the
// binding's user (and kills its sessions); Deprovision drops the database and
// every user of the instance.
//
// Settings (from the operator's broker_target, or a site admin's service
// definition; without host and user Configure fails "no target configured",
// so a service never lands on a local server as root by default):
//
//	host          admin connection host (required: no default server)
//	port          admin connection port (default 3306)
//	user          admin user (required); needs CREATE USER, GRANT OPTION,
//	              CREATE, DROP and PROCESS/CONNECTION ADMIN to kill sessions
//	password      admin password (default empty)
//	public_host   host given to apps in credentials (default: host)
//	public_port   port given to apps in credentials (default: port)
//	user_host     host part of created accounts (default %)
//	meta_database database holding the broker's state (default berth_broker)
//
// State: the broker is an sdk.NewBroker around this package's provider; its
// records (which instances and bindings exist, with their parameters and
// credentials, so that a repeated Bind returns the same credentials) live in
// the table "records" of meta_database on the server itself
// (plugins/sdk/mysqlstore), so a restarted plugin process picks up where it
// left off. Only the admin user can read it. The records of an earlier
// broker (tables instances and bindings) are imported on Configure.
//
// Names: instance and binding IDs are [a-z0-9-]{1,63}. The database of
// instance ID is "berth_" + ID with "-" replaced by "_" when the ID has at
// most 57 characters, and "berth_" + the first 41 characters + "_" + 16 hex
// digits of SHA-256(ID) otherwise (64 characters, MySQL's limit). User names
// must fit MySQL 5.7's 32-character limit, so they are hash-based:
// "bb" + 10 hex digits of SHA-256(instance ID) + "_owner" for the owner, and
// + "_" + 12 hex digits of SHA-256(binding ID) for a binding. Deprovision
// drops every user with the instance's prefix, so a user left behind by a
// crash mid-Bind is not orphaned.
//
// Every change to an instance holds a server-side named lock (GET_LOCK) for
// that instance, so concurrent calls from several plugin processes are
// serialised and each step is idempotent.
package mysql

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mysqlstore"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"
)

// provider is the MySQL/MariaDB side of the broker: sdk.NewBroker does the
// rest.
type provider struct {
	log hclog.Logger

	mu         sync.RWMutex
	db, lockDB *sql.DB
	cfg        config
}

var _ sdk.Connector = (*provider)(nil)

type config struct {
	host, port, user, password string
	publicHost, publicPort     string
	userHost, meta             string
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) broker.Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return sdk.NewBroker(&provider{log: logger}, nil)
}

const (
	serviceID = "mysql"
	planID    = "mysql-default"
)

var catalog = &broker.Catalog{Services: []broker.Service{{
	ID: serviceID, Name: "mysql", Description: "A MySQL/MariaDB database with a user per binding",
	Plans: []broker.Plan{{ID: planID, Name: "default", Description: "One database on the shared server"}},
}}}

func (p *provider) Catalog() *broker.Catalog { return catalog }

var settingKeys = map[string]bool{"host": true, "port": true, "user": true, "password": true,
	"public_host": true, "public_port": true, "user_host": true, "meta_database": true}

// Connect connects to the server and opens the broker's records there.
func (p *provider) Connect(ctx context.Context, settings map[string]string) (sdk.Store, error) {
	for k := range settings {
		if !settingKeys[k] {
			return nil, fmt.Errorf("%w: unknown mysql setting %q", broker.ErrBadRequest, k)
		}
	}
	get := func(k, def string) string {
		if v := settings[k]; v != "" {
			return v
		}
		return def
	}
	if settings["host"] == "" || settings["user"] == "" {
		return nil, fmt.Errorf("%w: no target configured: the mysql broker needs host and user settings (name an operator's broker_target)", broker.ErrBadRequest)
	}
	c := config{host: settings["host"], port: get("port", "3306"), user: settings["user"],
		password: settings["password"], userHost: get("user_host", "%"), meta: get("meta_database", "berth_broker")}
	c.publicHost, c.publicPort = get("public_host", c.host), get("public_port", c.port)
	if _, err := strconv.ParseUint(c.port, 10, 16); err != nil {
		return nil, fmt.Errorf("%w: mysql setting port %q is not a port number", broker.ErrBadRequest, c.port)
	}
	if !mysqlstore.ValidDatabase(c.meta) {
		return nil, fmt.Errorf("%w: mysql setting meta_database %q: want [a-z0-9_]{1,64}", broker.ErrBadRequest, c.meta)
	}
	dc := gomysql.NewConfig()
	dc.User, dc.Passwd, dc.Net, dc.Addr = c.user, c.password, "tcp", net.JoinHostPort(c.host, c.port)
	dc.InterpolateParams = true
	dc.Timeout, dc.ReadTimeout, dc.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	db, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("%w: mysql: %v", broker.ErrBadRequest, err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: mysql server %s: %v", broker.ErrUnavailable, dc.Addr, err)
	}
	// Locks hold a connection each; they get their own pool so that their
	// holders can always work.
	lockDB, _ := sql.Open("mysql", dc.FormatDSN())
	lockDB.SetConnMaxIdleTime(time.Minute)
	store, err := mysqlstore.New(ctx, db, lockDB, c.meta)
	if err != nil {
		db.Close()
		lockDB.Close()
		return nil, err
	}
	if err := importLegacy(ctx, db, store, c); err != nil {
		db.Close()
		lockDB.Close()
		return nil, err
	}
	p.mu.Lock()
	oldDB, oldLocks := p.db, p.lockDB
	p.db, p.lockDB, p.cfg = db, lockDB, c
	p.mu.Unlock()
	if oldDB != nil {
		oldDB.Close()
		oldLocks.Close()
	}
	p.log.Info("configured", "addr", dc.Addr, "admin_user", c.user, "meta_database", c.meta)
	return store, nil
}

func (p *provider) conn() (*sql.DB, config) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.db, p.cfg
}

func hash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// DatabaseName returns the database of an instance ID.
func DatabaseName(instanceID string) string {
	if len(instanceID) <= 57 {
		return "berth_" + strings.ReplaceAll(instanceID, "-", "_")
	}
	return "berth_" + strings.ReplaceAll(instanceID[:41], "-", "_") + "_" + hash(instanceID, 16)
}

func userPrefix(instanceID string) string { return "bb" + hash(instanceID, 10) + "_" }

// OwnerUser returns the owner user of an instance ID.
func OwnerUser(instanceID string) string { return userPrefix(instanceID) + "owner" }

// BindingUser returns the user of a binding.
func BindingUser(instanceID, bindingID string) string {
	return userPrefix(instanceID) + hash(bindingID, 12)
}

func randomPassword() string {
	var p [16]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(p[:])
}

func exec(ctx context.Context, db *sql.DB, q string, args ...any) error {
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mysql: %s: %w", strings.SplitN(q, " ?", 2)[0], err)
	}
	return nil
}

// CreateInstance creates the database and its owner user.
func (p *provider) CreateInstance(ctx context.Context, req broker.ProvisionRequest) error {
	db, cfg := p.conn()
	dbName, owner := DatabaseName(req.InstanceID), OwnerUser(req.InstanceID)
	steps := []struct {
		q    string
		args []any
	}{
		{"CREATE DATABASE IF NOT EXISTS `" + dbName + "` CHARACTER SET utf8mb4", nil},
		// DROP+CREATE rather than MariaDB's CREATE OR REPLACE, for MySQL.
		{"DROP USER IF EXISTS ?@?", []any{owner, cfg.userHost}},
		{"CREATE USER ?@? IDENTIFIED BY ?", []any{owner, cfg.userHost, randomPassword()}},
		{"GRANT ALL PRIVILEGES ON `" + dbName + "`.* TO ?@?", []any{owner, cfg.userHost}},
	}
	for _, st := range steps {
		if err := exec(ctx, db, st.q, st.args...); err != nil {
			return err
		}
	}
	p.log.Info("provisioned", "instance", req.InstanceID, "database", dbName)
	return nil
}

// DeleteInstance drops every user of the instance (those of bindings left
// by a crash mid-Bind included) and its database.
func (p *provider) DeleteInstance(ctx context.Context, instanceID string) error {
	db, _ := p.conn()
	var errs []error
	users, err := instanceUsers(ctx, db, instanceID)
	if err != nil {
		errs = append(errs, err)
	}
	for _, u := range users {
		killSessions(ctx, db, u[0])
		if err := exec(ctx, db, "DROP USER IF EXISTS ?@?", u[0], u[1]); err != nil {
			errs = append(errs, err)
		}
	}
	dbName := DatabaseName(instanceID)
	if err := exec(ctx, db, "DROP DATABASE IF EXISTS `"+dbName+"`"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	p.log.Info("deprovisioned", "instance", instanceID, "database", dbName)
	return nil
}

// instanceUsers lists (user, host) of every account of an instance.
func instanceUsers(ctx context.Context, db *sql.DB, instanceID string) ([][2]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT User, Host FROM mysql.user WHERE User LIKE ?",
		strings.ReplaceAll(userPrefix(instanceID), "_", `\_`)+"%")
	if err != nil {
		return nil, fmt.Errorf("mysql: listing users of instance %s: %w", instanceID, err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var u [2]string
		if err := rows.Scan(&u[0], &u[1]); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// killSessions ends the open sessions of user, so revoked credentials stop
// working at once rather than at the app's next connect.
func killSessions(ctx context.Context, db *sql.DB, user string) {
	rows, err := db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user)
	if err != nil {
		return
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		_, _ = db.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10))
	}
}

// CreateBinding creates the binding's user with grants on the instance's
// database.
func (p *provider) CreateBinding(ctx context.Context, req broker.BindRequest) (map[string]string, error) {
	db, cfg := p.conn()
	dbName := DatabaseName(req.InstanceID)
	user, password := BindingUser(req.InstanceID, req.BindingID), randomPassword()
	// A user left by a crash between CREATE USER and the record is replaced.
	if err := exec(ctx, db, "DROP USER IF EXISTS ?@?", user, cfg.userHost); err != nil {
		return nil, err
	}
	if err := exec(ctx, db, "CREATE USER ?@? IDENTIFIED BY ?", user, cfg.userHost, password); err != nil {
		return nil, err
	}
	if err := exec(ctx, db, "GRANT ALL PRIVILEGES ON `"+dbName+"`.* TO ?@?", user, cfg.userHost); err != nil {
		return nil, err
	}
	p.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", user)
	return credentials(cfg, dbName, user, password), nil
}

func credentials(cfg config, dbName, user, password string) map[string]string {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(cfg.publicHost, cfg.publicPort), Path: "/" + dbName}
	return map[string]string{
		"MYSQL_HOST":     cfg.publicHost,
		"MYSQL_PORT":     cfg.publicPort,
		"MYSQL_USER":     user,
		"MYSQL_PASSWORD": password,
		"MYSQL_DATABASE": dbName,
		"DATABASE_URL":   u.String(),
	}
}

// DeleteBinding drops the binding's user and ends its sessions.
func (p *provider) DeleteBinding(ctx context.Context, instanceID, bindingID string) error {
	db, cfg := p.conn()
	user := BindingUser(instanceID, bindingID)
	if err := exec(ctx, db, "DROP USER IF EXISTS ?@?", user, cfg.userHost); err != nil {
		return err
	}
	killSessions(ctx, db, user)
	p.log.Info("unbound", "instance", instanceID, "binding", bindingID, "user", user)
	return nil
}
