// Package backends defines the interfaces the Berth core needs from its
// backing systems (metadata Store, Secrets, Scheduler) and the errors they
// share. Implementations live in the sub-packages: bolt and consul (Store),
// sealed and vault (Secrets), local and nomad (Scheduler).
//
// The Store is shaped after Consul's KV API: every read returns
// (T, *QueryMeta, error), every write (*WriteMeta, error); check-and-set is
// by ModifyIndex and blocking queries are by WaitIndex.
package backends

import (
	"context"
	"errors"
	"time"
)

// MaxTxnOps is the most operations one transaction may carry: half of
// Consul's limit of 64, so that the Consul Store's change log (one entry per
// top-level directory the transaction writes, at most one per operation)
// fits in the same transaction.
const MaxTxnOps = 32

var (
	// ErrNotFound is returned where a single object was asked for and is absent.
	ErrNotFound = errors.New("not found")
	// ErrCASConflict is returned when a check-and-set precondition fails.
	ErrCASConflict = errors.New("check-and-set conflict")
	// ErrTxnTooLarge is returned for a transaction with more than MaxTxnOps operations.
	ErrTxnTooLarge = errors.New("transaction has too many operations")
	// ErrInvalidKey is returned for an empty key or one the backend cannot store.
	ErrInvalidKey = errors.New("invalid key")
	// ErrUnavailable wraps failures to reach the backend.
	ErrUnavailable = errors.New("backend unavailable")
)

// KVPair is one key and its value with the indexes the store assigned.
type KVPair struct {
	Key         string
	Value       []byte
	CreateIndex uint64
	ModifyIndex uint64
}

// QueryOptions shape a read. A WaitIndex > 0 makes the read block until the
// index of what is read exceeds WaitIndex, or WaitTime passes (then it returns
// the current data with the unchanged index). WaitTime 0 means a default of
// five minutes; the context's deadline is honoured always.
type QueryOptions struct {
	WaitIndex uint64
	WaitTime  time.Duration
}

// QueryMeta accompanies every read. LastIndex is the index of the data read:
// for Get the key's ModifyIndex (or the index of its deletion, or the store's
// current index if it never existed); for List the highest index of any
// change (write or delete) under the prefix.
type QueryMeta struct {
	LastIndex uint64
}

// WriteMeta accompanies every write. Index is the store index the write was
// committed at (0 if nothing was written, e.g. a failed CAS).
type WriteMeta struct {
	Index uint64
}

// TxnVerb names one operation in a transaction.
type TxnVerb string

const (
	TxnSet            TxnVerb = "set"              // unconditional write
	TxnCAS            TxnVerb = "cas"              // write if ModifyIndex matches (0 = must not exist)
	TxnDelete         TxnVerb = "delete"           // unconditional delete (absent key is fine)
	TxnDeleteCAS      TxnVerb = "delete-cas"       // delete if ModifyIndex matches
	TxnCheckIndex     TxnVerb = "check-index"      // fail unless the key's ModifyIndex matches (0 = must not exist)
	TxnCheckNotExists TxnVerb = "check-not-exists" // fail if the key exists
)

// TxnOp is one operation of a transaction.
type TxnOp struct {
	Verb  TxnVerb
	Key   string
	Value []byte
	Index uint64
}

// TxnError tells which operation of a failed transaction failed. It matches
// ErrCASConflict with errors.Is when a precondition failed.
type TxnError struct {
	OpIndex int
	Key     string
	Err     error
}

func (e *TxnError) Error() string {
	return "transaction failed at operation " + itoa(e.OpIndex) + " (" + e.Key + "): " + e.Err.Error()
}
func (e *TxnError) Unwrap() error { return e.Err }

// Store is the metadata key/value store. Keys are '/'-separated paths of
// printable characters; values are opaque bytes (the core stores JSON).
// Implementations must be safe for concurrent use.
type Store interface {
	// Get reads one key. A missing key is (nil, meta, nil), not an error.
	Get(ctx context.Context, key string, q *QueryOptions) (*KVPair, *QueryMeta, error)
	// List reads every key under prefix ("" = everything), sorted by key.
	List(ctx context.Context, prefix string, q *QueryOptions) ([]*KVPair, *QueryMeta, error)
	// ListPage reads at most limit keys under prefix that sort strictly
	// after the key after ("" = from the first), sorted by key: one page of
	// a long listing, read without reading the rest (limit <= 0 = no
	// limit). A listing is walked page by page by passing the last key of
	// a page as the next page's after; keys written or deleted meanwhile
	// are seen or not, but no key present throughout is missed or repeated.
	ListPage(ctx context.Context, prefix, after string, limit int) ([]*KVPair, *QueryMeta, error)
	// Put writes unconditionally.
	Put(ctx context.Context, p *KVPair) (*WriteMeta, error)
	// CAS writes p.Value if the key's ModifyIndex equals p.ModifyIndex
	// (0 = only if the key does not exist). It returns false, with no error,
	// when the precondition fails.
	CAS(ctx context.Context, p *KVPair) (bool, *WriteMeta, error)
	// Delete removes a key; deleting an absent key succeeds.
	Delete(ctx context.Context, key string) (*WriteMeta, error)
	// DeleteCAS removes a key if its ModifyIndex equals index.
	DeleteCAS(ctx context.Context, key string, index uint64) (bool, *WriteMeta, error)
	// DeleteTree removes every key under prefix.
	DeleteTree(ctx context.Context, prefix string) (*WriteMeta, error)
	// Txn applies up to MaxTxnOps operations atomically: all or nothing. On a
	// failed precondition it returns a *TxnError wrapping ErrCASConflict.
	Txn(ctx context.Context, ops []TxnOp) (*WriteMeta, error)
	// Health reports whether the backend is reachable and usable.
	Health(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
