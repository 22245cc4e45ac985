# Berth on Nomad: two `berth server` processes as one Nomad job, one Berth
# cluster on a shared Consul prefix (the servers elect the one that runs the
# reconciler through a Consul session lock; any of them serves the whole
# API). Apps are scheduled on the same Nomad (the `nomad {}` block): one
# job per app, ID = app name, with the Berth cluster id in its meta; their
# web services carry routing tags (consul_tags_prefix, fabio's "urlprefix-"
# by default), which the optional router group (fabio, docker; `routers`,
# 0 by default) turns into routes for <app>.<apps_domain>.
#
#   nomad job run -var berth_binary=/usr/local/bin/berth \
#     -var consul_address=http://127.0.0.1:8500 -var vault_address=http://127.0.0.1:8200 \
#     jobspecs/berth.nomad.hcl
#
# Written for Nomad 1.6 (the last MPL-2.0 line, tools/nomad/README.md):
#
# - Vault: the token-based integration. The Nomad agents run with
#   `vault { enabled = true, address = ..., token = ... }` (or -vault-enabled
#   -vault-address -vault-token), a token that may create tokens for the
#   policies below; each task's `vault { policies = [...] }` gets a token of
#   its own, renewed by Nomad, in VAULT_TOKEN and in the template's context.
#   Nomad 1.7 and later replace this with workload identities: the agents'
#   `vault { default_identity { aud = ["vault.io"] } }`, a Vault JWT auth
#   method trusting Nomad's JWKS (`nomad setup vault`), and a task
#   `vault { role = "berth-server" }` (with `identity { name = "vault_default"
#   aud = ["vault.io"] ttl = "1h" }` if not the agent's default) instead of
#   `policies`; the role, not the job, names the policies. The token-based
#   integration is deprecated in 1.7 and removed in 1.9.
# - Consul: the servers' service registration and its HTTP check on /healthz
#   go through the agents' `consul {}` block (Nomad 1.7+ may use a Consul
#   workload identity instead; nothing in this file changes for it).
#
# The driver is raw_exec (enable it on the clients: `plugin "raw_exec" {
# config { enabled = true } }`; `nomad agent -dev` has it): Berth runs with
# the rights of the Nomad client, as `berth server` would under systemd, and
# the binary is a path on the client hosts (berth_binary). With exec, an
# `artifact { source = "https://.../berth" }` and command = "local/berth"
# would do instead.

variable "berth_binary" {
  type        = string
  description = "Absolute path of the berth binary on the Nomad clients."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "servers" {
  type        = number
  default     = 2
  description = "How many Berth servers run (one cluster)."
}

variable "service_name" {
  type        = string
  default     = "berth"
  description = "The Consul service the servers register (with an HTTP check on /healthz)."
}

variable "consul_address" {
  type    = string
  default = "http://127.0.0.1:8500"
}

variable "consul_prefix" {
  type        = string
  default     = "berth/"
  description = "Berth's Store: the Consul KV prefix every server of the cluster shares."
}

variable "vault_address" {
  type    = string
  default = "http://127.0.0.1:8200"
}

variable "vault_policies" {
  type        = list(string)
  default     = ["berth-server"]
  description = "Vault policies of the servers' token (Nomad 1.6 token-based integration): read/write on the KV v2 paths under vault_mount/vault_prefix."
}

variable "vault_mount" {
  type    = string
  default = "secret"
}

variable "vault_prefix" {
  type    = string
  default = "berth"
}

variable "app_vault_policies" {
  type        = list(string)
  default     = []
  description = "Nomad 1.6: the Vault policies of the apps' tasks, which read their private env (KV v2 read on vault_mount/data/vault_prefix/apps/*); Berth's nomad block vault_policies. Leave empty on Nomad 1.7+ (the default workload-identity role)."
}

variable "nomad_address" {
  type        = string
  default     = "http://127.0.0.1:4646"
  description = "The Nomad API the servers schedule apps on."
}

variable "apps_domain" {
  type        = string
  default     = "apps.localhost"
  description = "Apps are served at <app>.<apps_domain>."
}

variable "consul_tags_prefix" {
  type        = string
  default     = "urlprefix-"
  description = "Prefix of the routing tags of the apps' web services (fabio: urlprefix-; traefik: traefik.http.host=)."
}

variable "nomad_token_secret" {
  type        = string
  default     = ""
  description = "With Nomad ACLs: the KV v2 path (e.g. secret/data/berth/nomad, field token) of the Nomad token Berth registers apps' jobs with; the servers' Vault policy must read it."
}

variable "routers" {
  type        = number
  default     = 0
  description = "fabio routers (docker driver) reading the apps' routing tags from Consul."
}

variable "router_image" {
  type    = string
  default = "fabiolb/fabio:1.6.3"
}

variable "log_level" {
  type    = string
  default = "info"
}

job "berth" {
  type        = "service"
  datacenters = var.datacenters

  meta {
    # Berth's own job is not an app (no berth_app or berth_cluster meta):
    # Berth never lists, stops or changes it.
    component = "berth"
  }

  group "server" {
    count = var.servers

    # Two servers on one host must not share ports: each gets two dynamic
    # ports, bound on loopback (BIND 127.0.0.1; put a load balancer in front
    # to serve other hosts, e.g. through the Consul service below).
    network {
      port "http" {}
      port "router" {}
    }

    restart {
      attempts = 3
      delay    = "5s"
      interval = "1m"
      mode     = "delay"
    }

    # On several clients add `constraint { operator = "distinct_hosts"
    # value = "true" }`: losing a node then keeps the API up (left out so
    # that a one-node dev agent runs both servers).

    # Rolling updates one server at a time, reverted when unhealthy.
    update {
      max_parallel      = 1
      health_check      = "checks"
      min_healthy_time  = "5s"
      healthy_deadline  = "2m"
      progress_deadline = "5m"
      auto_revert       = true
    }

    service {
      name     = var.service_name
      provider = "consul"
      port     = "http"
      address  = "127.0.0.1"
      tags     = ["berth", "api", "${var.consul_tags_prefix}berth.${var.apps_domain}/"]

      # GET /healthz answers 503 when a backend (Consul, Vault, Nomad) is
      # down: an instance cut off from them leaves the catalog.
      check {
        name     = "berth healthz"
        type     = "http"
        path     = "/healthz"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "berth" {
      driver = "raw_exec"

      config {
        command = var.berth_binary
        args    = ["server", "-config", "${NOMAD_SECRETS_DIR}/config.hcl"]
      }

      # Nomad 1.6: a token of these policies, renewed by Nomad; when Vault
      # replaces it the template renders a new config and the server
      # restarts with it. (Nomad 1.7+: `role = "..."` with workload
      # identity, see the top of this file.)
      vault {
        policies    = var.vault_policies
        change_mode = "restart"
      }

      # The server's configuration: Consul and Vault from the job (the
      # Vault token is the task's own, from the vault block above, read
      # back through the template's Vault client; `{{ env "VAULT_TOKEN" }}`
      # would do as well), ports from Nomad. The token is written only into
      # the task's private secrets dir (0600), never into the job.
      template {
        destination = "${NOMAD_SECRETS_DIR}/config.hcl"
        perms       = "0600"
        change_mode = "restart"
        data        = <<-EOT
          data_dir  = "{{ env "NOMAD_ALLOC_DIR" }}/data"
          bind_addr = "127.0.0.1:{{ env "NOMAD_PORT_http" }}"
          log_level = "${var.log_level}"

          apps {
            domain = "${var.apps_domain}"
          }

          local {
            router_addr = "127.0.0.1:{{ env "NOMAD_PORT_router" }}"
          }

          consul {
            address = "${var.consul_address}"
            prefix  = "${var.consul_prefix}"
          }

          vault {
            address = "${var.vault_address}"
            token   = "{{ with secret "auth/token/lookup-self" }}{{ .Data.id }}{{ end }}"
            mount   = "${var.vault_mount}"
            prefix  = "${var.vault_prefix}"
          }

          nomad {
            address            = "${var.nomad_address}"
            raw_exec           = true
            vault_policies     = ${jsonencode(var.app_vault_policies)}
            consul_tags_prefix = "${var.consul_tags_prefix}"
            %{~ if var.nomad_token_secret != "" ~}
            token              = "{{ with secret "${var.nomad_token_secret}" }}{{ .Data.data.token }}{{ end }}"
            %{~ endif ~}
          }
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }

      # A graceful stop releases the reconciler lock: another server takes
      # over at once instead of after the lock's TTL.
      kill_timeout = "30s"
    }
  }

  # --- An optional router: fabio, for those who run one ----------------------
  group "router" {
    count = var.routers

    network {
      port "http" {
        static = 9999
      }
      port "ui" {
        static = 9998
      }
    }

    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      auto_revert      = true
    }

    service {
      name     = "berth-router"
      port     = "ui"
      provider = "consul"
      tags     = ["berth"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "fabio" {
      driver = "docker"

      config {
        image        = var.router_image
        network_mode = "host"
        ports        = ["http", "ui"]
      }

      env {
        # fabio reads the routes from the tags Berth puts on apps' services.
        registry_consul_addr          = trimprefix(trimprefix(var.consul_address, "http://"), "https://")
        registry_consul_tagprefix     = var.consul_tags_prefix
        proxy_addr                    = ":9999"
        ui_addr                       = ":9998"
        proxy_noroutestatus           = "404"
        registry_consul_register_name = "berth-router-ui"
      }

      resources {
        cpu    = 250
        memory = 128
      }
    }
  }
}
