package redisstore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (a lock's
// renewal, a connection pool's).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
