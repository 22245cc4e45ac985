package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mysqlstore"
)

// importLegacy moves the records of a broker from before plugins/sdk kept
// them (the tables instances and bindings of meta_database) into the store,
// once, and renames those tables to instances_imported_<unix time> and
// bindings_imported_<unix time> (an operator may drop them).
func importLegacy(ctx context.Context, db *sql.DB, store *mysqlstore.Store, cfg config) error {
	hasLegacy := func() (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('instances', 'bindings')", cfg.meta).Scan(&n)
		return n == 2, err
	}
	if ok, err := hasLegacy(); err != nil || !ok {
		return err
	}
	unlock, err := store.Lock(ctx, "import-legacy")
	if err != nil {
		return err
	}
	defer unlock()
	if ok, err := hasLegacy(); err != nil || !ok { // another process did it
		return err
	}
	var instances []broker.ProvisionRequest
	var bindings []sdk.Binding
	params := func(s string) (map[string]string, error) {
		var m map[string]string
		return m, json.Unmarshal([]byte(s), &m)
	}
	rows, err := db.QueryContext(ctx, "SELECT id, service_id, plan_id, params FROM `"+cfg.meta+"`.instances")
	if err != nil {
		return fmt.Errorf("mysql: reading old instance records: %w", err)
	}
	for rows.Next() {
		var r broker.ProvisionRequest
		var ps string
		if err = rows.Scan(&r.InstanceID, &r.ServiceID, &r.PlanID, &ps); err == nil {
			r.Params, err = params(ps)
		}
		if err != nil {
			rows.Close()
			return fmt.Errorf("mysql: reading old instance records: %w", err)
		}
		instances = append(instances, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: reading old instance records: %w", err)
	}
	rows, err = db.QueryContext(ctx, "SELECT instance_id, binding_id, app_name, params, user_name, password FROM `"+cfg.meta+"`.bindings")
	if err != nil {
		return fmt.Errorf("mysql: reading old binding records: %w", err)
	}
	for rows.Next() {
		var r broker.BindRequest
		var ps, user, password string
		if err = rows.Scan(&r.InstanceID, &r.BindingID, &r.AppName, &ps, &user, &password); err == nil {
			r.Params, err = params(ps)
		}
		if err != nil {
			rows.Close()
			return fmt.Errorf("mysql: reading old binding records: %w", err)
		}
		bindings = append(bindings, sdk.Binding{Request: r, Credentials: credentials(cfg, DatabaseName(r.InstanceID), user, password)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: reading old binding records: %w", err)
	}
	if err := sdk.Import(ctx, store, instances, bindings); err != nil {
		return err
	}
	m, suffix := "`"+cfg.meta+"`.", "_imported_"+strconv.FormatInt(time.Now().Unix(), 10)
	return exec(ctx, db, "RENAME TABLE "+m+"instances TO "+m+"instances"+suffix+", "+m+"bindings TO "+m+"bindings"+suffix)
}
