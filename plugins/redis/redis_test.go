package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
	"github.com/berthpaas/berth/plugins/redis"
	"github.com/berthpaas/berth/plugins/sdk"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	brokertest.ServeChild(func() broker.Broker { return redis.New(sdk.Logger("broker.redis")) })
	goleak.VerifyTestMain(m)
}

const addr = "127.0.0.1:6379"

func settings() map[string]string {
	return map[string]string{"addr": addr, "meta_prefix": "berth:brokertest"}
}

func needServer(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("Redis is not reachable on %s (%v); run /work/shared/services-up.sh or `make services`", addr, err)
	}
	c.Close()
}

// client connects as an app would, from the binding's REDIS_URL.
func client(creds map[string]string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(creds["REDIS_URL"])
	if err != nil {
		return nil, err
	}
	opt.DialTimeout, opt.ReadTimeout, opt.MaxRetries = 5*time.Second, 5*time.Second, -1
	return goredis.NewClient(opt), nil
}

func use(ctx context.Context, creds map[string]string) error {
	c, err := client(creds)
	if err != nil {
		return err
	}
	defer c.Close()
	key := creds["REDIS_KEY_PREFIX"] + "greeting"
	if err := c.Set(ctx, key, "hello", 0).Err(); err != nil {
		return err
	}
	got, err := c.Get(ctx, key).Result()
	if err != nil {
		return err
	}
	if got != "hello" {
		return fmt.Errorf("read back %q", got)
	}
	return c.HSet(ctx, creds["REDIS_KEY_PREFIX"]+"h", "f", "v").Err()
}

// refused reports whether err is Redis refusing a command by ACL.
func refused(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

// isolated: with creds, the other instance's keys and anything outside the
// own prefix are refused (NOPERM).
func isolated(ctx context.Context, creds, other map[string]string) error {
	c, err := client(creds)
	if err != nil {
		return err
	}
	defer c.Close()
	key := other["REDIS_KEY_PREFIX"] + "greeting"
	if v, err := c.Get(ctx, key).Result(); !refused(err) {
		return fmt.Errorf("GET %s: %q, %v; want NOPERM", key, v, err)
	}
	if err := c.Set(ctx, key, "stolen", 0).Err(); !refused(err) {
		return fmt.Errorf("SET %s: %v; want NOPERM", key, err)
	}
	if err := c.Set(ctx, "unprefixed", "x", 0).Err(); !refused(err) {
		return fmt.Errorf("SET of a key outside the prefix: %v; want NOPERM", err)
	}
	return nil
}

func TestConformance(t *testing.T) {
	needServer(t)
	brokertest.Run(t, func(t testing.TB) broker.Broker {
		return brokertest.Subprocess(t, "redis", settings())
	}, brokertest.Checker{Use: use, Isolated: isolated, Persistent: true})
}

func TestACLLimits(t *testing.T) {
	needServer(t)
	b := brokertest.Subprocess(t, "redis", settings())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := brokertest.RandomID("acl-")
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	defer b.Deprovision(context.Background(), broker.DeprovisionRequest{InstanceID: id})
	resp, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "web", AppName: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	creds := resp.Credentials
	if creds["REDIS_KEY_PREFIX"] != "berth:i:"+id+":" || !strings.HasPrefix(creds["REDIS_URL"], "redis://berth."+id+".b.web:") {
		t.Fatalf("credentials = REDIS_KEY_PREFIX %q, REDIS_URL user %q", creds["REDIS_KEY_PREFIX"], strings.SplitN(creds["REDIS_URL"], ":", 3)[1])
	}
	c, err := client(creds)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := creds["REDIS_KEY_PREFIX"]
	// What an ordinary app does works.
	pipe := c.TxPipeline()
	pipe.Incr(ctx, p+"counter")
	pipe.Expire(ctx, p+"counter", time.Hour)
	pipe.LPush(ctx, p+"queue", "job")
	pipe.ZAdd(ctx, p+"scores", goredis.Z{Score: 1, Member: "a"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Errorf("MULTI/INCR/EXPIRE/LPUSH/ZADD on own keys: %v", err)
	}
	if err := c.Publish(ctx, p+"events", "hi").Err(); err != nil {
		t.Errorf("PUBLISH on own channel: %v", err)
	}
	if err := c.Publish(ctx, "other-channel", "hi").Err(); err == nil {
		t.Errorf("PUBLISH on a channel outside the prefix succeeded")
	}
	// Admin and dangerous commands, and key enumeration, are refused.
	for _, cmd := range [][]any{{"FLUSHALL"}, {"FLUSHDB"}, {"KEYS", "*"}, {"SCAN", "0"}, {"CONFIG", "GET", "*"},
		{"ACL", "LIST"}, {"SELECT", "1"}, {"SHUTDOWN"}, {"RANDOMKEY"}, {"MIGRATE", "127.0.0.1", "1", "k", "0", "10"}} {
		if err := c.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%v: err = %v, want NOPERM", cmd, err)
		}
	}
	// Deprovision deletes the instance's keys and the broker's records of it.
	admin := goredis.NewClient(&goredis.Options{Addr: addr})
	defer admin.Close()
	records := settings()["meta_prefix"] + ":records"
	if n, err := admin.HExists(ctx, records, "binding/"+id+"/web").Result(); err != nil || !n {
		t.Fatalf("the binding's record is not in %s (%v)", records, err)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instance/" + id, "binding/" + id + "/web"} {
		if n, err := admin.HExists(ctx, records, k).Result(); err != nil || n {
			t.Errorf("record %s remains after Deprovision (%v)", k, err)
		}
	}
	n, err := admin.Exists(ctx, p+"counter", p+"queue", p+"scores").Result()
	if err != nil || n != 0 {
		t.Errorf("after Deprovision %d of the instance's keys remain (%v)", n, err)
	}
	users, err := admin.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if strings.HasPrefix(u, "berth."+id+".") {
			t.Errorf("ACL user %s remains after Deprovision", u)
		}
	}
	if _, err := c.Get(ctx, p+"counter").Result(); err == nil || errors.Is(err, goredis.Nil) {
		t.Errorf("an open connection of a deprovisioned binding still works: %v", err)
	}
}

func TestBadSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := redis.New(nil)
	if err := b.Configure(ctx, map[string]string{"adr": "x"}); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("unknown setting: err = %v, want ErrBadRequest", err)
	}
	// No server is assumed: without addr there is no target.
	if err := b.Configure(ctx, nil); !errors.Is(err, broker.ErrBadRequest) || !strings.Contains(err.Error(), "no target configured") {
		t.Errorf("no settings: err = %v, want ErrBadRequest \"no target configured\"", err)
	}
	if err := b.Configure(ctx, map[string]string{"addr": "nohostport"}); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad addr: err = %v, want ErrBadRequest", err)
	}
	if err := b.Configure(ctx, map[string]string{"addr": "127.0.0.1:1"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("unreachable server: err = %v, want ErrUnavailable", err)
	}
}

// TestOldRecordsImported: the records of a broker from before plugins/sdk
// kept them (hashes <meta>:instances and <meta>:bindings:<id>) still answer
// after an upgrade.
func TestOldRecordsImported(t *testing.T) {
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	meta := "berth:brokertest-old-" + brokertest.RandomID("")
	admin := goredis.NewClient(&goredis.Options{Addr: addr})
	defer admin.Close()
	defer func() {
		keys, _ := admin.Keys(context.Background(), meta+":*").Result()
		if len(keys) > 0 {
			admin.Del(context.Background(), keys...)
		}
	}()
	id := brokertest.RandomID("old-")
	user := redis.BindingUser(id, "web")
	if err := admin.HSet(ctx, meta+":instances", id, `{"service_id":"redis","plan_id":"redis-default","params":"{\"note\":\"old\"}"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.HSet(ctx, meta+":bindings:"+id, "web", `{"app_name":"hello","params":"{}","user":"`+user+`","password":"oldpassword"}`).Err(); err != nil {
		t.Fatal(err)
	}
	s := settings()
	s["meta_prefix"] = meta
	b := brokertest.Subprocess(t, "redis", s)
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id, Params: map[string]string{"note": "old"}}); err != nil || !r.AlreadyExisted {
		t.Errorf("Provision of an instance of the old records = %+v, %v; want AlreadyExisted", r, err)
	}
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: id}); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("Provision with other parameters: err = %v, want ErrConflict", err)
	}
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: id, BindingID: "web", AppName: "hello"})
	if err != nil || !r.AlreadyExisted || r.Credentials["REDIS_URL"] != "redis://"+user+":oldpassword@127.0.0.1:6379/0" ||
		r.Credentials["REDIS_KEY_PREFIX"] != redis.KeyPrefix(id) {
		t.Errorf("Bind of a binding of the old records = %+v, %v; want AlreadyExisted with its credentials", r, err)
	}
	if n, err := admin.Exists(ctx, meta+":instances", meta+":bindings:"+id).Result(); err != nil || n != 0 {
		t.Errorf("%d old keys are left under their names (%v), want them renamed", n, err)
	}
	if _, err := b.Deprovision(ctx, broker.DeprovisionRequest{InstanceID: id}); err != nil {
		t.Errorf("Deprovision of an instance of the old records: %v", err)
	}
}
