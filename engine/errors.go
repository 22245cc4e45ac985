package engine

import (
	"errors"
	"fmt"

	"github.com/berthpaas/berth/backends"
)

// Kind is the class of a domain error. The HTTP layer maps each kind to a
// status in one place (server.errorStatus); nothing else here knows HTTP.
type Kind int

// The kinds of domain errors.
const (
	KindInvalid         Kind = iota + 1 // the request is malformed or names something invalid
	KindUnauthenticated                 // no valid credentials, or they no longer stand
	KindForbidden                       // the caller may not do this
	KindNotFound                        // what the request names does not exist
	KindConflict                        // the state does not allow it now (exists, busy, raced)
	KindTooLarge                        // the input is larger than allowed
	KindTooMany                         // the caller must slow down
	KindUnavailable                     // a backend Berth needs is not configured or not reachable
	KindUpstream                        // a broker or backing server failed
	KindTimeout                         // a backend did not answer in time
	KindInternal                        // a failure the caller cannot act on
)

// Error is a domain error: its kind, a message meant for the caller, and
// what the caller may need to act on it.
type Error struct {
	Kind Kind
	Msg  string
	// Field is the input field at fault (KindInvalid), if known.
	Field string
	// Holder and Operation name who holds a busy app's lease and for what
	// (KindConflict on a lease).
	Holder    string
	Operation string
	// RetryAfter is in seconds (KindTooMany; KindUnavailable with Backend).
	RetryAfter int
	// Backend names the backend that is down (KindUnavailable), e.g.
	// "consul"; the answer carries it as "backend", with Retry-After.
	// Errors of the backends themselves (*backends.UnavailableError)
	// reach the HTTP layer as they are and are answered the same way.
	Backend string
	// Extra carries further fields of the answer (e.g. the undo state of a
	// failed saga) that the caller may use.
	Extra map[string]any
}

func (e *Error) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNotFound) etc. true for every error of that
// kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Kind == e.Kind
}

// Sentinels, one per kind, for errors.Is.
var (
	ErrInvalid         = &Error{Kind: KindInvalid}
	ErrUnauthenticated = &Error{Kind: KindUnauthenticated}
	ErrForbidden       = &Error{Kind: KindForbidden}
	ErrNotFound        = &Error{Kind: KindNotFound}
	ErrConflict        = &Error{Kind: KindConflict}
	ErrTooLarge        = &Error{Kind: KindTooLarge}
	ErrTooMany         = &Error{Kind: KindTooMany}
	ErrUnavailable     = &Error{Kind: KindUnavailable}
	ErrUpstream        = &Error{Kind: KindUpstream}
	ErrTimeout         = &Error{Kind: KindTimeout}
)

// Errorf builds a domain error of kind k.
func Errorf(k Kind, format string, a ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, a...)}
}

// Invalid is a KindInvalid error.
func Invalid(format string, a ...any) *Error { return Errorf(KindInvalid, format, a...) }

// InvalidField is a KindInvalid error about one input field.
func InvalidField(field, format string, a ...any) *Error {
	e := Errorf(KindInvalid, format, a...)
	e.Field = field
	return e
}

// NotFound is a KindNotFound error.
func NotFound(format string, a ...any) *Error { return Errorf(KindNotFound, format, a...) }

// Forbidden is a KindForbidden error.
func Forbidden(format string, a ...any) *Error { return Errorf(KindForbidden, format, a...) }

// Conflict is a KindConflict error.
func Conflict(format string, a ...any) *Error { return Errorf(KindConflict, format, a...) }

// Unauthenticated is a KindUnauthenticated error.
func Unauthenticated(format string, a ...any) *Error {
	return Errorf(KindUnauthenticated, format, a...)
}

// Unavailable is a KindUnavailable error.
func Unavailable(format string, a ...any) *Error { return Errorf(KindUnavailable, format, a...) }

// AsError returns err's domain error, if it has one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// short names used throughout the package.
var (
	badRequest   = Invalid
	notFound     = NotFound
	forbidden    = Forbidden
	conflict     = Conflict
	unauthorized = Unauthenticated
)

// isBackendDown reports whether err is a backend's own unavailability
// (*backends.UnavailableError): passed on as it is, it answers 503 with
// Retry-After and the backend's name.
func isBackendDown(err error) bool {
	var ue *backends.UnavailableError
	return errors.As(err, &ue)
}
