// Package mongostore keeps a broker's sdk records on a MongoDB-wire server
// (MongoDB, FerretDB), in the collection "records" of a database of its own,
// and takes the per-instance lock there (a document in "locks" with an
// expiry that its holder keeps pushing back, so a crashed holder's lock
// lapses), so every broker process using the same database is serialised.
//
// Only the admin user a broker connects as should be able to read the
// database: records hold bindings' credentials.
package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Store is an sdk.Store and sdk.Locker on a MongoDB-wire server.
type Store struct {
	records, locks *mongo.Collection
}

var _ interface {
	sdk.Store
	sdk.Locker
} = (*Store)(nil)

// New returns the store in database db.
func New(db *mongo.Database) *Store {
	return &Store{records: db.Collection("records"), locks: db.Collection("locks")}
}

type record struct {
	Key   string `bson:"_id"`
	Value []byte `bson:"v"`
}

// Get implements sdk.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var r record
	err := s.records.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mongodb: reading record %s: %w", key, err)
	}
	return r.Value, true, nil
}

// Put implements sdk.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.records.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}}, record{Key: key, Value: value}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("mongodb: writing record %s: %w", key, err)
	}
	return nil
}

// Delete implements sdk.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.records.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
		return fmt.Errorf("mongodb: deleting record %s: %w", key, err)
	}
	return nil
}

// List implements sdk.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(prefix)}}}}
	cur, err := s.records.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongodb: listing records %s: %w", prefix, err)
	}
	var rs []record
	if err := cur.All(ctx, &rs); err != nil {
		return nil, fmt.Errorf("mongodb: listing records %s: %w", prefix, err)
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Key
	}
	return out, nil
}

// LockTTL is how long a lock outlives a holder that stopped renewing it
// (it renews it every LockTTL/3 while it holds it).
const LockTTL = 30 * time.Second

// Lock implements sdk.Locker.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	var t [16]byte
	_, _ = rand.Read(t[:])
	token := hex.EncodeToString(t[:])
	for {
		now := time.Now()
		_, err := s.locks.InsertOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "token", Value: token},
			{Key: "expires", Value: now.Add(LockTTL).UnixMilli()}})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mongodb: waiting for the lock of %s: %w", name, ctx.Err())
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("%w: mongodb: locking %s: %v", broker.ErrUnavailable, name, err)
		}
		// Break a lock left by a crashed holder.
		_, _ = s.locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now.UnixMilli()}}}})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("mongodb: waiting for the lock of %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	mine := bson.D{{Key: "_id", Value: name}, {Key: "token", Value: token}}
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
				_, _ = s.locks.UpdateOne(c, mine, bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: time.Now().Add(LockTTL).UnixMilli()}}}})
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
			_, _ = s.locks.DeleteOne(c, mine)
		})
	}, nil
}
