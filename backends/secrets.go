package backends

import (
	"context"
	"errors"
)

// ErrCASMismatch is returned by Secrets.PutCAS when the secret's latest
// version is not the one the caller expected.
var ErrCASMismatch = errors.New("secret version mismatch (check-and-set)")

// Secret is one versioned secret: a small map of string values.
type Secret struct {
	Path    string
	Data    map[string]string
	Version int
}

// Secrets keeps credentials, private environment values and token hashes.
// Paths are '/'-separated, validated by the caller (no "..", no empty
// segments). Every Put creates a new version (1, 2, ...). Implementations must
// be safe for concurrent use and must never log values.
type Secrets interface {
	// Put writes a new version of the secret at path and returns its number.
	Put(ctx context.Context, path string, data map[string]string) (int, error)
	// PutCAS writes a new version of the secret at path only if its latest
	// version is still version (0: only if the path holds no secret), in
	// one atomic step, and returns the new version's number. Otherwise it
	// writes nothing and returns an error matching ErrCASMismatch.
	PutCAS(ctx context.Context, path string, data map[string]string, version int) (int, error)
	// Get reads a version of the secret at path (0 = the latest). A missing
	// path or version is ErrNotFound.
	Get(ctx context.Context, path string, version int) (*Secret, error)
	// Delete removes the secret at path with all its versions. Deleting an
	// absent path succeeds.
	Delete(ctx context.Context, path string) error
	// List returns the full paths of all secrets under prefix (recursively),
	// sorted. prefix "" lists everything.
	List(ctx context.Context, prefix string) ([]string, error)
	// Health reports whether the backend is reachable and usable.
	Health(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
