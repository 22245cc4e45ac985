package mysqlstore_test

import (
	"context"
	"database/sql"
	"net"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/mysqlstore"
	"github.com/berthpaas/berth/plugins/sdk/storetest"
	_ "github.com/go-sql-driver/mysql"
)

const addr = "127.0.0.1:3306"

func TestStore(t *testing.T) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("MariaDB/MySQL is not reachable on %s (%v); run /work/shared/services-up.sh", addr, err)
	}
	c.Close()
	storetest.Run(t, func(t testing.TB, ns string) sdk.Store {
		db, err := sql.Open("mysql", "root@tcp("+addr+")/?interpolateParams=true")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = db.Exec("DROP DATABASE IF EXISTS `" + ns + "`")
			db.Close()
		})
		s, err := mysqlstore.New(context.Background(), db, nil, ns)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestBadDatabase(t *testing.T) {
	for _, name := range []string{"", "Upper", "x`; drop", "a-b"} {
		if mysqlstore.ValidDatabase(name) {
			t.Errorf("ValidDatabase(%q) = true", name)
		}
	}
}
