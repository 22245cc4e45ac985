// Command hello is the web proc the local scheduler's tests run: it answers
// every request on 127.0.0.1:$PORT with a JSON line naming the instance that
// served it, answers /ping with 200, and shuts down on SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("HELLO_CRASH") != "" {
		os.Stderr.WriteString("hello: crashing as asked\n")
		os.Exit(3)
	}
	port := os.Getenv("PORT")
	if port == "" {
		os.Stderr.WriteString("hello: PORT not set\n")
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("pong\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"app":      os.Getenv("BERTH_APP"),
			"proc":     os.Getenv("BERTH_PROC"),
			"instance": os.Getenv("BERTH_INSTANCE"),
			"pid":      os.Getpid(),
			"greeting": os.Getenv("GREETING"),
			"secret":   os.Getenv("SECRET_SET") != "",
			"host":     r.Host,
		})
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		os.Stderr.WriteString("hello: " + err.Error() + "\n")
		os.Exit(1)
	}
}
