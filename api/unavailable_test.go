package api_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berthpaas/berth/api"
)

// TestUnavailableErrorNamesTheBackend: a 503 for a backend that is down
// reaches the client with the backend's name and the Retry-After.
func TestUnavailableErrorNamesTheBackend(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.Header().Set("X-Request-Id", "r1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"the store (consul) is unavailable: connection refused","status":503,"request_id":"r1","backend":"consul","retry_after":5}`))
	}))
	defer ts.Close()
	c, err := api.NewClient(&api.Config{Address: ts.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Notify().List(api.NotifyImagePush, nil)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 503 || e.Backend != "consul" || e.RetryAfter != 5 || e.Message != "the store (consul) is unavailable: connection refused" {
		t.Fatalf("%#v", err)
	}
	ts.CloseClientConnections()
}
