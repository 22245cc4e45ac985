package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/router"
)

// openNomadRouter starts the built-in router for the Nomad scheduler on
// local.router_addr: it routes by Host to the passing instances of the
// apps' web services in the Consul catalog (the consul block's agent, else
// CONSUL_HTTP_ADDR or 127.0.0.1:8500), read by blocking queries; only the
// services of this Berth cluster (tagged berth-cluster=<cluster>). It
// answers the function that stops it.
func openNomadRouter(cfg *config.Config, cluster string, log hclog.Logger) (func() error, error) {
	log = log.Named("router")
	ac := api.DefaultConfigWithLogger(log)
	if c := cfg.Consul; c != nil {
		if c.Address != "" {
			ac.Address = c.Address
			if strings.HasPrefix(c.Address, "http://") {
				ac.Scheme = "http"
			}
		}
		if c.Token != "" {
			ac.Token = c.Token
		}
		if c.Datacenter != "" {
			ac.Datacenter = c.Datacenter
		}
		if t := c.TLS; t != nil {
			ac.TLSConfig = api.TLSConfig{Address: t.ServerName, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify}
			if !strings.Contains(c.Address, "://") {
				ac.Scheme = "https"
			}
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("router: consul: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Local.RouterAddr)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	src := router.NewConsul(router.ConsulConfig{Client: client, TagsPrefix: cfg.Nomad.ConsulTagsPrefix, ClusterID: cluster, Logger: log})
	p := router.NewProxy(src, router.Options{Logger: log})
	srv := router.Serve(ln, p, log)
	log.Info("router listening", "addr", ln.Addr().String(), "consul", ac.Address, "cluster_id", cluster, "apps_domain", cfg.Apps.Domain)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Close(ctx)
		p.Close()
		src.Close()
		return err
	}, nil
}
