// Package mysqlstore keeps a broker's sdk records on a MySQL or MariaDB
// server, in the table "records" of a database of its own, and takes the
// per-instance lock there with a named lock (GET_LOCK), so every broker
// process using the same server and database is serialised.
//
// Only the admin user a broker connects as should be able to read the
// database: records hold bindings' credentials.
package mysqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
)

// Store is an sdk.Store and sdk.Locker on a MySQL/MariaDB server.
type Store struct {
	db, locks *sql.DB
	database  string
	table     string
}

var _ interface {
	sdk.Store
	sdk.Locker
} = (*Store)(nil)

// ValidDatabase reports whether name can be the store's database:
// 1 to 64 characters from [a-z0-9_].
func ValidDatabase(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// New returns the store in database (created with its table if missing)
// on db, a go-sql-driver/mysql pool. Each lock held keeps a connection of
// locks (nil: of db) for as long as it is held; give locks no bound on open
// connections, or a bound of its own, so that the holders of locks can
// always get a connection of db to work with.
func New(ctx context.Context, db, locks *sql.DB, database string) (*Store, error) {
	if !ValidDatabase(database) {
		return nil, fmt.Errorf("%w: store database %q: want [a-z0-9_]{1,64}", broker.ErrBadRequest, database)
	}
	if locks == nil {
		locks = db
	}
	s := &Store{db: db, locks: locks, database: database, table: "`" + database + "`.records"}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + database + "`",
		"CREATE TABLE IF NOT EXISTS " + s.table + " (k VARBINARY(255) NOT NULL PRIMARY KEY, v MEDIUMBLOB NOT NULL," +
			" updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("mysql: creating the broker's records table: %w", err)
		}
	}
	return s, nil
}

// Get implements sdk.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, "SELECT v FROM "+s.table+" WHERE k = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mysql: reading record %s: %w", key, err)
	}
	return v, true, nil
}

// Put implements sdk.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if _, err := s.db.ExecContext(ctx, "INSERT INTO "+s.table+" (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)", key, value); err != nil {
		return fmt.Errorf("mysql: writing record %s: %w", key, err)
	}
	return nil
}

// Delete implements sdk.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM "+s.table+" WHERE k = ?", key); err != nil {
		return fmt.Errorf("mysql: deleting record %s: %w", key, err)
	}
	return nil
}

var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// List implements sdk.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT k FROM "+s.table+" WHERE k LIKE ? ESCAPE '!' ORDER BY k", likeEscaper.Replace(prefix)+"%")
	if err != nil {
		return nil, fmt.Errorf("mysql: listing records %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out = append(out, string(k))
	}
	return out, rows.Err()
}

// Lock implements sdk.Locker with a server-side named lock held by a
// connection of its own; if that connection dies, the server releases it.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	conn, err := s.locks.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: mysql: %v", broker.ErrUnavailable, err)
	}
	sum := sha256.Sum256([]byte(s.database + "\x00" + name))
	lock := "berth-sdk-" + hex.EncodeToString(sum[:])[:40] // GET_LOCK names: at most 64 characters
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 2)", lock).Scan(&got); err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("mysql: waiting for the lock of %s: %w", name, ctx.Err())
			}
			return nil, fmt.Errorf("%w: mysql: locking %s: %v", broker.ErrUnavailable, name, err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mysql: waiting for the lock of %s: %w", name, err)
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", lock)
		conn.Close()
	}, nil
}
