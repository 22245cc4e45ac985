package backends

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// DefaultCallTimeout bounds one call to a remote backend (Consul, Vault)
// that has no deadline of its own, so that a backend that hangs (frozen,
// partitioned) fails the request in bounded time instead of holding it.
const DefaultCallTimeout = 10 * time.Second

// UnavailableError is a backend that could not be reached, failed on its
// side, or did not answer within its call deadline. It matches
// ErrUnavailable with errors.Is. The HTTP layer answers it 503 with
// Retry-After and the backend's name.
type UnavailableError struct {
	// Backend is the implementation ("consul", "vault", "nomad", "bolt").
	Backend string
	// Role is what Berth uses it as ("store", "secrets", "scheduler").
	Role string
	// Op is what was being done, e.g. `get "apps/hello"` (for logs).
	Op string
	// Reason says why, in words fit for a caller: the transport's or the
	// backend's error, without URLs or keys.
	Reason string
	// Err is the underlying error.
	Err error
}

func (e *UnavailableError) Error() string {
	return e.Backend + " " + e.Op + ": " + ErrUnavailable.Error() + ": " + e.Err.Error()
}

// Unwrap makes errors.Is(err, ErrUnavailable) true and keeps the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// errNoAnswer is the cause of a call cut short by its call deadline.
var errNoAnswer = errors.New("no answer within the call deadline")

// CallContext bounds one backend call by d (DefaultCallTimeout if d <= 0)
// within ctx; NoAnswer tells a call cut short by it from one whose
// caller gave up.
func CallContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return context.WithTimeoutCause(ctx, d, errNoAnswer)
}

// NoAnswer reports whether ctx (made by CallContext) ended at its call
// deadline while its parent was still live.
func NoAnswer(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errNoAnswer)
}

// Reason is the part of err fit for a caller: a url.Error's cause without
// the URL (which may name keys or paths).
func Reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
