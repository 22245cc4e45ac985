package router

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDirect and BenchmarkViaRouter compare a GET straight to an
// instance with the same GET through the router (two instances, round
// robin, the table in memory as the Consul source keeps it), on loopback
// with keep-alive connections.
func BenchmarkDirect(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	benchGet(b, up.URL, "")
}

func BenchmarkViaRouter(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	up1, up2 := httptest.NewServer(h), httptest.NewServer(h)
	defer up1.Close()
	defer up2.Close()
	addrs := []string{up1.Listener.Addr().String(), up2.Listener.Addr().String()}
	p := NewProxy(SourceFunc(func(host string) (Target, bool, error) {
		if host != "bench.apps.test" {
			return Target{}, false, nil
		}
		return Target{App: "bench", Addrs: addrs}, true, nil
	}), Options{})
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := Serve(ln, p, nil)
	defer srv.Close(b.Context())
	benchGet(b, "http://"+ln.Addr().String(), "bench.apps.test")
}

func benchGet(b *testing.B, url, host string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url+"/", nil)
			if host != "" {
				req.Host = host
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
