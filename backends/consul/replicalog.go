package consul

import (
	"context"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/berthpaas/berth/backends"
)

// With the Store's change log (Config.ChangeLog, changelog.go), a shard's
// watch follows its directory's log (<prefix>%log/<dir>/, a few hundred
// small keys) with a blocking list instead of re-listing the directory:
// for each entry newer than the shard's applied index it reads the keys the
// entry names (read-only transactions of gets) and applies them, deletes
// included, and its applied index becomes the newest entry's index. So a
// write costs the replica what it changed, not the directory.
//
// The shard re-lists its directory (the watch's old path, apply) when the
// log cannot tell what changed: on its first list, when the log was
// trimmed past what it applied (its floor), after a DeleteTree, when
// Consul's index went backwards, and when a write bypassed the log (a
// `consul kv put` by an operator): the shard's confirmation (prefixIndex)
// reads the directory's index P; when the shard has not applied P, catchUp
// reads the log itself, and if the log does not reach P, re-lists the
// directory. A read is answered from memory only once the shard has applied
// P, as without the log. (A write that bypasses the log and is followed by
// a logged write to the same directory before any confirmation saw it is
// only seen when the key is next logged or the directory re-listed: write
// through the Store, or turn the log off, to have Consul's writes seen.)

// watchLog keeps the shard's tree up to date with blocking lists of its
// directory's change log.
func (r *Replica) watchLog(sh *shard) {
	defer r.wg.Done()
	backoff := 50 * time.Millisecond
	var idx uint64
	for r.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.ctx, DefaultWaitTime+DefaultWaitTime/16+r.callTimeout())
		opts := (&api.QueryOptions{WaitIndex: idx, WaitTime: DefaultWaitTime}).WithContext(ctx)
		pairs, meta, err := r.kv.List(sh.logRng, opts)
		if err == nil {
			back := meta.LastIndex < idx
			idx = meta.LastIndex
			err = r.follow(ctx, sh, pairs, back)
		}
		cancel()
		if err != nil {
			if !r.watchFailed(sh, "watching the store's change log failed; retrying", err, &backoff) {
				return
			}
			idx = 0
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// follow applies one list of the shard's change log (back: Consul's index
// went backwards since the last).
func (r *Replica) follow(ctx context.Context, sh *shard, pairs api.KVPairs, back bool) error {
	sh.amu.Lock()
	defer sh.amu.Unlock()
	return r.followLocked(ctx, sh, pairs, back)
}

func (r *Replica) followLocked(ctx context.Context, sh *shard, pairs api.KVPairs, back bool) error {
	r.mu.Lock()
	applied := sh.applied
	r.mu.Unlock()
	if back || applied == 0 {
		return r.relist(ctx, sh)
	}
	var (
		newest uint64
		keys   []string
		gone   = map[string]uint64{}
	)
	// collect takes in the entries of a list of the log newer than newest.
	collect := func(pairs api.KVPairs) (relist bool) {
		floor, entries := parseLog(pairs)
		if floor > applied {
			return true // trimmed past what the shard applied
		}
		for _, e := range entries {
			if e.index <= max(applied, newest) {
				continue
			}
			newest = e.index
			if e.tree {
				return true
			}
			for _, k := range e.keys {
				if _, ok := gone[k]; !ok {
					keys = append(keys, k)
				}
				gone[k] = e.index // the tomb's index, if it turns out deleted
			}
		}
		return false
	}
	if collect(pairs) {
		return r.relist(ctx, sh)
	}
	if newest == 0 {
		return nil
	}
	// The keys are read after the log: a key written again meanwhile is
	// read newer than the newest entry. Then the entries up to it are
	// taken in too (and every key read again), so that the tree holds no
	// write in part (a List sees a transaction whole).
	for round := 0; ; round++ {
		ck := make([]string, len(keys))
		for i, k := range keys {
			ck[i] = r.prefix + k
		}
		if r.onFetch != nil {
			r.onFetch(sh.name, len(keys))
		}
		got, absent, err := r.getKeys(ctx, ck)
		if err != nil {
			return err
		}
		var top uint64
		for _, p := range got {
			top = max(top, p.ModifyIndex)
		}
		if top <= newest {
			r.applyKeys(sh, got, absent, gone, newest)
			return nil
		}
		if round == 3 {
			return r.relist(ctx, sh)
		}
		more, _, err := r.kv.List(sh.logRng, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		if collect(more) {
			return r.relist(ctx, sh)
		}
		if newest < top {
			return r.relist(ctx, sh) // a write the log does not have
		}
	}
}

// relist lists the shard's directory and applies it (the log's caller
// holds sh.amu).
func (r *Replica) relist(ctx context.Context, sh *shard) error {
	pairs, meta, err := r.kv.List(sh.rng, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	r.apply(sh, pairs, meta.LastIndex)
	return nil
}

// applyKeys applies the keys a change log named, read after it: got are
// those there, absent (Consul keys) those deleted, gone the index of the
// newest entry naming each (escaped) key; index is that of the newest entry.
func (r *Replica) applyKeys(sh *shard, got api.KVPairs, absent []string, gone map[string]uint64, index uint64) {
	r.mu.Lock()
	sh.watchErr = nil
	tree, tombTree, floor, maxTombs := sh.tree, sh.tombs, sh.floor, r.maxTombs
	r.mu.Unlock()
	txn, tombs := tree.Txn(), tombTree.Txn()
	for _, p := range got {
		bp, ok := r.pair(p)
		if !ok {
			continue
		}
		k := []byte(bp.Key)
		if old, ok := txn.Get(k); ok && old.(*backends.KVPair).ModifyIndex >= bp.ModifyIndex {
			continue
		}
		txn.Insert(k, bp)
		tombs.Delete(k)
	}
	for _, ck := range absent {
		uk, ok := r.userKey(ck)
		if !ok {
			continue
		}
		k := []byte(uk)
		txn.Delete(k)
		tombs.Insert(k, gone[ck[len(r.prefix):]])
	}
	newTree, newTombs := txn.Commit(), tombs.Commit()
	newTombs, floor = trimTombs(newTombs, floor, maxTombs)
	r.install(sh, newTree, newTombs, index, floor, false, len(got)+len(absent))
}

// catchUp makes the shard apply the directory's index p (a confirmation's)
// now, if the log has it, else by re-listing the directory (a write that
// bypassed the log). Failures are left to the watch.
func (r *Replica) catchUp(ctx context.Context, sh *shard, p uint64) {
	sh.amu.Lock()
	defer sh.amu.Unlock()
	r.mu.Lock()
	applied := sh.applied
	r.mu.Unlock()
	if applied >= p {
		return
	}
	pairs, _, err := r.kv.List(sh.logRng, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || r.followLocked(ctx, sh, pairs, false) != nil {
		return
	}
	r.mu.Lock()
	applied = sh.applied
	r.mu.Unlock()
	if applied < p {
		_ = r.relist(ctx, sh)
	}
}
