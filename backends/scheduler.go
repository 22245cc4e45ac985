package backends

import (
	"context"
	"errors"
	"time"
)

// ErrBadLogQuery is what Scheduler.Logs returns (wrapped) for a LogQuery it
// cannot read, e.g. an Instance that is neither an index nor an ID.
var ErrBadLogQuery = errors.New("invalid log query")

// Proc types of a release (LAIN's proc keys: <type>[.<name>]).
const (
	ProcWeb     = "web"
	ProcWorker  = "worker"
	ProcPortal  = "portal"
	ProcOneshot = "oneshot"
)

// ProcSpec is one process type of an app as the scheduler should run it.
type ProcSpec struct {
	Name        string            // proc name (DNS label), unique within the app
	Type        string            // web, worker, portal or oneshot
	Cmd         string            // shell command, run with /bin/sh -c (cmd procs)
	Image       string            // Docker image (image procs; Nomad docker driver)
	Port        int               // port the proc listens on inside; 0 = none. Local: PORT is assigned dynamically
	Instances   int               // desired count (>= 0)
	CPU         float64           // cores, may be fractional (> 0)
	MemoryMB    int               // memory limit in MiB (> 0)
	Env         map[string]string // proc-level env (from the release)
	HealthCheck string            // HTTP path checked on web procs; "" = none
}

// AppSpec is the whole desired state of one app handed to a Scheduler.
type AppSpec struct {
	App         string            // app name (DNS label)
	MetaVersion string            // release name, carried as job meta
	Procs       []ProcSpec        // sorted by Name
	Env         map[string]string // public app env plus bound-service env, merged over each proc's Env
	// PrivateEnv holds values that must not be written into a job
	// definition in clear. The local scheduler passes them to the process;
	// the Nomad scheduler renders them from Vault at SecretPath instead.
	PrivateEnv map[string]string
	SecretPath string
	// Routes are the host names the router sends to this app's web proc.
	Routes []string
	// ProgressDeadline is how long a deployment may take to become healthy
	// (0: the scheduler's default); AutoRevert asks the scheduler to go
	// back to the previous version when a deployment fails, if it can
	// (Nomad's update block). Berth enforces both itself as well.
	ProgressDeadline time.Duration
	AutoRevert       bool
}

// InstanceState is the state of one instance of a proc, as a Scheduler
// reports it (Instance.State). Every scheduler maps its own states to
// these (Nomad's client status "running" and a healthy deployment status
// to StateRunning, a local process that answers its probe to StateRunning).
type InstanceState string

// Instance states.
const (
	StatePending  InstanceState = "pending"  // placed or queued, not started
	StateStarting InstanceState = "starting" // started, not yet ready (healthy)
	StateRunning  InstanceState = "running"  // ready
	StateFailed   InstanceState = "failed"   // exited, crashed or unhealthy; restarted if it can be
	StateStopped  InstanceState = "stopped"  // stopped on purpose (scale down, undeploy, replaced)
	StateComplete InstanceState = "complete" // a oneshot that exited 0
)

// DeployState is the state of an app's latest deploy: what a Scheduler
// reports in AppStatus.Deployment, and what the reconciler records in the
// app's deploy record (engine/state.Deploy.State, whose constants are these).
type DeployState string

// Deploy states. A Scheduler reports DeployDeploying, DeployRunning or
// DeployFailed; DeployPending and DeployUndeployed are the reconciler's.
const (
	DeployPending    DeployState = "pending"    // asked for, not yet submitted to the scheduler
	DeployDeploying  DeployState = "deploying"  // instances of the new version starting
	DeployRunning    DeployState = "running"    // every proc has its count of ready instances of the version
	DeployFailed     DeployState = "failed"     // the deploy failed; Message says why
	DeployUndeployed DeployState = "undeployed" // stopped by an undeploy (reconciler only)
)

// Instance is one running (or trying to run) copy of a proc.
type Instance struct {
	Proc     string
	Index    int
	ID       string // scheduler's id (allocation id, or app/proc/index locally)
	State    InstanceState
	Address  string // host:port where it listens, if any
	PID      int    // local scheduler only
	Restarts int
	Message  string // last event, e.g. exit status or failure reason
	Since    time.Time
}

// AppStatus is what a scheduler reports about one app.
type AppStatus struct {
	App         string
	MetaVersion string // the version the scheduler is running
	// Deployment is the state of the latest submit: DeployDeploying,
	// DeployRunning, or DeployFailed (with Message saying why).
	Deployment DeployState
	Message    string
	Instances  []Instance // sorted by Proc, then Index
	// ProgressBy is when the scheduler itself fails the deploy under way
	// unless it makes progress first (Nomad's progress deadline, which
	// every newly healthy allocation moves on); zero when the scheduler
	// keeps no deadline of its own.
	ProgressBy time.Time
	// Reverted says why, when the version the scheduler runs is the result
	// of its own rollback of a failed deploy (Nomad's auto_revert): the
	// failed deploy's message.
	Reverted string
}

// Scheduler runs procs. Submit is declarative and idempotent: after it
// returns, the scheduler works towards exactly the given spec (procs not in
// the spec are stopped). Implementations must be safe for concurrent use.
type Scheduler interface {
	Submit(ctx context.Context, spec *AppSpec) error
	// Status reports the app; an app the scheduler does not run is ErrNotFound.
	Status(ctx context.Context, app string) (*AppStatus, error)
	// Restart restarts every instance of proc ("" = all procs), rolling.
	Restart(ctx context.Context, app, proc string) error
	// Stop stops and forgets the app (undeploy); an unknown app succeeds.
	Stop(ctx context.Context, app string) error
	// Apps lists the apps the scheduler runs, sorted.
	Apps(ctx context.Context) ([]string, error)
	// Logs reads the output of the app's instances (see LogQuery): the
	// kept lines that match q, oldest first, then, with q.Follow, new lines
	// as they are written until ctx ends. The channel is closed when the
	// reading is over (or ctx ends, or the scheduler fails mid-stream: it
	// logs why). An app of which the scheduler knows neither instances nor
	// kept output is ErrNotFound; errors before the first line are
	// returned, with a nil channel.
	Logs(ctx context.Context, app string, q LogQuery) (<-chan LogLine, error)
	// Run starts a one-off command with the app's release and env (see
	// RunSpec) and returns at once: its output comes on the handle's
	// Lines, its exit on Result. Ending ctx kills the command (its whole
	// process tree, or the batch job); the scheduler leaves nothing of a
	// finished run behind. The app need not be running.
	Run(ctx context.Context, app string, spec RunSpec) (*RunHandle, error)
	Health(ctx context.Context) error
	Close() error
}

// Log streams of an instance.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogQuery selects the output Scheduler.Logs reads.
type LogQuery struct {
	Proc string // only this proc's instances; "" = every proc
	// Instance selects one instance: its index ("0") or the scheduler's
	// instance ID (Instance.ID); "" = every instance.
	Instance string
	// Stream is StreamStdout or StreamStderr only; "" = both.
	Stream string
	// Lines is how many of the latest kept lines to read (of the whole
	// selection); 0 = every kept line.
	Lines int
	// Since skips lines written before it (zero: none skipped). A
	// scheduler that keeps no time per line (Nomad) skips instead the
	// instances that had stopped before Since.
	Since time.Time
	// Follow keeps reading: new lines of the selected instances (also of
	// instances started later) as they are written, until ctx ends.
	Follow bool
}

// LogLine is one line of an instance's output, without its newline.
type LogLine struct {
	// Time is when the line was written (local: stamped by the scheduler
	// on write). Zero when the scheduler does not know (Nomad keeps no
	// time per line: followed lines carry the time they were received,
	// earlier ones none).
	Time     time.Time
	Proc     string
	Instance int    // the instance's index
	Stream   string // StreamStdout or StreamStderr
	Text     string
}

// StaleStatus is what a Scheduler's Status returns (as its error) when it
// answers from an in-memory view of the cluster that it cannot currently
// keep up to date (its event feed broke, or the scheduler stopped
// answering, longer ago than its bound): Status is the app as last known
// (nil when the view does not hold the app), as of AsOf. It matches
// ErrUnavailable with errors.Is, so that a caller that acts on the state
// (the reconciler) does not act on a stale one; a reader shows it with its
// age.
type StaleStatus struct {
	Status *AppStatus
	AsOf   time.Time // when the view was last known current
	Since  time.Time // when the scheduler stopped answering (the feed broke)
	Err    error     // why the view is not current
}

func (e *StaleStatus) Error() string {
	msg := "scheduler state as of " + e.AsOf.UTC().Format(time.RFC3339) + ": " + ErrUnavailable.Error()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrUnavailable) true and keeps the cause.
func (e *StaleStatus) Unwrap() []error { return []error{ErrUnavailable, e.Err} }
