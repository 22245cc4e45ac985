// Package redisstore keeps a broker's sdk records on a Redis server under
// a key prefix of its own, and takes the per-instance lock there, so every
// broker process using the same server and prefix is serialised.
//
// Keys: <prefix>:records (a hash of the records), <prefix>:index (a sorted
// set of their keys, for listing by prefix) and <prefix>:lock:<name> (a lock:
// SET NX with an expiry that its holder keeps pushing back, so a crashed
// holder's lock lapses). Only the admin user a broker connects as should be
// able to read them: records hold bindings' credentials.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	goredis "github.com/redis/go-redis/v9"
)

// Store is an sdk.Store and sdk.Locker on a Redis server.
type Store struct {
	rdb    *goredis.Client
	prefix string
}

var _ interface {
	sdk.Store
	sdk.Locker
} = (*Store)(nil)

// New returns the store under key prefix on rdb.
func New(rdb *goredis.Client, prefix string) *Store { return &Store{rdb: rdb, prefix: prefix} }

func (s *Store) records() string { return s.prefix + ":records" }
func (s *Store) index() string   { return s.prefix + ":index" }

// Get implements sdk.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.rdb.HGet(ctx, s.records(), key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis: reading record %s: %w", key, err)
	}
	return v, true, nil
}

// Put implements sdk.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, s.records(), key, value)
		p.ZAdd(ctx, s.index(), goredis.Z{Member: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: writing record %s: %w", key, err)
	}
	return nil
}

// Delete implements sdk.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HDel(ctx, s.records(), key)
		p.ZRem(ctx, s.index(), key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: deleting record %s: %w", key, err)
	}
	return nil
}

// List implements sdk.Store. Keys are ASCII, so every key starting with
// prefix sorts between prefix and prefix+"\xff".
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	lo, hi := "["+prefix, "("+prefix+"\xff"
	if prefix == "" {
		lo, hi = "-", "+"
	}
	keys, err := s.rdb.ZRangeByLex(ctx, s.index(), &goredis.ZRangeBy{Min: lo, Max: hi}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: listing records %s: %w", prefix, err)
	}
	return keys, nil
}

// LockTTL is how long a lock outlives a holder that stopped renewing it
// (it renews it every LockTTL/3 while it holds it).
const LockTTL = 30 * time.Second

var (
	unlockScript = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
	renewScript  = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
)

// Lock implements sdk.Locker.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	key := s.prefix + ":lock:" + name
	var t [16]byte
	_, _ = rand.Read(t[:])
	token := hex.EncodeToString(t[:])
	for {
		ok, err := s.rdb.SetNX(ctx, key, token, LockTTL).Result()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redis: waiting for the lock of %s: %w", name, ctx.Err())
			}
			return nil, fmt.Errorf("%w: redis: locking %s: %v", broker.ErrUnavailable, name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redis: waiting for the lock of %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(LockTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = renewScript.Run(c, s.rdb, []string{key}, token, LockTTL.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = unlockScript.Run(c, s.rdb, []string{key}, token).Err()
		})
	}, nil
}
