package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/server"
)

// loadConfig reads -config (or the embedded defaults) and applies flags.
func loadConfig(path, dataDir, bind string) (*config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if bind != "" {
		if _, _, err := net.SplitHostPort(bind); err != nil {
			return nil, fmt.Errorf("-bind: %q is not host:port", bind)
		}
		cfg.BindAddr = bind
	}
	return cfg, nil
}

func newLogger(cfg *config.Config) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "berth",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     os.Stderr,
	})
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (HCL); without it the embedded defaults serve")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	bind := fs.String("bind", "", "listen address host:port (overrides bind_addr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, *dataDir, *bind)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	if err := secureDataDir(cfg, log); err != nil {
		return fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	stk, err := openStack(cfg, log, true)
	if err != nil {
		return err
	}
	defer stk.close()

	var mailer server.Mailer = &server.OutboxMailer{Dir: cfg.DataDir + "/outbox", From: cfg.Mailer.From}
	if cfg.Mailer.SMTPAddr != "" {
		mailer = &server.SMTPMailer{Addr: cfg.Mailer.SMTPAddr, From: cfg.Mailer.From, Username: cfg.Mailer.Username, Password: cfg.Mailer.Password}
	}
	brokers := plugins.NewManager(plugins.ManagerConfig{
		PluginDir: cfg.Plugins.Dir, Logger: log.Named("plugins"), CallTimeout: cfg.Plugins.CallTimeoutDur,
		StateDir: filepath.Join(cfg.DataDir, "plugins"), Checksums: cfg.Plugins.Checksums,
	})
	defer brokers.Close()
	srv, err := server.New(server.Deps{
		Config: cfg, Logger: log,
		Store: stk.store, StoreName: stk.storeName,
		Secrets: stk.secrets, SecretsName: stk.secretsName,
		Scheduler: stk.sched, SchedulerName: stk.schedName,
		Mailer: mailer, Brokers: brokers,
		SecretReadPrefix: secretReadPrefix(cfg),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.BindAddr, err)
	}
	srv.Start()
	defer srv.Close()

	// No ReadTimeout or WriteTimeout here: they would cut the events
	// stream short. The body's deadline is set per request (http.read_timeout).
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeoutDur, IdleTimeout: cfg.HTTP.IdleTimeoutDur}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	if cfg.Nomad != nil && cfg.Vault == nil {
		log.Warn("the nomad scheduler reads private env from Vault, but no vault block is configured: apps with private env or bound services will not deploy")
	}
	log.Info("berth is serving", "url", url, "store", stk.storeName, "secrets", stk.secretsName, "scheduler", stk.schedName, "data_dir", cfg.DataDir)
	if stk.storeName == "consul" && stk.secretsName == "sealed" {
		log.Warn("the Store is Consul but Secrets are sealed in data_dir: other servers on this Consul prefix cannot read this server's tokens and private values; servers of one cluster share a Vault")
	}
	hintFirstAdmin(log, cfg, stk)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		log.Warn("graceful shutdown incomplete", "error", err)
	}
	return nil
}

// secretReadPrefix is where Nomad's Vault templates find a Secrets path:
// "<mount>/data/<prefix>/" on Vault KV v2.
func secretReadPrefix(cfg *config.Config) string {
	v := cfg.Vault
	if v == nil {
		return ""
	}
	mount := strings.Trim(v.Mount, "/")
	if mount == "" {
		mount = "secret"
	}
	p := mount + "/data/"
	if pre := strings.Trim(v.Prefix, "/"); pre != "" {
		p += pre + "/"
	}
	return p
}

// hintFirstAdmin tells the operator how to log in when no user exists yet.
func hintFirstAdmin(log hclog.Logger, cfg *config.Config, stk *stack) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	users, _, err := stk.store.List(ctx, state.UsersPrefix, nil)
	if err != nil || len(users) > 0 {
		return
	}
	cmd := "berth admin create-user -email admin@example.com -admin"
	if cfg.Source != "" {
		cmd += " -config " + cfg.Source
	}
	log.Warn("no users exist yet; stop the server and create the first admin with: " + cmd)
}

func runAdmin(args []string) error {
	if len(args) == 0 || args[0] != "create-user" {
		return fmt.Errorf("usage: berth admin create-user -email EMAIL [-admin] [-password-file FILE] [-config FILE]")
	}
	fs := flag.NewFlagSet("admin create-user", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (HCL)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	email := fs.String("email", "", "the user's email (their login name)")
	admin := fs.Bool("admin", false, "make the user a site admin")
	pwFile := fs.String("password-file", "", "read the password from this file; without it a random one is generated")
	pwOut := fs.String("password-out", "", "write the generated password to this file (mode 0600) instead of printing it")
	ifMissing := fs.Bool("if-missing", false, "succeed without change when the user already exists")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *email == "" {
		return fmt.Errorf("-email is required")
	}
	cfg, err := loadConfig(*cfgPath, *dataDir, "")
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	stk, err := openStack(cfg, log, false)
	if err != nil {
		return err
	}
	defer stk.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	generated := false
	var pw string
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return err
		}
		pw = strings.TrimSpace(string(b))
	} else {
		pw = randomPassword()
		generated = true
	}
	u, err := engine.CreateUser(ctx, stk.store, *email, pw, *admin)
	if err != nil {
		if *ifMissing && errors.Is(err, engine.ErrConflict) {
			fmt.Printf("user %s already exists; nothing changed\n", *email)
			return nil
		}
		return err
	}
	role := "user"
	if *admin {
		role = "admin"
	}
	fmt.Printf("created %s %s\n", role, u.Email)
	if generated {
		if *pwOut != "" {
			if err := os.WriteFile(*pwOut, []byte(pw+"\n"), 0o600); err != nil {
				return err
			}
			fmt.Printf("its password is in %s\n", *pwOut)
		} else {
			fmt.Printf("password: %s\n", pw)
		}
	}
	return nil
}
