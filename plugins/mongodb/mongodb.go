// Package mongodb is the built-in MongoDB service broker (MongoDB, or a
// MongoDB-wire server such as FerretDB).
//
// Provision creates an instance database and its owner user (createUser,
// role readWrite on that database). Bind creates one user per binding in the
// instance's database and returns MONGODB_URI
// (mongodb://user:password@host:port/<db>?authSource=<db>) and
// MONGODB_DATABASE. Unbind drops the binding's user; Deprovision drops the
// database and all its users.
//
// Settings:
//
//	uri                  admin connection string (required: without it Configure
//	                     fails "no target configured"; no default server)
//	public_host          host given to apps (default: the first host of uri)
//	public_port          port given to apps (default: that host's port, or 27017)
//	meta_database        database holding the broker's state (default berth_broker)
//	allow_unscoped_users "true" to accept servers that cannot limit a user to one
//	                     database (FerretDB v1 rejects createUser roles with
//	                     NotImplemented). Users are then created without roles:
//	                     their credentials are only valid against their own
//	                     database (authSource), but once logged in the server
//	                     does not stop them from reading other databases.
//	                     Default false: provisioning on such a server fails.
//
// State: the broker is an sdk.NewBroker around this package's provider; its
// records (instances and bindings, with the bindings' passwords so that a
// repeated Bind returns the same credentials) and its per-instance locks
// live in the collections records and locks of meta_database, on the server
// itself (plugins/sdk/mongostore). The records of an earlier broker
// (collections instances and bindings) are imported on Configure.
//
// Names: the database of instance ID is "berth_" + ID with "-" replaced by
// "_" if the ID has at most 56 characters, otherwise "berth_" + its first 40
// characters + "_" + 16 hex digits of SHA-256(ID) (63 characters).
// Users: "berth-owner" and "b-<binding>" in the instance's database.
package mongodb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mongostore"
	"github.com/hashicorp/go-hclog"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
)

// provider is the MongoDB side of the broker: sdk.NewBroker does the rest.
type provider struct {
	log hclog.Logger

	mu     sync.RWMutex
	client *mongo.Client
	cfg    config
}

var _ sdk.Connector = (*provider)(nil)

type config struct {
	publicHost, publicPort, meta string
	allowUnscoped                bool
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) broker.Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return sdk.NewBroker(&provider{log: logger}, nil)
}

const (
	serviceID = "mongodb"
	planID    = "mongodb-default"
	ownerUser = "berth-owner"

	codeUserNotFound   = 11
	codeNotImplemented = 238
)

var catalog = &broker.Catalog{Services: []broker.Service{{
	ID: serviceID, Name: "mongodb", Description: "A MongoDB database with a user per binding",
	Plans: []broker.Plan{{ID: planID, Name: "default", Description: "One database on the shared server"}},
}}}

func (p *provider) Catalog() *broker.Catalog { return catalog }

var settingKeys = map[string]bool{"uri": true, "public_host": true, "public_port": true,
	"meta_database": true, "allow_unscoped_users": true}

// Connect connects to the server and opens the broker's records there.
func (p *provider) Connect(ctx context.Context, settings map[string]string) (sdk.Store, error) {
	for k := range settings {
		if !settingKeys[k] {
			return nil, fmt.Errorf("%w: unknown mongodb setting %q", broker.ErrBadRequest, k)
		}
	}
	uri := settings["uri"]
	if uri == "" {
		return nil, fmt.Errorf("%w: no target configured: the mongodb broker needs the uri setting (name an operator's broker_target)", broker.ErrBadRequest)
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil || len(cs.Hosts) == 0 {
		return nil, fmt.Errorf("%w: mongodb setting uri is not a valid connection string", broker.ErrBadRequest)
	}
	c := config{meta: settings["meta_database"], publicHost: settings["public_host"], publicPort: settings["public_port"]}
	if c.meta == "" {
		c.meta = "berth_broker"
	}
	switch settings["allow_unscoped_users"] {
	case "", "false":
	case "true":
		c.allowUnscoped = true
	default:
		return nil, fmt.Errorf("%w: mongodb setting allow_unscoped_users: want true or false", broker.ErrBadRequest)
	}
	host, port, err := net.SplitHostPort(cs.Hosts[0])
	if err != nil {
		host, port = cs.Hosts[0], "27017"
	}
	if c.publicHost == "" {
		c.publicHost = host
	}
	if c.publicPort == "" {
		c.publicPort = port
	}
	// Defaults first: options in the URI win.
	client, err := mongo.Connect(ctx, options.Client().
		SetConnectTimeout(5*time.Second).SetServerSelectionTimeout(10*time.Second).SetMaxPoolSize(8).ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("%w: mongodb: %v", broker.ErrBadRequest, err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("%w: mongodb server %s: %v", broker.ErrUnavailable, cs.Hosts[0], err)
	}
	store := mongostore.New(client.Database(c.meta))
	if err := importLegacy(ctx, client.Database(c.meta), store, c); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	p.mu.Lock()
	old := p.client
	p.client, p.cfg = client, c
	p.mu.Unlock()
	if old != nil {
		_ = old.Disconnect(context.Background())
	}
	p.log.Info("configured", "host", cs.Hosts[0], "meta_database", c.meta, "allow_unscoped_users", c.allowUnscoped)
	return store, nil
}

func (p *provider) conn() (*mongo.Client, config) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.client, p.cfg
}

func hash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// DatabaseName returns the database of an instance ID.
func DatabaseName(instanceID string) string {
	if len(instanceID) <= 56 {
		return "berth_" + strings.ReplaceAll(instanceID, "-", "_")
	}
	return "berth_" + strings.ReplaceAll(instanceID[:40], "-", "_") + "_" + hash(instanceID, 16)
}

// BindingUser returns the user of a binding (in the instance's database).
func BindingUser(bindingID string) string { return "b-" + bindingID }

func randomPassword() string {
	var p [24]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(p[:])
}

func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// createUser (re)creates user in db, limited to db when the server can.
func (p *provider) createUser(ctx context.Context, db, user, password string) error {
	client, cfg := p.conn()
	// A user left by a crashed earlier attempt is replaced.
	if err := p.dropUser(ctx, db, user); err != nil {
		return err
	}
	d := client.Database(db)
	roles := bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: db}}}
	err := d.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: password}, {Key: "roles", Value: roles}}).Err()
	if commandCode(err) == codeNotImplemented {
		if !cfg.allowUnscoped {
			return fmt.Errorf("%w: mongodb server cannot limit a user to one database (createUser roles: %v); "+
				"set allow_unscoped_users = \"true\" to accept users limited by authSource only", broker.ErrBadRequest, err)
		}
		err = d.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: password}, {Key: "roles", Value: bson.A{}}}).Err()
	}
	if err != nil {
		return fmt.Errorf("mongodb: createUser %s in %s: %w", user, db, err)
	}
	return nil
}

func (p *provider) dropUser(ctx context.Context, db, user string) error {
	client, _ := p.conn()
	err := client.Database(db).RunCommand(ctx, bson.D{{Key: "dropUser", Value: user}}).Err()
	if err != nil && commandCode(err) != codeUserNotFound {
		return fmt.Errorf("mongodb: dropUser %s in %s: %w", user, db, err)
	}
	return nil
}

// CreateInstance creates the instance's owner user (the database comes
// into being with its first write).
func (p *provider) CreateInstance(ctx context.Context, req broker.ProvisionRequest) error {
	db := DatabaseName(req.InstanceID)
	if err := p.createUser(ctx, db, ownerUser, randomPassword()); err != nil {
		return err
	}
	p.log.Info("provisioned", "instance", req.InstanceID, "database", db)
	return nil
}

// DeleteInstance drops the instance's users and database.
func (p *provider) DeleteInstance(ctx context.Context, instanceID string) error {
	client, _ := p.conn()
	db := DatabaseName(instanceID)
	var info struct {
		Users []struct {
			User string `bson:"user"`
		} `bson:"users"`
	}
	if err := client.Database(db).RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("mongodb: usersInfo on %s: %w", db, err)
	}
	for _, u := range info.Users {
		if err := p.dropUser(ctx, db, u.User); err != nil {
			return err
		}
	}
	if err := client.Database(db).Drop(ctx); err != nil {
		return fmt.Errorf("mongodb: dropDatabase %s: %w", db, err)
	}
	p.log.Info("deprovisioned", "instance", instanceID, "database", db)
	return nil
}

// CreateBinding creates the binding's user in the instance's database.
func (p *provider) CreateBinding(ctx context.Context, req broker.BindRequest) (map[string]string, error) {
	_, cfg := p.conn()
	db, user, password := DatabaseName(req.InstanceID), BindingUser(req.BindingID), randomPassword()
	if err := p.createUser(ctx, db, user, password); err != nil {
		return nil, err
	}
	p.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", user)
	return credentials(cfg, db, user, password), nil
}

func credentials(cfg config, db, user, password string) map[string]string {
	u := url.URL{Scheme: "mongodb", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(cfg.publicHost, cfg.publicPort), Path: "/" + db,
		RawQuery: "authSource=" + url.QueryEscape(db)}
	return map[string]string{"MONGODB_URI": u.String(), "MONGODB_DATABASE": db}
}

// DeleteBinding drops the binding's user.
func (p *provider) DeleteBinding(ctx context.Context, instanceID, bindingID string) error {
	user := BindingUser(bindingID)
	if err := p.dropUser(ctx, DatabaseName(instanceID), user); err != nil {
		return err
	}
	p.log.Info("unbound", "instance", instanceID, "binding", bindingID, "user", user)
	return nil
}
