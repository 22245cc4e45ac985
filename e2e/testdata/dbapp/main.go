// Command dbapp is the app the services e2e tests deploy: a web proc that
// uses the credentials a service binding injects into its environment.
//
//	GET  /healthz                      200 "ok"
//	GET  /env                          {"names": [...]} the service variables present (names only)
//	POST /write?kind=K&value=V         writes V with the bound service K and reads it back
//
// K is mysql (MYSQL_* and DATABASE_URL), redis (REDIS_URL and
// REDIS_KEY_PREFIX) or mongodb (MONGODB_URI and MONGODB_DATABASE). The
// answer is {"kind", "database"|"key", "value", "found"}; a failure is a
// 500 with {"error"}. Values of variables are never printed.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("dbapp: PORT is not set")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		names := []string{}
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			for _, p := range []string{"MYSQL_", "DATABASE_URL", "REDIS_", "MONGODB_"} {
				if strings.HasPrefix(k, p) {
					names = append(names, k)
				}
			}
		}
		sort.Strings(names)
		reply(w, 200, map[string]any{"names": names})
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			reply(w, 405, map[string]any{"error": "POST only"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		kind, value := r.URL.Query().Get("kind"), r.URL.Query().Get("value")
		var out map[string]any
		var err error
		switch kind {
		case "mysql":
			out, err = writeMySQL(ctx, value)
		case "redis":
			out, err = writeRedis(ctx, value)
		case "mongodb":
			out, err = writeMongo(ctx, value)
		default:
			err = fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			reply(w, 500, map[string]any{"error": err.Error()})
			return
		}
		out["kind"], out["value"] = kind, value
		reply(w, 200, out)
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("dbapp listening on %s", srv.Addr)
	log.Fatal(srv.ListenAndServe())
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func need(names ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			return nil, fmt.Errorf("%s is not set: is the service bound?", n)
		}
		out[n] = v
	}
	return out, nil
}

func writeMySQL(ctx context.Context, value string) (map[string]any, error) {
	env, err := need("MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "DATABASE_URL")
	if err != nil {
		return nil, err
	}
	// DATABASE_URL must name the same account and database.
	u, err := url.Parse(env["DATABASE_URL"])
	if err != nil {
		return nil, errors.New("DATABASE_URL does not parse")
	}
	if pw, _ := u.User.Password(); u.Scheme != "mysql" || u.User.Username() != env["MYSQL_USER"] || pw != env["MYSQL_PASSWORD"] ||
		strings.TrimPrefix(u.Path, "/") != env["MYSQL_DATABASE"] || u.Host != net.JoinHostPort(env["MYSQL_HOST"], env["MYSQL_PORT"]) {
		return nil, errors.New("DATABASE_URL disagrees with the MYSQL_* variables")
	}
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = env["MYSQL_USER"], env["MYSQL_PASSWORD"], env["MYSQL_DATABASE"]
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(env["MYSQL_HOST"], env["MYSQL_PORT"])
	cfg.Timeout = 5 * time.Second
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS e2e_rows (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200) NOT NULL)"); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO e2e_rows (v) VALUES (?)", value); err != nil {
		return nil, err
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM e2e_rows WHERE v = ?", value).Scan(&n); err != nil {
		return nil, err
	}
	return map[string]any{"database": env["MYSQL_DATABASE"], "found": n > 0}, nil
}

func writeRedis(ctx context.Context, value string) (map[string]any, error) {
	env, err := need("REDIS_URL", "REDIS_KEY_PREFIX")
	if err != nil {
		return nil, err
	}
	opt, err := goredis.ParseURL(env["REDIS_URL"])
	if err != nil {
		return nil, errors.New("REDIS_URL does not parse")
	}
	opt.DialTimeout, opt.MaxRetries = 5*time.Second, -1
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	key := env["REDIS_KEY_PREFIX"] + "e2e"
	if err := rdb.Set(ctx, key, value, 0).Err(); err != nil {
		return nil, err
	}
	got, err := rdb.Get(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	return map[string]any{"key": key, "found": got == value}, nil
}

func writeMongo(ctx context.Context, value string) (map[string]any, error) {
	env, err := need("MONGODB_URI", "MONGODB_DATABASE")
	if err != nil {
		return nil, err
	}
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(env["MONGODB_URI"]).
		SetServerSelectionTimeout(5*time.Second).SetConnectTimeout(5*time.Second))
	if err != nil {
		return nil, errors.New("MONGODB_URI: cannot connect")
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	coll := c.Database(env["MONGODB_DATABASE"]).Collection("e2e")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "v", Value: value}}); err != nil {
		return nil, err
	}
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "v", Value: value}})
	if err != nil {
		return nil, err
	}
	return map[string]any{"database": env["MONGODB_DATABASE"], "found": n > 0}, nil
}
