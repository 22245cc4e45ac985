package mongodb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mongostore"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// importLegacy moves the records of a broker from before plugins/sdk kept
// them (the collections instances and bindings of meta_database) into the
// store, once, and drops those collections.
func importLegacy(ctx context.Context, meta *mongo.Database, store *mongostore.Store, cfg config) error {
	hasLegacy := func() (bool, error) {
		names, err := meta.ListCollectionNames(ctx, bson.D{{Key: "name", Value: "instances"}})
		return len(names) > 0, err
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
	var ins []struct {
		ID        string `bson:"_id"`
		ServiceID string `bson:"service_id"`
		PlanID    string `bson:"plan_id"`
		Params    string `bson:"params"`
	}
	var bs []struct {
		InstanceID string `bson:"instance_id"`
		BindingID  string `bson:"binding_id"`
		AppName    string `bson:"app_name"`
		Params     string `bson:"params"`
		User       string `bson:"user"`
		Password   string `bson:"password"`
	}
	for coll, out := range map[string]any{"instances": &ins, "bindings": &bs} {
		cur, err := meta.Collection(coll).Find(ctx, bson.D{})
		if err == nil {
			err = cur.All(ctx, out)
		}
		if err != nil {
			return fmt.Errorf("mongodb: reading old %s records: %w", coll, err)
		}
	}
	var instances []broker.ProvisionRequest
	for _, in := range ins {
		r := broker.ProvisionRequest{InstanceID: in.ID, ServiceID: in.ServiceID, PlanID: in.PlanID}
		if err := json.Unmarshal([]byte(in.Params), &r.Params); err != nil {
			return fmt.Errorf("mongodb: old record of instance %s: %w", in.ID, err)
		}
		instances = append(instances, r)
	}
	var bindings []sdk.Binding
	for _, b := range bs {
		r := broker.BindRequest{InstanceID: b.InstanceID, BindingID: b.BindingID, AppName: b.AppName}
		if err := json.Unmarshal([]byte(b.Params), &r.Params); err != nil {
			return fmt.Errorf("mongodb: old record of binding %s/%s: %w", b.InstanceID, b.BindingID, err)
		}
		bindings = append(bindings, sdk.Binding{Request: r, Credentials: credentials(cfg, DatabaseName(b.InstanceID), b.User, b.Password)})
	}
	if err := sdk.Import(ctx, store, instances, bindings); err != nil {
		return err
	}
	for _, coll := range []string{"bindings", "instances"} {
		if err := meta.Collection(coll).Drop(ctx); err != nil {
			return fmt.Errorf("mongodb: dropping old %s records: %w", coll, err)
		}
	}
	return nil
}
