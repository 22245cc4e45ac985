// Package boltfile tells which failures of a bbolt file mean that the
// backend built on it is unavailable (the bolt Store and the sealed
// Secrets share it).
package boltfile

import (
	"errors"
	"syscall"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berthpaas/berth/backends"
)

// File names a bbolt-backed backend for its unavailability errors.
type File struct {
	Backend string // "bolt", "sealed"
	Role    string // "store", "secrets"
	What    string // "the store file", "the secrets file"
	Closed  error  // the backend's own ErrClosed
}

// Unavailable marks a failure of the file itself as a
// *backends.UnavailableError naming the backend (the API answers 503 with
// Retry-After): the file closed (the server is stopping), locked by
// another process, or an I/O error of the file system (disk full,
// read-only, I/O error). Other errors are returned as they are.
func (f File) Unavailable(op string, err error) error {
	var errno syscall.Errno
	reason := ""
	switch {
	case err == nil:
		return nil
	case errors.Is(err, f.Closed), errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		reason, err = f.What+" is closed (the server is stopping)", f.Closed
	case errors.Is(err, bolterrors.ErrTimeout):
		reason = f.What + " is locked by another process"
	case errors.As(err, &errno):
		reason = f.What + " cannot be written: " + errno.Error()
	default:
		return err
	}
	return &backends.UnavailableError{Backend: f.Backend, Role: f.Role, Op: op, Reason: reason, Err: err}
}
