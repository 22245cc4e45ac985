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
// State: the collections instances, bindings (with passwords, so a repeated
// Bind returns the same credentials) and locks of meta_database, on the
// server itself.
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
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
)

// Broker is the MongoDB broker.
type Broker struct {
	log hclog.Logger

	mu     sync.RWMutex
	client *mongo.Client
	cfg    config
}

var _ broker.Broker = (*Broker)(nil)

type config struct {
	host, publicHost, publicPort, meta string
	allowUnscoped                      bool
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) *Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Broker{log: logger}
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

var settingKeys = map[string]bool{"uri": true, "public_host": true, "public_port": true,
	"meta_database": true, "allow_unscoped_users": true}

// Configure connects to the server.
func (b *Broker) Configure(ctx context.Context, settings map[string]string) error {
	for k := range settings {
		if !settingKeys[k] {
			return fmt.Errorf("%w: unknown mongodb setting %q", broker.ErrBadRequest, k)
		}
	}
	uri := settings["uri"]
	if uri == "" {
		return fmt.Errorf("%w: no target configured: the mongodb broker needs the uri setting (name an operator's broker_target)", broker.ErrBadRequest)
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil || len(cs.Hosts) == 0 {
		return fmt.Errorf("%w: mongodb setting uri is not a valid connection string", broker.ErrBadRequest)
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
		return fmt.Errorf("%w: mongodb setting allow_unscoped_users: want true or false", broker.ErrBadRequest)
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
		return fmt.Errorf("%w: mongodb: %v", broker.ErrBadRequest, err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return fmt.Errorf("%w: mongodb server %s: %v", broker.ErrUnavailable, cs.Hosts[0], err)
	}
	b.mu.Lock()
	old := b.client
	b.client, b.cfg = client, c
	b.mu.Unlock()
	if old != nil {
		_ = old.Disconnect(context.Background())
	}
	b.log.Info("configured", "host", cs.Hosts[0], "meta_database", c.meta, "allow_unscoped_users", c.allowUnscoped)
	return nil
}

// Catalog implements broker.Broker.
func (b *Broker) Catalog(context.Context) (*broker.Catalog, error) { return catalog, nil }

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

func canonical(params map[string]string) string {
	if params == nil {
		params = map[string]string{}
	}
	out, _ := json.Marshal(params)
	return string(out)
}

func randomPassword() string {
	var p [24]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(p[:])
}

type instanceDoc struct {
	ID        string `bson:"_id"`
	ServiceID string `bson:"service_id"`
	PlanID    string `bson:"plan_id"`
	Params    string `bson:"params"`
	Database  string `bson:"database"`
}

type bindingDoc struct {
	ID         string `bson:"_id"` // instance/binding
	InstanceID string `bson:"instance_id"`
	BindingID  string `bson:"binding_id"`
	AppName    string `bson:"app_name"`
	Params     string `bson:"params"`
	User       string `bson:"user"`
	Password   string `bson:"password"`
}

// session holds the lock of one instance.
type session struct {
	client *mongo.Client
	cfg    config
	meta   *mongo.Database
	id     string
	token  string
}

const lockTTL = 30 * time.Second

func (b *Broker) lock(ctx context.Context, instanceID string) (*session, error) {
	b.mu.RLock()
	client, cfg := b.client, b.cfg
	b.mu.RUnlock()
	if client == nil {
		return nil, fmt.Errorf("%w: mongodb broker is not configured", broker.ErrUnavailable)
	}
	s := &session{client: client, cfg: cfg, meta: client.Database(cfg.meta), id: instanceID, token: randomPassword()}
	locks := s.meta.Collection("locks")
	for {
		now := time.Now()
		_, err := locks.InsertOne(ctx, bson.D{{Key: "_id", Value: instanceID}, {Key: "token", Value: s.token},
			{Key: "expires", Value: now.Add(lockTTL).UnixMilli()}})
		if err == nil {
			return s, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("%w: mongodb: locking instance %s: %v", broker.ErrUnavailable, instanceID, err)
		}
		// Break a lock left by a crashed holder.
		_, _ = locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: instanceID}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now.UnixMilli()}}}})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("mongodb: waiting for the lock of instance %s: %w", instanceID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.meta.Collection("locks").DeleteOne(ctx, bson.D{{Key: "_id", Value: s.id}, {Key: "token", Value: s.token}})
}

func (s *session) instance(ctx context.Context) (*instanceDoc, error) {
	var d instanceDoc
	err := s.meta.Collection("instances").FindOne(ctx, bson.D{{Key: "_id", Value: s.id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mongodb: reading instance %s: %w", s.id, err)
	}
	return &d, nil
}

func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// createUser creates user in db, limited to db when the server can.
func (s *session) createUser(ctx context.Context, db, user, password string) error {
	d := s.client.Database(db)
	roles := bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: db}}}
	err := d.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: password}, {Key: "roles", Value: roles}}).Err()
	if commandCode(err) == codeNotImplemented {
		if !s.cfg.allowUnscoped {
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

func (s *session) dropUser(ctx context.Context, db, user string) error {
	err := s.client.Database(db).RunCommand(ctx, bson.D{{Key: "dropUser", Value: user}}).Err()
	if err != nil && commandCode(err) != codeUserNotFound {
		return fmt.Errorf("mongodb: dropUser %s in %s: %w", user, db, err)
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
	doc := instanceDoc{ID: req.InstanceID, ServiceID: req.ServiceID, PlanID: req.PlanID,
		Params: canonical(req.Params), Database: DatabaseName(req.InstanceID)}
	existing, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		if existing.ServiceID != doc.ServiceID || existing.PlanID != doc.PlanID || existing.Params != doc.Params {
			return nil, sdk.Conflict("instance", req.InstanceID)
		}
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	// A user left by a crashed earlier attempt is replaced.
	if err := s.dropUser(ctx, doc.Database, ownerUser); err != nil {
		return nil, err
	}
	if err := s.createUser(ctx, doc.Database, ownerUser, randomPassword()); err != nil {
		return nil, err
	}
	if _, err := s.meta.Collection("instances").InsertOne(ctx, doc); err != nil {
		_ = s.destroy(doc.Database)
		return nil, fmt.Errorf("mongodb: recording instance %s: %w", req.InstanceID, err)
	}
	b.log.Info("provisioned", "instance", req.InstanceID, "database", doc.Database)
	return &broker.ProvisionResponse{}, nil
}

// destroy drops the instance's users, database and records (fresh deadline).
func (s *session) destroy(db string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var info struct {
		Users []struct {
			User string `bson:"user"`
		} `bson:"users"`
	}
	if err := s.client.Database(db).RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("mongodb: usersInfo on %s: %w", db, err)
	}
	for _, u := range info.Users {
		if err := s.dropUser(ctx, db, u.User); err != nil {
			return err
		}
	}
	if err := s.client.Database(db).Drop(ctx); err != nil {
		return fmt.Errorf("mongodb: dropDatabase %s: %w", db, err)
	}
	if _, err := s.meta.Collection("bindings").DeleteMany(ctx, bson.D{{Key: "instance_id", Value: s.id}}); err != nil {
		return fmt.Errorf("mongodb: deleting binding records: %w", err)
	}
	if _, err := s.meta.Collection("instances").DeleteOne(ctx, bson.D{{Key: "_id", Value: s.id}}); err != nil {
		return fmt.Errorf("mongodb: deleting instance record: %w", err)
	}
	return nil
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
	in, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	if err := s.destroy(in.Database); err != nil {
		return nil, err
	}
	b.log.Info("deprovisioned", "instance", req.InstanceID, "database", in.Database)
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
	in, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.NotFound(req.InstanceID)
	}
	params := canonical(req.Params)
	bindings := s.meta.Collection("bindings")
	key := req.InstanceID + "/" + req.BindingID
	var d bindingDoc
	err = bindings.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
	switch {
	case err == nil:
		if d.AppName != req.AppName || d.Params != params {
			return nil, sdk.Conflict("binding", req.BindingID)
		}
		return &broker.BindResponse{Credentials: s.credentials(in.Database, d.User, d.Password), AlreadyExisted: true}, nil
	case !errors.Is(err, mongo.ErrNoDocuments):
		return nil, fmt.Errorf("mongodb: reading binding %s: %w", req.BindingID, err)
	}
	d = bindingDoc{ID: key, InstanceID: req.InstanceID, BindingID: req.BindingID, AppName: req.AppName,
		Params: params, User: BindingUser(req.BindingID), Password: randomPassword()}
	if err := s.dropUser(ctx, in.Database, d.User); err != nil {
		return nil, err
	}
	if err := s.createUser(ctx, in.Database, d.User, d.Password); err != nil {
		return nil, err
	}
	if _, err := bindings.InsertOne(ctx, d); err != nil {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.dropUser(c, in.Database, d.User)
		return nil, fmt.Errorf("mongodb: recording binding %s: %w", req.BindingID, err)
	}
	b.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", d.User)
	return &broker.BindResponse{Credentials: s.credentials(in.Database, d.User, d.Password)}, nil
}

func (s *session) credentials(db, user, password string) map[string]string {
	u := url.URL{Scheme: "mongodb", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(s.cfg.publicHost, s.cfg.publicPort), Path: "/" + db,
		RawQuery: "authSource=" + url.QueryEscape(db)}
	return map[string]string{"MONGODB_URI": u.String(), "MONGODB_DATABASE": db}
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
	bindings := s.meta.Collection("bindings")
	key := req.InstanceID + "/" + req.BindingID
	var d bindingDoc
	err = bindings.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return sdk.Gone("binding", req.BindingID)
	}
	if err != nil {
		return fmt.Errorf("mongodb: reading binding %s: %w", req.BindingID, err)
	}
	in, err := s.instance(ctx)
	if err != nil {
		return err
	}
	if in != nil {
		if err := s.dropUser(ctx, in.Database, d.User); err != nil {
			return err
		}
	}
	if _, err := bindings.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
		return fmt.Errorf("mongodb: deleting binding record: %w", err)
	}
	b.log.Info("unbound", "instance", req.InstanceID, "binding", req.BindingID, "user", d.User)
	return nil
}

// LastOperation implements broker.Broker: operations are synchronous.
func (b *Broker) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	b.mu.RLock()
	client, cfg := b.client, b.cfg
	b.mu.RUnlock()
	if client == nil {
		return nil, fmt.Errorf("%w: mongodb broker is not configured", broker.ErrUnavailable)
	}
	n, err := client.Database(cfg.meta).Collection("instances").CountDocuments(ctx, bson.D{{Key: "_id", Value: req.InstanceID}})
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	if n == 0 {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
