// Command webapp is the tiny web server the deploy e2e tests run as an
// app's web proc. It listens on 127.0.0.1:$PORT and answers every request
// with JSON naming who answered: the app, proc and instance (BERTH_APP,
// BERTH_PROC, BERTH_INSTANCE), its PID, the value of $WEBAPP_VERSION (set
// per release, so an answer proves which version served it) and of
// GREETING. It never echoes SECRET: the tests read private values from
// /proc/<pid>/environ instead, so they never travel over HTTP.
//
// WEBAPP_START_DELAY (a Go duration) makes it wait that long before it
// listens, so that a deploy stays "deploying" for a while.
//
// It exits on SIGTERM after closing its listener.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		fmt.Fprintln(os.Stderr, "webapp: PORT is not set")
		os.Exit(2)
	}
	if d, err := time.ParseDuration(os.Getenv("WEBAPP_START_DELAY")); err == nil && d > 0 && d < time.Minute {
		time.Sleep(d)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	// A health check path that never answers 200 (deadline tests).
	mux.HandleFunc("/unhealthy", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "never healthy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"app":      os.Getenv("BERTH_APP"),
			"proc":     os.Getenv("BERTH_PROC"),
			"instance": os.Getenv("BERTH_INSTANCE"),
			"pid":      os.Getpid(),
			"version":  os.Getenv("WEBAPP_VERSION"),
			"greeting": os.Getenv("GREETING"),
			"host":     r.Host,
			"path":     r.URL.Path,
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Printf("webapp %s/%s/%s listening on %s (pid %d)\n", os.Getenv("BERTH_APP"), os.Getenv("BERTH_PROC"), os.Getenv("BERTH_INSTANCE"), ln.Addr(), os.Getpid())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}
