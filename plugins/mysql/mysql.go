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
// State: the broker keeps which instances and bindings exist (with their
// parameters and credentials, so that a repeated Bind returns the same
// credentials) in the tables of meta_database on the server itself, so a
// restarted plugin process picks up where it left off. Only the admin user
// can read it.
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
	"encoding/json"
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
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"
)

// Broker is the MySQL/MariaDB broker.
type Broker struct {
	log hclog.Logger

	mu  sync.RWMutex
	db  *sql.DB
	cfg config
}

var _ broker.Broker = (*Broker)(nil)

type config struct {
	host, port, user, password string
	publicHost, publicPort     string
	userHost, meta             string
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) *Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Broker{log: logger}
}

const (
	serviceID = "mysql"
	planID    = "mysql-default"
)

var catalog = &broker.Catalog{Services: []broker.Service{{
	ID: serviceID, Name: "mysql", Description: "A MySQL/MariaDB database with a user per binding",
	Plans: []broker.Plan{{ID: planID, Name: "default", Description: "One database on the shared server"}},
}}}

var settingKeys = map[string]bool{"host": true, "port": true, "user": true, "password": true,
	"public_host": true, "public_port": true, "user_host": true, "meta_database": true}

// Configure connects to the server and creates the broker's state tables.
func (b *Broker) Configure(ctx context.Context, settings map[string]string) error {
	for k := range settings {
		if !settingKeys[k] {
			return fmt.Errorf("%w: unknown mysql setting %q", broker.ErrBadRequest, k)
		}
	}
	get := func(k, def string) string {
		if v := settings[k]; v != "" {
			return v
		}
		return def
	}
	if settings["host"] == "" || settings["user"] == "" {
		return fmt.Errorf("%w: no target configured: the mysql broker needs host and user settings (name an operator's broker_target)", broker.ErrBadRequest)
	}
	c := config{host: settings["host"], port: get("port", "3306"), user: settings["user"],
		password: settings["password"], userHost: get("user_host", "%"), meta: get("meta_database", "berth_broker")}
	c.publicHost, c.publicPort = get("public_host", c.host), get("public_port", c.port)
	if _, err := strconv.ParseUint(c.port, 10, 16); err != nil {
		return fmt.Errorf("%w: mysql setting port %q is not a port number", broker.ErrBadRequest, c.port)
	}
	if !validIdent(c.meta) {
		return fmt.Errorf("%w: mysql setting meta_database %q: want [a-z0-9_]{1,64}", broker.ErrBadRequest, c.meta)
	}
	dc := gomysql.NewConfig()
	dc.User, dc.Passwd, dc.Net, dc.Addr = c.user, c.password, "tcp", net.JoinHostPort(c.host, c.port)
	dc.InterpolateParams = true
	dc.Timeout, dc.ReadTimeout, dc.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	db, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		return fmt.Errorf("%w: mysql: %v", broker.ErrBadRequest, err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("%w: mysql server %s: %v", broker.ErrUnavailable, dc.Addr, err)
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + c.meta + "`",
		"CREATE TABLE IF NOT EXISTS `" + c.meta + "`.instances (" +
			"id VARCHAR(63) NOT NULL PRIMARY KEY, service_id VARCHAR(255) NOT NULL, plan_id VARCHAR(255) NOT NULL," +
			"params TEXT NOT NULL, db_name VARCHAR(64) NOT NULL, owner_user VARCHAR(32) NOT NULL," +
			"created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
		"CREATE TABLE IF NOT EXISTS `" + c.meta + "`.bindings (" +
			"instance_id VARCHAR(63) NOT NULL, binding_id VARCHAR(63) NOT NULL, app_name VARCHAR(255) NOT NULL," +
			"params TEXT NOT NULL, user_name VARCHAR(32) NOT NULL, password VARCHAR(64) NOT NULL," +
			"created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (instance_id, binding_id))",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return fmt.Errorf("mysql: creating the broker's state tables: %w", err)
		}
	}
	b.mu.Lock()
	old := b.db
	b.db, b.cfg = db, c
	b.mu.Unlock()
	if old != nil {
		old.Close()
	}
	b.log.Info("configured", "addr", dc.Addr, "admin_user", c.user, "meta_database", c.meta)
	return nil
}

func validIdent(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Catalog implements broker.Broker.
func (b *Broker) Catalog(context.Context) (*broker.Catalog, error) { return catalog, nil }

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

func canonical(params map[string]string) string {
	if params == nil {
		params = map[string]string{}
	}
	out, _ := json.Marshal(params) // keys sorted
	return string(out)
}

// session is an admin connection holding the lock of one instance.
type session struct {
	conn *sql.Conn
	cfg  config
	name string
}

// lock opens a connection and takes the named lock of instanceID.
func (b *Broker) lock(ctx context.Context, instanceID string) (*session, error) {
	b.mu.RLock()
	db, cfg := b.db, b.cfg
	b.mu.RUnlock()
	if db == nil {
		return nil, fmt.Errorf("%w: mysql broker is not configured", broker.ErrUnavailable)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: mysql: %v", broker.ErrUnavailable, err)
	}
	s := &session{conn: conn, cfg: cfg, name: "berth-broker-" + hash(instanceID, 32)}
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 2)", s.name).Scan(&got); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mysql: locking instance %s: %w", instanceID, err)
		}
		if got.Valid && got.Int64 == 1 {
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mysql: waiting for the lock of instance %s: %w", instanceID, err)
		}
	}
}

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", s.name)
	s.conn.Close()
}

type instanceRow struct {
	serviceID, planID, params, dbName, owner string
}

func (s *session) instance(ctx context.Context, id string) (*instanceRow, error) {
	var r instanceRow
	err := s.conn.QueryRowContext(ctx, "SELECT service_id, plan_id, params, db_name, owner_user FROM `"+s.cfg.meta+"`.instances WHERE id = ?", id).
		Scan(&r.serviceID, &r.planID, &r.params, &r.dbName, &r.owner)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: reading instance %s: %w", id, err)
	}
	return &r, nil
}

func (s *session) exec(ctx context.Context, q string, args ...any) error {
	if _, err := s.conn.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mysql: %s: %w", strings.SplitN(q, " ?", 2)[0], err)
	}
	return nil
}

// Provision implements broker.Broker.
func (b *Broker) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	req, err := sdk.CheckProvision(req, catalog)
	if err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	params := canonical(req.Params)
	existing, err := s.instance(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		if existing.serviceID != req.ServiceID || existing.planID != req.PlanID || existing.params != params {
			return nil, sdk.Conflict("instance", req.InstanceID)
		}
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	dbName, owner := DatabaseName(req.InstanceID), OwnerUser(req.InstanceID)
	steps := []struct {
		q    string
		args []any
	}{
		{"CREATE DATABASE IF NOT EXISTS `" + dbName + "` CHARACTER SET utf8mb4", nil},
		// DROP+CREATE rather than MariaDB's CREATE OR REPLACE, for MySQL.
		{"DROP USER IF EXISTS ?@?", []any{owner, s.cfg.userHost}},
		{"CREATE USER ?@? IDENTIFIED BY ?", []any{owner, s.cfg.userHost, randomPassword()}},
		{"GRANT ALL PRIVILEGES ON `" + dbName + "`.* TO ?@?", []any{owner, s.cfg.userHost}},
		{"INSERT INTO `" + s.cfg.meta + "`.instances (id, service_id, plan_id, params, db_name, owner_user) VALUES (?, ?, ?, ?, ?, ?)",
			[]any{req.InstanceID, req.ServiceID, req.PlanID, params, dbName, owner}},
	}
	for _, st := range steps {
		if err := s.exec(ctx, st.q, st.args...); err != nil {
			// Undo what was made so that nothing is orphaned.
			b.destroy(s, req.InstanceID, dbName)
			return nil, err
		}
	}
	b.log.Info("provisioned", "instance", req.InstanceID, "database", dbName)
	return &broker.ProvisionResponse{}, nil
}

// destroy drops everything of an instance (best effort, fresh deadline).
func (b *Broker) destroy(s *session, instanceID, dbName string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	users, err := s.instanceUsers(ctx, instanceID)
	if err != nil {
		errs = append(errs, err)
	}
	for _, u := range users {
		s.killSessions(ctx, u[0])
		if err := s.exec(ctx, "DROP USER IF EXISTS ?@?", u[0], u[1]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS `"+dbName+"`"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := s.exec(ctx, "DELETE FROM `"+s.cfg.meta+"`.bindings WHERE instance_id = ?", instanceID); err != nil {
		return err
	}
	return s.exec(ctx, "DELETE FROM `"+s.cfg.meta+"`.instances WHERE id = ?", instanceID)
}

// instanceUsers lists (user, host) of every account of an instance.
func (s *session) instanceUsers(ctx context.Context, instanceID string) ([][2]string, error) {
	rows, err := s.conn.QueryContext(ctx, "SELECT User, Host FROM mysql.user WHERE User LIKE ?",
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
func (s *session) killSessions(ctx context.Context, user string) {
	rows, err := s.conn.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user)
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
		_, _ = s.conn.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10))
	}
}

// Deprovision implements broker.Broker.
func (b *Broker) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	in, err := s.instance(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	if err := b.destroy(s, req.InstanceID, in.dbName); err != nil {
		return nil, err
	}
	b.log.Info("deprovisioned", "instance", req.InstanceID, "database", in.dbName)
	return &broker.DeprovisionResponse{}, nil
}

// Bind implements broker.Broker.
func (b *Broker) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := sdk.CheckBind(req.InstanceID, req.BindingID); err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	in, err := s.instance(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.NotFound(req.InstanceID)
	}
	params := canonical(req.Params)
	var app, oldParams, user, password string
	err = s.conn.QueryRowContext(ctx, "SELECT app_name, params, user_name, password FROM `"+s.cfg.meta+"`.bindings WHERE instance_id = ? AND binding_id = ?",
		req.InstanceID, req.BindingID).Scan(&app, &oldParams, &user, &password)
	switch {
	case err == nil:
		if app != req.AppName || oldParams != params {
			return nil, sdk.Conflict("binding", req.BindingID)
		}
		return &broker.BindResponse{Credentials: s.credentials(in.dbName, user, password), AlreadyExisted: true}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("mysql: reading binding %s: %w", req.BindingID, err)
	}
	user, password = BindingUser(req.InstanceID, req.BindingID), randomPassword()
	// A user left by a crash between CREATE USER and the record is replaced.
	if err := s.exec(ctx, "DROP USER IF EXISTS ?@?", user, s.cfg.userHost); err != nil {
		return nil, err
	}
	if err := s.exec(ctx, "CREATE USER ?@? IDENTIFIED BY ?", user, s.cfg.userHost, password); err != nil {
		return nil, err
	}
	undo := func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.exec(c, "DROP USER IF EXISTS ?@?", user, s.cfg.userHost)
	}
	if err := s.exec(ctx, "GRANT ALL PRIVILEGES ON `"+in.dbName+"`.* TO ?@?", user, s.cfg.userHost); err != nil {
		undo()
		return nil, err
	}
	if err := s.exec(ctx, "INSERT INTO `"+s.cfg.meta+"`.bindings (instance_id, binding_id, app_name, params, user_name, password) VALUES (?, ?, ?, ?, ?, ?)",
		req.InstanceID, req.BindingID, req.AppName, params, user, password); err != nil {
		undo()
		return nil, err
	}
	b.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", user)
	return &broker.BindResponse{Credentials: s.credentials(in.dbName, user, password)}, nil
}

func (s *session) credentials(dbName, user, password string) map[string]string {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(s.cfg.publicHost, s.cfg.publicPort), Path: "/" + dbName}
	return map[string]string{
		"MYSQL_HOST":     s.cfg.publicHost,
		"MYSQL_PORT":     s.cfg.publicPort,
		"MYSQL_USER":     user,
		"MYSQL_PASSWORD": password,
		"MYSQL_DATABASE": dbName,
		"DATABASE_URL":   u.String(),
	}
}

// Unbind implements broker.Broker.
func (b *Broker) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := sdk.CheckBind(req.InstanceID, req.BindingID); err != nil {
		return err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return err
	}
	defer s.close()
	var user string
	err = s.conn.QueryRowContext(ctx, "SELECT user_name FROM `"+s.cfg.meta+"`.bindings WHERE instance_id = ? AND binding_id = ?",
		req.InstanceID, req.BindingID).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return sdk.Gone("binding", req.BindingID)
	}
	if err != nil {
		return fmt.Errorf("mysql: reading binding %s: %w", req.BindingID, err)
	}
	if err := s.exec(ctx, "DROP USER IF EXISTS ?@?", user, s.cfg.userHost); err != nil {
		return err
	}
	s.killSessions(ctx, user)
	if err := s.exec(ctx, "DELETE FROM `"+s.cfg.meta+"`.bindings WHERE instance_id = ? AND binding_id = ?", req.InstanceID, req.BindingID); err != nil {
		return err
	}
	b.log.Info("unbound", "instance", req.InstanceID, "binding", req.BindingID, "user", user)
	return nil
}

// LastOperation implements broker.Broker: operations are synchronous, so an
// existing instance reports succeeded and a missing one ErrGone.
func (b *Broker) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	b.mu.RLock()
	db, cfg := b.db, b.cfg
	b.mu.RUnlock()
	if db == nil {
		return nil, fmt.Errorf("%w: mysql broker is not configured", broker.ErrUnavailable)
	}
	var one int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM `"+cfg.meta+"`.instances WHERE id = ?", req.InstanceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
