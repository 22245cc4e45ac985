package server

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/berthpaas/berth/config"
)

// The OSB API is mounted at /osb/ only when the osb block enables it.
func TestOSBMount(t *testing.T) {
	off, _ := newTestServer(t, nil)
	if w := serve(off, "GET", "/osb/v2/catalog", "", map[string]string{"X-Broker-API-Version": "2.17"}); w.Code != http.StatusNotFound {
		t.Errorf("OSB off: GET /osb/v2/catalog = %d, want 404", w.Code)
	}
	on, _ := newTestServer(t, func(c *config.Config) {
		c.OSB = &config.OSB{Enabled: true, Username: "cf", Password: "pw", Team: "t1"}
	})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("cf:pw"))
	if w := serve(on, "GET", "/osb/v2/catalog", "", map[string]string{"X-Broker-API-Version": "2.17"}); w.Code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", w.Code)
	}
	if w := serve(on, "GET", "/osb/v2/catalog", "", map[string]string{"Authorization": auth}); w.Code != http.StatusPreconditionFailed {
		t.Errorf("no version: %d, want 412", w.Code)
	}
	// The team does not exist yet: the catalog says so (503 naming it).
	w := serve(on, "GET", "/osb/v2/catalog", "", map[string]string{"Authorization": auth, "X-Broker-API-Version": "2.17"})
	if w.Code != http.StatusServiceUnavailable || jsonBody(t, w)["description"] == nil {
		t.Errorf("catalog of a missing team: %d %s", w.Code, w.Body)
	}
	// The rest of the API is untouched.
	if w := serve(on, "GET", "/healthz", "", nil); w.Code != http.StatusOK {
		t.Errorf("GET /healthz = %d", w.Code)
	}
}
