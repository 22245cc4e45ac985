package redisstore_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/redisstore"
	"github.com/berthpaas/berth/plugins/sdk/storetest"
	goredis "github.com/redis/go-redis/v9"
)

const addr = "127.0.0.1:6379"

func TestStore(t *testing.T) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("Redis is not reachable on %s (%v); run /work/shared/services-up.sh", addr, err)
	}
	c.Close()
	storetest.Run(t, func(t testing.TB, ns string) sdk.Store {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
		t.Cleanup(func() {
			ctx := context.Background()
			keys, _ := rdb.Keys(ctx, ns+":*").Result()
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
			rdb.Close()
		})
		return redisstore.New(rdb, ns)
	})
}
