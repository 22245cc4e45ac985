package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/redisstore"
	goredis "github.com/redis/go-redis/v9"
)

// importLegacy moves the records of a broker from before plugins/sdk kept
// them (the hashes <meta>:instances and <meta>:bindings:<instance>) into the
// store, once, and renames those keys under <meta>:imported:<unix time>:
// (an operator may delete them).
func importLegacy(ctx context.Context, rdb *goredis.Client, store *redisstore.Store, cfg config) error {
	old := cfg.meta + ":instances"
	if n, err := rdb.Exists(ctx, old).Result(); err != nil || n == 0 {
		return err
	}
	unlock, err := store.Lock(ctx, "import-legacy")
	if err != nil {
		return err
	}
	defer unlock()
	ins, err := rdb.HGetAll(ctx, old).Result() // empty if another process did it
	if err != nil {
		return fmt.Errorf("redis: reading old instance records: %w", err)
	}
	var instances []broker.ProvisionRequest
	var bindings []sdk.Binding
	for id, raw := range ins {
		var in struct {
			ServiceID string `json:"service_id"`
			PlanID    string `json:"plan_id"`
			Params    string `json:"params"`
		}
		var r broker.ProvisionRequest
		err := json.Unmarshal([]byte(raw), &in)
		if err == nil {
			r = broker.ProvisionRequest{InstanceID: id, ServiceID: in.ServiceID, PlanID: in.PlanID}
			err = json.Unmarshal([]byte(in.Params), &r.Params)
		}
		if err != nil {
			return fmt.Errorf("redis: old record of instance %s: %w", id, err)
		}
		instances = append(instances, r)
		bs, err := rdb.HGetAll(ctx, cfg.meta+":bindings:"+id).Result()
		if err != nil {
			return fmt.Errorf("redis: reading old binding records: %w", err)
		}
		for bid, raw := range bs {
			var b struct {
				AppName  string `json:"app_name"`
				Params   string `json:"params"`
				User     string `json:"user"`
				Password string `json:"password"`
			}
			r := broker.BindRequest{InstanceID: id, BindingID: bid}
			err := json.Unmarshal([]byte(raw), &b)
			if err == nil {
				r.AppName = b.AppName
				err = json.Unmarshal([]byte(b.Params), &r.Params)
			}
			if err != nil {
				return fmt.Errorf("redis: old record of binding %s/%s: %w", id, bid, err)
			}
			bindings = append(bindings, sdk.Binding{Request: r, Credentials: credentials(cfg, id, b.User, b.Password)})
		}
	}
	if err := sdk.Import(ctx, store, instances, bindings); err != nil {
		return err
	}
	imported := cfg.meta + ":imported:" + strconv.FormatInt(time.Now().Unix(), 10) + ":"
	for _, in := range instances {
		key := cfg.meta + ":bindings:" + in.InstanceID
		if err := rdb.Rename(ctx, key, imported+"bindings:"+in.InstanceID).Err(); err != nil && err.Error() != "ERR no such key" {
			return fmt.Errorf("redis: renaming %s: %w", key, err)
		}
	}
	if err := rdb.Rename(ctx, old, imported+"instances").Err(); err != nil && err.Error() != "ERR no such key" {
		return fmt.Errorf("redis: renaming %s: %w", old, err)
	}
	return nil
}
