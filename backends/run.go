package backends

import "time"

// RunSpec is a one-off command to run with an app's release and env
// (Scheduler.Run).
type RunSpec struct {
	// App is the app's rendered spec: its MetaVersion, Env, PrivateEnv and
	// SecretPath are the command's (as an instance of Proc gets them).
	App *AppSpec
	// Proc is the proc whose release spec the command runs with: its
	// image, resources and env (its Cmd is not run, nor its port opened).
	Proc ProcSpec
	// ID names the run (a DNS label: lower case letters and digits),
	// unique among the app's runs; the Nomad job is <app>-run-<ID>.
	ID string
	// Command is the program and its arguments, run as they are (no
	// shell: ["sh", "-c", "..."] for one).
	Command []string
}

// RunHandle is a started one-off command.
type RunHandle struct {
	// Lines carries the command's output, line by line (Proc is the run's
	// proc, Instance 0); it is closed once the command has ended and its
	// output is read. The reader must drain it (or end the run's ctx).
	Lines <-chan LogLine
	// Result carries one value, after Lines is closed.
	Result <-chan RunResult
}

// RunResult is how a one-off command ended.
type RunResult struct {
	// ExitCode is the command's exit status (128+N when killed by signal
	// N); -1 when it is not known.
	ExitCode int
	// Err is why the run did not end by itself: the ctx's error when it
	// was ended (the command was killed), or the scheduler's failure.
	Err error
	// Duration is how long the command ran.
	Duration time.Duration
}
