// Package state is Berth's model and its typed access to the Store: every
// record is JSON under a fixed key scheme, read with its ModifyIndex and
// written with check-and-set, so concurrent writers never lose an update.
package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/release"
)

// Errors callers map to HTTP answers.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("concurrent update, try again")
)

// Key prefixes.
const (
	UsersPrefix     = "users/"
	TeamsPrefix     = "teams/"
	AppsPrefix      = "apps/"
	ReleasesPrefix  = "releases/"
	NotifiersPrefix = "notifiers/"
	EventsPrefix    = "events/"
	LocksPrefix     = "locks/"
	DeploysPrefix   = "deploys/"
	ServicesPrefix  = "services/"
	InstancesPrefix = "instances/"
	DomainsPrefix   = "domains/"
	HistoryPrefix   = "history/"
)

// Roles of a maintainer on an app, weakest first.
const (
	RoleDeveloper = "developer"
	RoleAdmin     = "admin"
	RoleOwner     = "owner"
)

// RoleRank orders roles; 0 is no role.
func RoleRank(role string) int {
	switch role {
	case RoleDeveloper:
		return 1
	case RoleAdmin:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// User is an account. Users are named by email.
type User struct {
	// ID is assigned once (at creation, or on first use for older records)
	// and never reused: records that refer to a user keep it, so whoever
	// registers the same email later is a different user.
	ID           string    `json:"id,omitempty"`
	Email        string    `json:"email"`
	PasswordHash string    `json:"password_hash"`
	Keys         []SSHKey  `json:"keys,omitempty"`
	Quota        *int      `json:"quota,omitempty"`
	Admin        bool      `json:"admin,omitempty"`
	Owned        int       `json:"owned"` // apps this user owns (kept with the app in one transaction)
	Created      time.Time `json:"created"`
}

// SSHKey is a user's public key.
type SSHKey struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Key         string `json:"key"`
}

// Team is a group of users that owns apps and is granted services.
type Team struct {
	// ID is assigned once and never reused (see User.ID): a team
	// re-created under the same name does not match references to the old.
	ID      string    `json:"id,omitempty"`
	Name    string    `json:"name"`
	Users   []string  `json:"users"`
	Created time.Time `json:"created"`
}

// App types (LAIN's apptype).
const (
	AppTypeApp              = "app"
	AppTypeService          = "service"
	AppTypeResource         = "resource"
	AppTypeResourceInstance = "resource-instance"
)

// ProcOverride is what was changed on a proc after its release was pushed
// (scale, cpu, memory); it survives new versions.
type ProcOverride struct {
	NumInstances *int     `json:"num_instances,omitempty"`
	CPU          *float64 `json:"cpu,omitempty"`
	MemoryMB     *int     `json:"memory_mb,omitempty"`
	Undeployed   bool     `json:"undeployed,omitempty"`
}

// EnvVar is one public or private variable of an app. Private values live
// in Secrets; here only the name is kept.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Public bool   `json:"public"`
}

// App is a registered app: the same record on both API surfaces.
type App struct {
	Name        string            `json:"name"`
	Owner       string            `json:"owner"`
	TeamOwner   string            `json:"team_owner,omitempty"`
	Teams       []string          `json:"teams,omitempty"`
	TeamIDs     map[string]string `json:"team_ids,omitempty"` // each team's ID when it was given the app (see Team.ID)
	Platform    string            `json:"platform,omitempty"`
	AppType     string            `json:"apptype"`
	Maintainers map[string]string `json:"maintainers"`
	GitURL      string            `json:"giturl"`
	Created     time.Time         `json:"created"`

	// Resource instances: which resource and client app they serve.
	Resource string `json:"resource,omitempty"`
	Client   string `json:"client,omitempty"`
	// The creation times of that resource and client app: an app
	// registered again under either name is another app, which this
	// instance does not serve (zero in records older than this field).
	ResourceCreated time.Time `json:"resource_created,omitzero"`
	ClientCreated   time.Time `json:"client_created,omitzero"`

	// Desired state (the deploy engine reconciles the scheduler to it).
	Deployed    bool                    `json:"deployed"`
	MetaVersion string                  `json:"meta_version,omitempty"`
	Procs       map[string]ProcOverride `json:"procs,omitempty"`
	Env         []EnvVar                `json:"env,omitempty"`
	Routes      []string                `json:"routes,omitempty"`
	Generation  int64                   `json:"generation"`
	RestartGen  int64                   `json:"restart_generation,omitempty"`
	Bindings    []string                `json:"bindings,omitempty"` // service instance names bound
	// ProgressDeadline (a Go duration) and AutoRevert override the
	// reconciler's defaults for this app's deploys; empty/nil: the default.
	ProgressDeadline string `json:"progress_deadline,omitempty"`
	AutoRevert       *bool  `json:"auto_revert,omitempty"`

	ModifyIndex uint64 `json:"-"`
}

// Release is a pushed version of an app.
type Release struct {
	App         string       `json:"appname"`
	MetaVersion string       `json:"meta_version"`
	Spec        release.Spec `json:"spec"`
	Pushed      time.Time    `json:"pushed"`
	PushedBy    string       `json:"pushed_by"`
}

// Notifier is a registered webhook for a notify type.
type Notifier struct {
	Type    string    `json:"notify_type"`
	URL     string    `json:"notify_url"`
	By      string    `json:"registered_by"`
	Created time.Time `json:"created"`
}

// Event is one audit record.
type Event struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// NewID returns a new random 128-bit identifier (hex). IDs of users and
// teams are never reused.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// Get reads the record at key into a new T.
func Get[T any](ctx context.Context, st backends.Store, key string) (*T, uint64, error) {
	p, _, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, ErrNotFound
	}
	v, err := Decode[T](key, p.Value)
	if err != nil {
		return nil, 0, err
	}
	return v, p.ModifyIndex, nil
}

// Create writes v at key only if nothing is there.
func Create[T any](ctx context.Context, st backends.Store, key string, v *T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	ok, wm, err := st.CAS(ctx, &backends.KVPair{Key: key, Value: b})
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrExists
	}
	return wm.Index, nil
}

// Put writes v at key if its ModifyIndex is still index (CAS).
func Put[T any](ctx context.Context, st backends.Store, key string, v *T, index uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	ok, wm, err := st.CAS(ctx, &backends.KVPair{Key: key, Value: b, ModifyIndex: index})
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrConflict
	}
	return wm.Index, nil
}

// Update reads the record at key, applies fn and writes it back with
// check-and-set, retrying on a concurrent change. fn may be called more than
// once and must not have side effects beyond v. An error from fn aborts.
func Update[T any](ctx context.Context, st backends.Store, key string, fn func(v *T) error) (*T, uint64, error) {
	for attempt := 0; attempt < 64; attempt++ {
		v, idx, err := Get[T](ctx, st, key)
		if err != nil {
			return nil, 0, err
		}
		if err := fn(v); err != nil {
			return nil, 0, err
		}
		ni, err := Put(ctx, st, key, v, idx)
		if errors.Is(err, ErrConflict) {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return v, ni, nil
	}
	return nil, 0, ErrConflict
}

// List reads every record under prefix (sorted by key).
func List[T any](ctx context.Context, st backends.Store, prefix string) ([]*T, error) {
	pairs, _, err := st.List(ctx, prefix, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(pairs))
	for _, p := range pairs {
		v, err := Decode[T](p.Key, p.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Delete removes key; ErrNotFound if it was absent.
func Delete(ctx context.Context, st backends.Store, key string) error {
	p, _, err := st.Get(ctx, key, nil)
	if err != nil {
		return err
	}
	if p == nil {
		return ErrNotFound
	}
	ok, _, err := st.DeleteCAS(ctx, key, p.ModifyIndex)
	if err != nil {
		return err
	}
	if !ok {
		return ErrConflict
	}
	return nil
}

// Service is a service definition: which broker plugin manages it. Its
// settings (which may hold admin credentials) live in Secrets only.
type Service struct {
	Name        string            `json:"name"`
	Broker      string            `json:"broker"`
	Endpoint    map[string]string `json:"endpoint,omitempty"`
	Plan        string            `json:"plan,omitempty"`
	OwnerTeams  []string          `json:"owner_teams"`
	Teams       []string          `json:"teams"` // teams granted access (owners included)
	Doc         string            `json:"doc,omitempty"`
	SettingKeys []string          `json:"setting_keys,omitempty"`
	// Target names the operator's broker target (config broker_target)
	// whose settings the broker gets; empty: the settings in Secrets
	// (given by a site admin), if any.
	Target  string    `json:"target,omitempty"`
	Created time.Time `json:"created"`
	// TeamIDs maps each team of OwnerTeams and Teams to the team's ID when
	// it was granted: a team re-created under the same name does not match.
	TeamIDs map[string]string `json:"team_ids,omitempty"`
}

// Service instance states.
const (
	InstanceProvisioning   = "provisioning"
	InstanceReady          = "ready"
	InstanceDeprovisioning = "deprovisioning"
	InstanceFailed         = "failed"
)

// ServiceInstance is a provisioned instance of a service.
type ServiceInstance struct {
	Name        string    `json:"name"`
	ServiceName string    `json:"service_name"`
	Teams       []string  `json:"teams"`
	Owner       string    `json:"owner"`
	Apps        []string  `json:"apps"`
	State       string    `json:"state"`
	Message     string    `json:"message,omitempty"`
	Created     time.Time `json:"created"`
	// Plan is the broker plan's ID it was provisioned on, when one was
	// chosen ("": the service's).
	Plan string `json:"plan,omitempty"`
	// OwnerID and TeamIDs are the IDs of Owner and of each of Teams when
	// the instance was created: a re-registered email or a re-created team
	// does not match them.
	OwnerID string            `json:"owner_id,omitempty"`
	TeamIDs map[string]string `json:"team_ids,omitempty"`
	// Async says the broker answered the provision (State provisioning)
	// or deprovision (State deprovisioning) asynchronously and has not
	// said it ended: the service sweep polls its LastOperation with
	// Operation until it does, across restarts of Berth.
	Async            bool      `json:"async,omitempty"`
	Operation        string    `json:"operation,omitempty"`
	OperationStarted time.Time `json:"operation_started,omitzero"`
}

// DeployState is the state of an app's deploy (backends.DeployState).
type DeployState = backends.DeployState

// Deploy states (Deploy.State): the schedulers' and the reconciler's one
// set, defined in package backends.
const (
	DeployPending    = backends.DeployPending
	DeployDeploying  = backends.DeployDeploying
	DeployRunning    = backends.DeployRunning
	DeployFailed     = backends.DeployFailed
	DeployUndeployed = backends.DeployUndeployed
)

// Deploy is the progress of the latest operation on an app, written by the
// reconciler; GET /api/v1/apps/:app/ and the events stream show it.
type Deploy struct {
	App         string      `json:"appname"`
	Generation  int64       `json:"generation"`
	Operation   string      `json:"operation"`
	MetaVersion string      `json:"meta_version"`
	State       DeployState `json:"state"`
	Message     string      `json:"message,omitempty"`
	By          string      `json:"by,omitempty"`
	Updated     time.Time   `json:"updated"`
	// Started is when the operation was asked for (zero in records
	// older than this field, and in the reconciler's own records).
	Started time.Time `json:"started,omitzero"`
	// Deadline is when a deploy that has not converged is failed: the
	// progress deadline after it was submitted.
	Deadline *time.Time `json:"deadline,omitempty"`
	// AutoRevert says whether a failure of this deploy reverts the app.
	AutoRevert bool `json:"auto_revert,omitempty"`
	// LastRunning is the meta_version of the app's last release that
	// reached running, carried from record to record; auto_revert goes
	// back to it.
	LastRunning string `json:"last_running,omitempty"`
	// Reverted, on an automatic revert's record, is the deploy that failed.
	Reverted *Reverted `json:"reverted,omitempty"`
}

// Reverted names the failed deploy an automatic revert undid, and why it failed.
type Reverted struct {
	Generation  int64  `json:"generation"`
	MetaVersion string `json:"meta_version"`
	Message     string `json:"message"`
}

// HistoryLimit is how many finished operations an app's history keeps
// (the oldest are dropped first).
const HistoryLimit = 100

// History is the record of an app's finished operations, oldest first,
// at most HistoryLimit of them: each deploy record in the final state it
// reached (running, failed, undeployed), appended when it got there.
type History struct {
	App     string         `json:"appname"`
	Entries []HistoryEntry `json:"entries"`
}

// HistoryEntry is one finished operation of an app.
type HistoryEntry struct {
	Generation  int64       `json:"generation"`
	Operation   string      `json:"operation"`
	MetaVersion string      `json:"meta_version,omitempty"`
	State       DeployState `json:"state"`
	// Reverted: the operation failed and the app was reverted (to
	// RevertedTo) by an automatic revert.
	Reverted   bool      `json:"reverted,omitempty"`
	RevertedTo string    `json:"reverted_to,omitempty"`
	Message    string    `json:"message,omitempty"`
	By         string    `json:"by,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished"`
}

// Lock is a lease on an app: one operation at a time. It expires, so a
// crashed holder never blocks an app for ever.
type Lock struct {
	Holder     string    `json:"holder"`
	Operation  string    `json:"operation"`
	Generation int64     `json:"generation"`
	Expires    time.Time `json:"expires"`
}

// Keys of records.
func UserKey(email string) string       { return UsersPrefix + email }
func DeployKey(app string) string       { return DeploysPrefix + app }
func HistoryKey(app string) string      { return HistoryPrefix + app }
func ServiceKey(name string) string     { return ServicesPrefix + name }
func InstanceKey(name string) string    { return InstancesPrefix + name }
func LockKey(app string) string         { return LocksPrefix + "apps/" + app }
func TeamKey(name string) string        { return TeamsPrefix + name }
func AppKey(name string) string         { return AppsPrefix + name }
func ReleasePrefix(app string) string   { return ReleasesPrefix + app + "/" }
func ReleaseKey(app, mv string) string  { return ReleasesPrefix + app + "/" + mv }
func NotifierPrefix(typ string) string  { return NotifiersPrefix + typ + "/" }
func NotifierKey(typ, id string) string { return NotifiersPrefix + typ + "/" + id }

// GetApp reads an app with its ModifyIndex set.
func GetApp(ctx context.Context, st backends.Store, name string) (*App, error) {
	a, idx, err := Get[App](ctx, st, AppKey(name))
	if err != nil {
		return nil, err
	}
	a.ModifyIndex = idx
	return a, nil
}

// DomainKey is the record of a custom domain (a host name) of an app: it
// is created with check-and-set in the transaction that adds the host to
// the app's Routes, so a host name belongs to one app only.
func DomainKey(host string) string { return DomainsPrefix + host }

// Domain records which app a custom host name was given to.
type Domain struct {
	Host  string    `json:"host"`
	App   string    `json:"appname"`
	By    string    `json:"by,omitempty"`
	Added time.Time `json:"added"`
}

// TeamTokensPrefix holds the team tokens' records (engine/teamtokens.go).
const TeamTokensPrefix = "team-tokens/"

// TeamToken is a token that acts for a team on the team's apps, with only
// its granted actions. The token's value is never stored: Hash is its
// SHA-256, which finds it in the Secrets (where it is authenticated).
type TeamToken struct {
	ID          string     `json:"id"`
	Team        string     `json:"team"`
	TeamID      string     `json:"team_id"` // the team's ID at creation: a re-created team does not inherit it
	Description string     `json:"description,omitempty"`
	Actions     []string   `json:"actions"`
	Creator     string     `json:"creator"`
	CreatorID   string     `json:"creator_id"`
	Hash        string     `json:"hash"`
	Created     time.Time  `json:"created"`
	Expires     time.Time  `json:"expires"`
	LastUsed    *time.Time `json:"last_used,omitempty"`
}

func TeamTokenKey(id string) string { return TeamTokensPrefix + id }
