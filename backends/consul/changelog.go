package consul

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/berthpaas/berth/backends"
)

// The change log (Config.ChangeLog). Every write through the Store also
// writes, in the same Consul transaction, one entry per top-level directory
// it changes: the key <prefix>%log/<dir>/<random id> (dir is the escaped
// first segment of the keys, as a Replica's shard name; '%' keeps the log
// out of every Store key's range, as escapeKey writes '%' as %25), whose
// value is the escaped keys it changed, one a line, or logTree for a
// DeleteTree. The entry's ModifyIndex is the write's commit index, so a
// Replica that follows <prefix>%log/<dir>/ (a few hundred small keys)
// learns which keys changed at which index and reads those keys alone,
// instead of re-listing the whole directory at every change.
//
// The log is trimmed by the Store (trimLog): past logKeep+logSlack entries
// of a directory, the oldest are deleted (check-and-set, so two servers
// trimming at once is harmless) and <prefix>%log/<dir>/%floor, in the
// same transaction, is raised to the highest index deleted: a replica that
// has not applied the floor re-lists the directory.
const (
	logDirName = "%log/"
	logFloor   = "%floor"
	// logTree is the entry of a DeleteTree: the replica re-lists the directory.
	logTree = "%tree"
	// logKeep is the entries a directory keeps at least after a trim, and
	// logSlack how many more it may hold before it is trimmed (each Store
	// looks every logSlack of its writes to the directory).
	logKeep  = 32
	logSlack = 32
)

// logDir is the Consul prefix of directory dir's change log.
func (s *Store) logDir(dir string) string { return s.prefix + logDirName + dir + "/" }

// logOps are the operations that log ops (writes to the Store's keys) in
// the same transaction, and the directories they touch.
func (s *Store) logOps(ops []backends.TxnOp) (api.TxnOps, []string) {
	return s.logEntries(keysByDir(ops))
}

// keysByDir are the escaped keys the writes among ops change, by
// top-level directory (a Replica's shard name).
func keysByDir(ops []backends.TxnOp) map[string][]string {
	byDir := map[string][]string{}
	for _, op := range ops {
		switch op.Verb {
		case backends.TxnSet, backends.TxnCAS, backends.TxnDelete, backends.TxnDeleteCAS:
		default:
			continue
		}
		esc := escapeKey(op.Key)
		dir := esc
		if i := strings.IndexByte(esc, '/'); i >= 0 {
			dir = esc[:i]
		}
		byDir[dir] = append(byDir[dir], esc)
	}
	return byDir
}

func (s *Store) logEntries(byDir map[string][]string) (api.TxnOps, []string) {
	if len(byDir) == 0 {
		return nil, nil
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	tops := make(api.TxnOps, 0, len(dirs))
	for _, d := range dirs {
		keys := slices.Compact(slices.Sorted(slices.Values(byDir[d])))
		tops = append(tops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: s.logDir(d) + logID(), Value: []byte(strings.Join(keys, "\n"))}})
	}
	return tops, dirs
}

// logID is a random entry name.
func logID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// noteLogged counts the Store's writes to each directory's log and trims
// a log every logSlack of them.
func (s *Store) noteLogged(dirs []string) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.logWrites == nil {
		s.logWrites = map[string]int{}
	}
	for _, d := range dirs {
		s.logWrites[d]++
		if s.logWrites[d]%logSlack != 0 || s.trimming[d] {
			continue
		}
		if s.trimming == nil {
			s.trimming = map[string]bool{}
		}
		// Added under wmu, as the key watches are: Close waits for it.
		s.wmu.Lock()
		if s.wctx.Err() != nil {
			s.wmu.Unlock()
			return
		}
		s.wwg.Add(1)
		s.wmu.Unlock()
		s.trimming[d] = true
		go func(d string) {
			defer s.wwg.Done()
			ctx, cancel := backends.CallContext(s.wctx, s.callTimeout())
			if err := s.trimLog(ctx, d); err != nil && s.wctx.Err() == nil {
				s.logger.Debug("trimming the change log failed", "directory", d, "error", err)
			}
			cancel()
			s.lmu.Lock()
			delete(s.trimming, d)
			s.lmu.Unlock()
		}(d)
	}
}

// trimLog deletes the oldest entries of directory dir's log beyond the
// newest logKeep, raising its floor to the highest index deleted in the
// same transactions.
func (s *Store) trimLog(ctx context.Context, dir string) error {
	pairs, _, err := s.kv.List(s.logDir(dir), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	var floor *api.KVPair
	entries := make(api.KVPairs, 0, len(pairs))
	for _, p := range pairs {
		if strings.HasSuffix(p.Key, "/"+logFloor) {
			floor = p
		} else {
			entries = append(entries, p)
		}
	}
	if len(entries) <= logKeep+logSlack/2 {
		return nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ModifyIndex < entries[j].ModifyIndex })
	drop := entries[:len(entries)-logKeep]
	var floorIdx, floorMod uint64
	if floor != nil {
		floorIdx, _ = strconv.ParseUint(string(floor.Value), 10, 64)
		floorMod = floor.ModifyIndex
	}
	for len(drop) > 0 {
		chunk := drop[:min(len(drop), 63)]
		drop = drop[len(chunk):]
		top := max(floorIdx, chunk[len(chunk)-1].ModifyIndex)
		tops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.logDir(dir) + logFloor, Value: []byte(strconv.FormatUint(top, 10)), Index: floorMod}}}
		for _, e := range chunk {
			tops = append(tops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: e.Key, Index: e.ModifyIndex}})
		}
		ok, resp, _, err := s.client.Txn().Txn(tops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || !ok {
			return err // !ok: another server trimmed meanwhile
		}
		floorIdx = top
		for _, r := range resp.Results {
			if r.KV != nil {
				floorMod = r.KV.ModifyIndex
			}
		}
	}
	return nil
}

// logEntry is one change log entry a replica reads.
type logEntry struct {
	index uint64
	keys  []string // escaped keys, relative to the Store's prefix
	tree  bool     // a DeleteTree: re-list the directory
}

// parseLog splits a list of a directory's log into its floor and its
// entries, oldest first.
func parseLog(pairs api.KVPairs) (floor uint64, entries []logEntry) {
	for _, p := range pairs {
		if strings.HasSuffix(p.Key, "/"+logFloor) {
			floor, _ = strconv.ParseUint(string(p.Value), 10, 64)
			continue
		}
		e := logEntry{index: p.ModifyIndex}
		for _, k := range strings.Split(string(p.Value), "\n") {
			switch {
			case k == "":
			case k == logTree:
				e.tree = true
			default:
				e.keys = append(e.keys, k)
			}
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].index < entries[j].index })
	return floor, entries
}

// getKeys reads the Consul keys ks (read-only transactions of at most 64
// gets): the pairs there are, and the keys that are absent.
func (s *Store) getKeys(ctx context.Context, ks []string) (api.KVPairs, []string, error) {
	var got api.KVPairs
	var gone []string
	for len(ks) > 0 {
		chunk := slices.Clone(ks[:min(len(ks), 64)])
		ks = ks[len(chunk):]
		for len(chunk) > 0 {
			tops := make(api.TxnOps, 0, len(chunk))
			for _, k := range chunk {
				tops = append(tops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: k}})
			}
			ok, resp, _, err := s.client.Txn().Txn(tops, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
			if err != nil {
				return nil, nil, err
			}
			if ok {
				for _, r := range resp.Results {
					if r.KV != nil {
						got = append(got, r.KV)
					}
				}
				break
			}
			// A get of an absent key fails the transaction: drop the keys
			// it names and read the others again.
			absent := map[int]bool{}
			for _, e := range resp.Errors {
				if e.OpIndex >= 0 && e.OpIndex < len(chunk) {
					absent[e.OpIndex] = true
				}
			}
			if len(absent) == 0 {
				return nil, nil, fmt.Errorf("reading %d keys failed: %v", len(chunk), resp.Errors)
			}
			rest := chunk[:0:0]
			for i, k := range chunk {
				if absent[i] {
					gone = append(gone, k)
				} else {
					rest = append(rest, k)
				}
			}
			chunk = rest
		}
	}
	return got, gone, nil
}

// deleteTreeLogged is DeleteTree with the change log: the delete and a
// logTree entry in each directory it may touch, in one transaction. A
// prefix with no '/' may span several directories: those there are now are
// logged (one made meanwhile is caught by the replica's confirmation, as
// a write that bypasses the log).
func (s *Store) deleteTreeLogged(ctx context.Context, prefix, cp string) (*backends.WriteMeta, error) {
	esc := escapePrefix(prefix)
	byDir := map[string][]string{}
	if i := strings.IndexByte(esc, '/'); i >= 0 {
		byDir[esc[:i]] = []string{logTree}
	} else {
		names, _, err := s.kv.Keys(cp, "/", (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, s.wrap(ctx, "delete-tree", prefix, err)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, s.prefix) || strings.HasPrefix(n, s.prefix+logDirName) {
				continue
			}
			d := n[len(s.prefix):]
			if i := strings.IndexByte(d, '/'); i >= 0 {
				d = d[:i]
			}
			byDir[d] = []string{logTree}
		}
	}
	tops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteTree, Key: cp}}}
	lops, dirs := s.logEntries(byDir)
	if len(lops) > 63 {
		lops, dirs = nil, nil // too many to log: the replicas' confirmations re-list them
	}
	tops = append(tops, lops...)
	ok, resp, g, err := s.guardedTxn(ctx, tops, footprint{Trees: []string{prefix}})
	if err != nil {
		return nil, s.wrap(ctx, "delete-tree", prefix, err)
	}
	if !ok {
		return nil, s.wrap(ctx, "delete-tree", prefix, fmt.Errorf("transaction rolled back: %v", resp.Errors))
	}
	var idx uint64
	for _, r := range resp.Results {
		if r.KV != nil {
			idx = max(idx, r.KV.ModifyIndex)
		}
	}
	if idx == 0 {
		if idx, err = s.currentIndex(ctx, cp); err != nil {
			g.end(0, unknown)
			return nil, s.wrap(ctx, "delete-tree", prefix, err)
		}
	}
	g.end(idx, committed)
	s.noteLogged(dirs)
	return &backends.WriteMeta{Index: idx}, nil
}
